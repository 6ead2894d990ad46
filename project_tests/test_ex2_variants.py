"""Exercise 2 (top-k attention): plausible wrong solutions lose points with a message that names the mistake,
and correct solutions written differently score full marks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from variants import grade_text, mutate  # noqa: E402

MODULE = "ex2_topk_attention"
FULL = 25
ALTERNATIVES = Path(__file__).parent / "alternatives"

SORT_LINE = "order = torch.sort(scores, dim=-1, descending=True, stable=True).indices  # (..., Tq, Tk)"
KEPT_LINE = "kept = order[..., :top_k]  # (..., Tq, min(top_k, Tk))"
SCATTER_LINE = "keep = keep.scatter(-1, kept, True)  # (..., Tq, Tk)"
NO_INF_LINE = '    keep = keep & (scores > float("-inf"))  # (..., Tq, Tk)\n'
KEEP_CALL = "    keep = topk_mask(scores, top_k)  # (..., Tq, Tk)\n"
SCORES_LINE = "    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (..., Tq, Tk)\n"
DROP_LINE = 'scores = scores.masked_fill(~keep, float("-inf"))  # (..., Tq, Tk)'
SOFTMAX_LINE = "weights = torch.softmax(scores, dim=-1)  # (..., Tq, Tk)"
TOP_K_CHECK = (
    "    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:\n"
    '        raise ValueError(f"top_k must be an int >= 1, got {top_k!r}")\n'
)

# name -> (replacements applied to the reference text, a word the failure messages must contain)
MUTANTS = {
    # the causal mask lets each query see the next key too (j <= i + 1)
    "causal_sees_next_key": ([(".tril()  # (Tq, Tk)", ".tril(1)  # (Tq, Tk)")], "j > i"),
    # the causal mask hides the diagonal too (j < i): query 0 sees nothing and its row is NaN
    "causal_hides_diagonal": ([(".tril()  # (Tq, Tk)", ".tril(-1)  # (Tq, Tk)")], "NaN"),
    # softmax normalises each key's column over the queries instead of each query's row over the keys
    "softmax_over_queries": ([(SOFTMAX_LINE, "weights = torch.softmax(scores, dim=-2)  # (..., Tq, Tk)")], "sum to 1"),
    # the scores are not scaled by 1/sqrt(d)
    "no_scaling": ([(SCORES_LINE, "    scores = q @ k.transpose(-2, -1)  # (..., Tq, Tk)\n")], "sqrt(d)"),
    # the scale uses the width of v instead of the width of q and k
    "scale_by_value_width": ([("    d = q.size(-1)\n", "    d = v.size(-1)\n")], "sqrt(d)"),
    # the dropped keys are zeroed AFTER the softmax and not renormalised: rows no longer sum to 1
    "topk_after_softmax": (
        [
            ("    " + DROP_LINE + "\n", ""),
            (SOFTMAX_LINE, "weights = torch.softmax(scores, dim=-1).masked_fill(~keep, 0.0)"),
        ],
        "sum to 1",
    ),
    # keep every score >= the k-th largest: ties beyond k are kept too
    "threshold_keeps_ties": (
        [
            (
                SORT_LINE,
                "kth = scores.sort(dim=-1, descending=True).values[..., min(top_k, scores.size(-1)) - 1, None]",
            ),
            (KEPT_LINE, "keep = scores >= kth  # (..., Tq, Tk)"),
            ("    keep = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)  # (..., Tq, Tk)\n", ""),
            ("    " + SCATTER_LINE + "\n", ""),
        ],
        "tie",
    ),
    # torch.topk picks among tied scores in no promised order (on CPU it often takes the higher index)
    "topk_ignores_tie_rule": (
        [
            (SORT_LINE, "order = None"),
            (KEPT_LINE, "kept = torch.topk(scores, min(top_k, scores.size(-1)), dim=-1).indices"),
        ],
        "tie",
    ),
    # the k best keys are chosen before the causal mask, so future keys take some of the k slots
    "topk_before_causal_mask": ([(KEEP_CALL, ""), (SCORES_LINE, SCORES_LINE + KEEP_CALL)], "visible"),
    # dropped (and future) keys get a score of 0 instead of -inf, so they keep some weight
    "dropped_filled_with_zero": ([(DROP_LINE, "scores = scores.masked_fill(~keep, 0.0)")], "exactly"),
    # k is counted per key column (over the queries) instead of per query row
    "k_counted_over_queries": (
        [
            (SORT_LINE, "order = torch.sort(scores, dim=-2, descending=True, stable=True).indices"),
            (KEPT_LINE, "kept = order[..., :top_k, :]"),
            (SCATTER_LINE, "keep = keep.scatter(-2, kept, True)"),
        ],
        "row",
    ),
    # topk_mask keeps -inf entries when a row has fewer than top_k finite ones
    "mask_keeps_minus_inf": ([(NO_INF_LINE, "")], "-inf"),
    # the result is always float32
    "returns_float32": ([("    return output, weights\n", "    return output.float(), weights.float()\n")], "dtype"),
    # top_k is not checked
    "no_top_k_check": ([(TOP_K_CHECK, "")], "ValueError"),
    # causal attention with Tq != Tk is not refused
    "no_square_check": ([("    if causal and t_q != t_k:\n", "    if False:\n")], "Tq == Tk"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_ex2_mutant_loses_points(tmp_path, name):
    replacements, word = MUTANTS[name]
    summary = grade_text(tmp_path, MODULE, mutate(MODULE, *replacements))
    assert summary["score"] < FULL, f"mutant {name} scored {summary['score']} / {FULL}"
    assert word.lower() in summary["messages"].lower(), f"mutant {name}: no {word!r} in: {summary['messages']}"


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(ALTERNATIVES.glob(f"{MODULE}_*.py")), ids=lambda p: p.stem)
def test_ex2_alternative_scores_full(tmp_path, path):
    summary = grade_text(tmp_path, MODULE, path.read_text())
    assert summary["score"] == FULL, f"{path.name} scored {summary['score']} / {FULL}: {summary['messages']}"


def test_ex2_alternatives_exist():
    assert len(list(ALTERNATIVES.glob(f"{MODULE}_*.py"))) >= 2


@pytest.mark.slow
def test_ex2_a_wrong_exception_is_named_as_raised_with_its_line(tmp_path):
    """A TypeError where ValueError is asked for: the message says TypeError (the class the student raised, not a
    class of the grader's) and the line of the student's file that raised it."""
    wrong = TOP_K_CHECK.replace("raise ValueError", "raise TypeError")
    text = mutate(MODULE, (TOP_K_CHECK, wrong))
    line = text.splitlines().index(wrong.splitlines()[1]) + 1
    summary = grade_text(tmp_path, MODULE, text)
    reasons = [t["extra_data"]["reason"] for t in summary["failed"] if "top_k" in t["extra_data"]["nodeid"]]
    assert reasons, summary["messages"]
    assert all("got TypeError" in r and f"{MODULE}.py line {line})" in r for r in reasons), reasons
    assert "Student" not in summary["messages"], summary["messages"]
