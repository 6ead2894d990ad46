"""Mutants and alternative implementations of ex3_parameter_accounting, graded with the real ex3 suites.

Each mutant is a plausible mistake made by a small textual change of the reference; the suites must catch it
(score below 25) with a message that points at the mistake. Each alternative is correct but written
differently from the reference; it must score 25/25, so the suites test behaviour, not one way of coding it.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from variants import grade_text, mutate  # noqa: E402

MODULE = "ex3_parameter_accounting"
ALTERNATIVES = Path(__file__).parent / "alternatives"

# name -> (replacements applied to the reference text, words one of which the failure messages must contain)
MUTANTS = {
    "layernorm_counted_as_d": (
        [("return 2 * d_model if bias else d_model", "return d_model")],
        ["layernorm", "norm"],
    ),
    "tied_head_counted_twice": (
        [('"lm_head": 0 if cfg.tie_weights else cfg.vocab_size * d,', '"lm_head": cfg.vocab_size * d,')],
        ["tied", "shared"],
    ),
    "attention_forgets_output_projection": (
        [("weights = 4 * d_model * d_model", "weights = 3 * d_model * d_model")],
        ["4·d²", "attention"],
    ),
    "ffn_biases_forgotten": (
        [("biases = d_ff + d_model if bias else 0", "biases = 0")],
        ["d_ff + d biases", "ffn"],
    ),
    "ffn_bias_only_d_ff": (
        [("biases = d_ff + d_model if bias else 0", "biases = d_ff if bias else 0")],
        ["d_ff + d biases", "ffn"],
    ),
    "position_embedding_forgotten": (
        [('"position_embedding": cfg.context_length * d,', '"position_embedding": 0,')],
        ["position_embedding", "T·d"],
    ),
    "rmsnorm_counted_with_bias": (
        [(
            '    if kind == "rmsnorm":\n        return d_model\n',
            '    if kind == "rmsnorm":\n        return 2 * d_model if bias else d_model\n',
        )],
        ["rmsnorm", "no bias"],
    ),
    "attention_biases_even_without_bias": (
        [("biases = 4 * d_model if bias else 0", "biases = 4 * d_model")],
        ["bias=false", "no bias"],
    ),
    "heads_multiply_the_count": (
        [(
            '"attention": attention_params(d, bias=cfg.bias),',
            '"attention": cfg.n_heads * attention_params(d // cfg.n_heads, bias=cfg.bias),',
        )],
        ["n_heads", "heads"],
    ),
    "measured_count_not_deduplicated": (
        [("            if id(p) in seen:\n                continue\n", "")],
        ["tied", "counted once"],
    ),
    "explain_measured_on_formulas": (
        [('sum(b["attn"] for b in per_block), attention_why),', 'L * block["attention"] + 1, attention_why),')],
        ["measured"],
    ),
    "why_omits_heads": (
        [("; n_heads does not change the count\"\n        ffn_why = \"fc1", "\"\n        ffn_why = \"fc1")],
        ["heads"],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_caught_with_a_pointed_message(tmp_path, name):
    replacements, words = MUTANTS[name]
    summary = grade_text(tmp_path, MODULE, mutate(MODULE, *replacements))
    assert summary["score"] < summary["max_score"] == 25, f"mutant {name} scored {summary['score']}/25"
    messages = summary["messages"].lower()
    assert any(word.lower() in messages for word in words), (
        f"mutant {name}: none of {words} in the failure messages: {summary['messages'][:1500]}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(ALTERNATIVES.glob(f"{MODULE.split('_')[0]}_*.py")), ids=lambda p: p.stem)
def test_alternative_scores_full_marks(tmp_path, path):
    summary = grade_text(tmp_path, MODULE, path.read_text())
    assert summary["score"] == summary["max_score"] == 25, (
        f"{path.name} scored {summary['score']}/25: {summary['messages'][:1500]}"
    )
