"""Exercise 2 (visible tests): top-k attention -- each query keeps its top_k best keys before the softmax.

Oracles: ``torch.nn.functional.scaled_dot_product_attention`` (when top_k covers every key) and hand-worked
examples; properties (exactly k kept, rows sum to 1, nothing from the future) elsewhere.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from grader.judge.compare import same_tensor, tensor_like

MODULE = "ex2_topk_attention"
INF = float("inf")


def as_rows(mask: torch.Tensor) -> list:
    return mask.int().tolist()


def check_mask(got, expected: torch.Tensor) -> None:
    same_tensor(got, expected, "the mask (a bool tensor, True = keep, the shape of scores)", show=as_rows)


# ----------------------------------------------------------------------------------------------------------
# topk_mask
# ----------------------------------------------------------------------------------------------------------

LARGEST_CASES = [
    # (scores, top_k, expected mask)
    ([[0.1, 3.0, -1.0, 2.0]], 2, [[0, 1, 0, 1]]),
    ([[0.1, 3.0, -1.0, 2.0]], 1, [[0, 1, 0, 0]]),
    ([[0.5, -2.0, 7.0], [4.0, 1.0, 3.0]], 2, [[1, 0, 1], [1, 0, 1]]),
    ([[0.5, -2.0, 7.0]], 10, [[1, 1, 1]]),
    ([[[1.0, 2.0], [2.0, 1.0]], [[-1.0, 0.0], [9.0, 8.0]]], 1, [[[0, 1], [1, 0]], [[0, 1], [1, 0]]]),
]


@pytest.mark.points(2)
@pytest.mark.parametrize("scores, top_k, expected", LARGEST_CASES,
                         ids=["one-row-k2", "one-row-k1", "two-rows-k2", "k-above-row-length", "3d-scores-k1"])
def test_topk_mask_keeps_largest_per_row(student, scores, top_k, expected):
    """topk_mask marks the top_k largest entries of each row (last axis); all of them when top_k >= row length."""
    got = student(MODULE).topk_mask(torch.tensor(scores), top_k)
    check_mask(got, torch.tensor(expected, dtype=torch.bool))


TIE_CASES = [
    ([[2.0, 5.0, 5.0, 5.0]], 2, [[0, 1, 1, 0]]),
    ([[1.0, 1.0, 1.0, 1.0]], 3, [[1, 1, 1, 0]]),
    ([[0.0, 4.0, 1.0, 1.0, 1.0]], 2, [[0, 1, 1, 0, 0]]),
    ([[3.0, 3.0], [3.0, 3.0]], 1, [[1, 0], [1, 0]]),
    ([[1.0] * 20], 3, [[1, 1, 1] + [0] * 17]),  # a long row: torch.sort(stable=False) reorders 17+ equal values
]


@pytest.mark.points(2)
@pytest.mark.parametrize("scores, top_k, expected", TIE_CASES,
                         ids=["three-way-tie", "all-equal", "tie-after-the-max", "two-rows", "twenty-equal"])
def test_topk_mask_ties_lower_index_wins(student, scores, top_k, expected):
    """Tie rule: among equal scores the lower index is kept, so a row keeps exactly top_k entries even with ties.

    Also for long rows: a sort that is not stable (torch.topk, or sort without stable=True) may reorder them."""
    got = student(MODULE).topk_mask(torch.tensor(scores), top_k)
    check_mask(got, torch.tensor(expected, dtype=torch.bool))


@pytest.mark.points(1)
def test_topk_mask_never_keeps_minus_inf(student):
    """topk_mask never keeps a -inf entry (a hidden key): a row with fewer finite entries keeps only those."""
    scores = torch.tensor([[1.0, -INF, -INF, -INF], [0.0, 2.0, -INF, -INF], [5.0, 6.0, 7.0, 8.0]])
    got = student(MODULE).topk_mask(scores, 3)
    check_mask(got, torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 1]], dtype=torch.bool))


# ----------------------------------------------------------------------------------------------------------
# topk_attention
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.points(2)
def test_topk_attention_worked_example(student):
    """The worked example of the docstring: q = k = v = [[1], [2], [3]], top_k = 2, causal."""
    x = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    result = student(MODULE).topk_attention(x, x, x, 2)
    assert isinstance(result, tuple) and len(result) == 2, (
        f"expected a tuple (output, weights), got {type(result).__name__} of length {len(result)}"
    )
    out, w = result
    s1 = torch.softmax(torch.tensor([2.0, 4.0], dtype=torch.float64), 0)
    s2 = torch.softmax(torch.tensor([6.0, 9.0], dtype=torch.float64), 0)
    expected_w = torch.tensor([[1.0, 0.0, 0.0], [s1[0], s1[1], 0.0], [0.0, s2[0], s2[1]]], dtype=torch.float64)
    same_tensor(w, expected_w, "weights (float64 for float64 inputs)", atol=1e-6,
                show=lambda t: t.detach().numpy().round(3).tolist())
    expected_out = expected_w @ x
    same_tensor(out, expected_out, "output = weights @ v (float64 for float64 inputs)", atol=1e-6,
                show=lambda t: t.detach().flatten().tolist())


FULL_CASES = [
    # (leading dims, T, d, dv, top_k)
    ((), 5, 8, 8, 5),
    ((2,), 6, 8, 3, 6),
    ((2, 3), 7, 4, 5, 7),
    ((2, 3), 7, 16, 4, 50),
]


@pytest.mark.points(3)
@pytest.mark.parametrize("lead, T, d, dv, top_k", FULL_CASES,
                         ids=["2d-k=T", "batch-dv3-k=T", "batch-heads-dv5-k=T", "batch-heads-k50>T"])
def test_topk_attention_full_topk_matches_sdpa(student, lead, T, d, dv, top_k):
    """With top_k >= Tk the result is plain causal attention: softmax(q k^T / sqrt(d) + causal mask) @ v."""
    q = torch.randn(*lead, T, d, dtype=torch.float64)
    k = torch.randn(*lead, T, d, dtype=torch.float64)
    v = torch.randn(*lead, T, dv, dtype=torch.float64)
    out, w = student(MODULE).topk_attention(q, k, v, top_k)
    expected_w = torch.softmax(
        (q @ k.transpose(-2, -1) / math.sqrt(d)).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), -INF), -1
    )
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    tensor_like(out, expected, "output")
    same_tensor(w, expected_w, f"the weights of full causal attention (scale 1/sqrt(d), d={d})", atol=1e-6)
    same_tensor(out, expected, "the output of F.scaled_dot_product_attention(is_causal=True)", atol=1e-6)


@pytest.mark.points(2)
@pytest.mark.parametrize("top_k", [1, 2, 4], ids=["k=1", "k=2", "k=4"])
def test_topk_attention_exactly_k_weights_per_query(student, top_k):
    """Query i keeps exactly min(top_k, i + 1) keys (the visible ones): that many non-zero weights per row.

    And the kept keys are those with the largest scores q k^T / sqrt(d) among the visible ones."""
    T = 7
    q, k, v = (torch.randn(2, 3, T, 8, dtype=torch.float64) for _ in range(3))
    _, w = student(MODULE).topk_attention(q, k, v, top_k)
    tensor_like(w, torch.empty(2, 3, T, T, dtype=torch.float64), "weights")
    got = (w != 0).sum(-1)  # (2, 3, T)
    expected = torch.tensor([min(top_k, i + 1) for i in range(T)]).expand(2, 3, T)
    bad = (got != expected).nonzero()
    assert bad.numel() == 0, (
        f"expected min(top_k={top_k}, i + 1) non-zero weights in row i, i.e. {expected[0, 0].tolist()}, "
        f"got {got[tuple(bad[0, :2])].tolist()}"
    )
    scores = (q @ k.transpose(-2, -1) / math.sqrt(8)).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), -INF)
    order = scores.sort(dim=-1, descending=True, stable=True).indices[..., :top_k]  # (2, 3, T, top_k), no ties here
    best = torch.zeros_like(w, dtype=torch.bool).scatter(-1, order, True) & (scores > -INF)
    wrong = ((w != 0) != best).any(-1).nonzero()
    assert wrong.numel() == 0, (
        f"expected the kept keys to be the top_k={top_k} largest visible scores, e.g. in row {wrong[0, -1].item()} "
        f"keys {best[tuple(wrong[0])].nonzero().flatten().tolist()}, "
        f"got {(w != 0)[tuple(wrong[0])].nonzero().flatten().tolist()}"
    )


@pytest.mark.points(1)
def test_topk_attention_rows_sum_to_one(student):
    """The softmax runs over the keys (last axis) after the drop: every weight row sums to 1, all weights >= 0."""
    q, k, v = (torch.randn(2, 6, 8, dtype=torch.float64) for _ in range(3))
    _, w = student(MODULE).topk_attention(q, k, v, 3)
    tensor_like(w, torch.empty(2, 6, 6, dtype=torch.float64), "weights")
    sums = w.sum(-1)  # (2, 6)
    bad = ~((sums - 1).abs() < 1e-6)  # NaN counts as bad
    assert not bad.any(), (
        f"expected every row of weights to sum to 1, got {int(bad.sum())} of {bad.numel()} rows that do not, "
        f"e.g. a row summing to {sums[bad][0].item():.8g}"
    )
    assert (w >= 0).all(), f"expected weights >= 0, got a minimum of {w.min().item():.3g}"


@pytest.mark.points(1)
@pytest.mark.parametrize("top_k", [0, -1, 2.5, 2.0, "3", True],
                         ids=["zero", "minus-1", "float-2.5", "float-2.0", "str-3", "bool-True"])
def test_topk_attention_rejects_bad_top_k(student, top_k):
    """top_k must be an int >= 1: 0, negative numbers, floats (even 2.0), strings and bools raise ValueError."""
    x = torch.randn(4, 8)
    try:
        student(MODULE).topk_attention(x, x, x, top_k)
    except ValueError:
        return
    except NotImplementedError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other error is the wrong kind
        pytest.fail(f"expected ValueError for top_k={top_k!r}, got {type(exc).__name__}: {exc}")
    pytest.fail(f"expected ValueError for top_k={top_k!r}, got no error")


@pytest.mark.points(1)
def test_topk_attention_never_looks_ahead(student):
    """Causal: query i never sees key j > i (its weight is 0; changing a later key changes no earlier output)."""
    T = 6
    q, k, v = (torch.randn(T, 4, dtype=torch.float64) for _ in range(3))
    ex = student(MODULE)
    out, w = ex.topk_attention(q, k, v, 2)
    tensor_like(w, torch.empty(T, T, dtype=torch.float64), "weights")
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    assert (w[future] == 0).all(), (
        f"expected zero weight on future keys (j > i), got weights {w.numpy().round(3).tolist()}"
    )
    k2, v2 = k.clone(), v.clone()
    k2[-1] = 100.0 * q.sum(0)  # a last key that every query would love to see
    v2[-1] = 1000.0
    out2, _ = ex.topk_attention(q, k2, v2, 2)
    changed = (out2[:-1] - out[:-1]).abs().max().item()
    assert changed == 0, f"expected outputs 0..T-2 to ignore the last key (a future key), they changed by {changed:.3g}"
