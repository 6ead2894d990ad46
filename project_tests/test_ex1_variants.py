"""Mutants of the ex1_special_tokens reference must lose points with a message that points at the mistake;
correct but different implementations must score full marks."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from variants import grade_text, mutate  # noqa: E402

MODULE = "ex1_special_tokens"
ALTERNATIVES = Path(__file__).parent / "alternatives"

# name -> (replacements applied to the reference, a word the failure messages must contain)
MUTANTS = {
    # an allowed special is encoded by the base BPE (many ids) instead of its one id
    "special_split_by_bpe": (
        [("ids.append(self._ids[piece])", "ids.extend(self.base.encode(piece))")],
        "one id",
    ),
    # every special string in user text becomes a control id, allowed or not
    "special_always_allowed": (
        [("allowed = set(allowed_special)", "allowed = set(self.special_tokens)")],
        "injected",
    ),
    # special ids start one too early: the first one collides with the last base id
    "ids_start_at_vocab_minus_one": (
        [("{token: base.vocab_size + i for", "{token: base.vocab_size - 1 + i for")],
        "base.vocab_size + i",
    ),
    # special ids start at 0: they collide with the byte tokens
    "ids_start_at_zero": (
        [("{token: base.vocab_size + i for", "{token: i for")],
        "base.vocab_size + i",
    ),
    # skip_special_tokens is read but ignored
    "skip_special_tokens_ignored": (
        [("if not skip_special_tokens:", "if True:")],
        "skip_special_tokens",
    ),
    # side="left" still pads on the right
    "left_pads_on_the_right": (
        [("input_ids.append([pad_id] * n_pad + row)", "input_ids.append(row + [pad_id] * n_pad)")],
        "left",
    ),
    # the attention mask is 1 on the pads and 0 on the tokens
    "mask_inverted": (
        [
            ("[1] * len(row) + [0] * n_pad", "[0] * len(row) + [1] * n_pad"),
            ("[0] * n_pad + [1] * len(row)", "[1] * n_pad + [0] * len(row)"),
        ],
        "mask",
    ),
    # only the left-padding mask is inverted
    "left_mask_inverted": (
        [("[0] * n_pad + [1] * len(row)", "[1] * n_pad + [0] * len(row)")],
        "mask",
    ),
    # add_eos puts the eos id first
    "eos_first": (
        [('ids.append(self._required_id("<eos>"))', 'ids.insert(0, self._required_id("<eos>"))')],
        "eos",
    ),
    # decode forgets the text after the last special id
    "decode_drops_text_after_special": (
        [("        parts.append(self.base.decode(run))\n        return", "        return")],
        "decode(encode(s))",
    ),
    # decode one id at a time: a character spread over several byte tokens comes back as U+FFFD
    "decode_id_by_id": (
        [("run.append(i)", "parts.append(self.base.decode([i]))")],
        "decode(encode(s))",
    ),
    # pad to one more than the longest row
    "pad_length_off_by_one": (
        [("length = longest\n", "length = longest + 1\n")],
        "longest",
    ),
    # pad fills the caller's rows in place (the promise seen through the proxy: the caller's lists unchanged)
    "pad_edits_callers_lists": (
        [("rows = [list(seq) for seq in batch]", "rows = list(batch)"),
         ("input_ids.append(row + [pad_id] * n_pad)", "row.extend([pad_id] * n_pad)\n                input_ids.append(row)"),
         ("attention_mask.append([1] * len(row) + [0] * n_pad)",
          "attention_mask.append([1] * (len(row) - n_pad) + [0] * n_pad)")],
        "caller",
    ),
    # decode checks the ids in one walk and decodes them in another: a generator is empty the second time
    "decode_walks_ids_twice": (
        [("        ids = list(ids)\n", "")],
        "generator",
    ),
    # a row longer than length is passed through instead of raising
    "pad_no_length_check": (
        [("elif longest > length:", "elif False:")],
        "truncation",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_loses_points_with_a_pointed_message(tmp_path, name):
    replacements, word = MUTANTS[name]
    summary = grade_text(tmp_path, MODULE, mutate(MODULE, *replacements))
    assert summary["score"] < 25, f"mutant {name} scored full marks: the suite does not catch it"
    assert word in summary["messages"], f"mutant {name}: no message mentions {word!r}: {summary['messages']}"


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(ALTERNATIVES.glob("ex1_*.py")), ids=lambda p: p.stem)
def test_alternative_scores_full_marks(tmp_path, path):
    summary = grade_text(tmp_path, MODULE, path.read_text())
    assert summary["score"] == 25, f"{path.name} is correct but scored {summary['score']}: {summary['messages']}"


def test_there_are_at_least_two_alternatives():
    assert len(list(ALTERNATIVES.glob("ex1_*.py"))) >= 2
