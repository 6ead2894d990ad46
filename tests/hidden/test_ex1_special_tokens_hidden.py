"""Exercise 1 (hidden): the edge cases that the docstrings of ex1_special_tokens announce. 10 points."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_basics.tokenizer import BPETokenizer

MODULE = "ex1_special_tokens"

TRAINING_TEXT = (
    "Special tokens such as <eos> and <bos> are not text. Padding with <pad> makes rows equal. "
    "A tokenizer turns text into ids and ids back into text, without losing a single character. "
) * 20

PIECES = st.one_of(
    st.sampled_from(["<bos>", "<eos>", "<pad>", "<eo", "<", ">", "bos>", " ", "\n", "🙂", "日本"]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=5),
)


def expect_error(kind, call, what):
    """Run call(); return the exception of type ``kind`` it raises, or fail with a one-line message."""
    try:
        call()
    except kind as err:
        return err
    pytest.fail(f"expected {kind.__name__} for {what}, got no error", pytrace=False)


@pytest.fixture(scope="module")
def base():
    return BPETokenizer.train(TRAINING_TEXT, vocab_size=290)


@pytest.fixture
def tok(student, base):
    return student(MODULE).SpecialTokenizer(base)


@pytest.mark.points(0.5)
def test_encode_empty_string(tok):
    """encode("") is [], and [bos, eos] with add_bos and add_eos."""
    assert tok.encode("") == [], f"expected [] for the empty string, got {tok.encode('')}"
    got = tok.encode("", add_bos=True, add_eos=True, allowed_special="all")
    assert got == [tok.bos_id, tok.eos_id], f"expected [bos, eos] = {[tok.bos_id, tok.eos_id]}, got {got}"


@pytest.mark.points(0.5)
@pytest.mark.parametrize("text", ["<eos><eos>", "<bos><eos><pad>", "<pad><pad><pad>"])
def test_encode_adjacent_specials(tok, text):
    """Adjacent allowed specials give one id each, with nothing between them."""
    ids = tok.special_ids
    expected = [ids[t] for t in text.replace(">", "> ").split()]
    got = tok.encode(text, allowed_special="all")
    assert got == expected, f"expected one id per special {expected} for {text!r}, got {got}"


@pytest.mark.points(0.5)
@pytest.mark.parametrize("text,where", [("<bos>hello", "start"), ("hello<eos>", "end"), ("<bos>hello<eos>", "both ends")],
                         ids=["start", "end", "both-ends"])
def test_encode_special_at_start_and_end(tok, base, text, where):
    """A special at the start or end of the text is one id, and the text next to it is kept."""
    parts = text.replace("<bos>", "\0<bos>\0").replace("<eos>", "\0<eos>\0").split("\0")
    expected = []
    for part in parts:
        expected += [tok.special_ids[part]] if part in tok.special_ids else base.encode(part)
    got = tok.encode(text, allowed_special="all")
    assert got == expected, f"expected {expected} for a special at the {where} of {text!r}, got {got}"


@pytest.mark.points(0.5)
@pytest.mark.parametrize("text", ["<eo", "<eos", "eos>", "< eos>", "<EOS>", "<<eos"])
def test_encode_partial_special_is_plain(tok, base, text):
    """Something that only looks like part of a special ("<eo") is plain text, even with allowed_special="all"."""
    got = tok.encode(text, allowed_special="all")
    assert got == base.encode(text), f"expected base.encode({text!r}) = {base.encode(text)}, got {got}"


@pytest.mark.points(0.5)
def test_encode_allowed_subset_only(tok, base):
    """Only the specials listed in allowed_special become ids; the others stay plain text."""
    got = tok.encode("<bos>x<eos>", allowed_special={"<eos>"})
    expected = base.encode("<bos>x") + [tok.eos_id]
    assert got == expected, f"expected <bos> as plain text and <eos> as one id {expected}, got {got}"


@pytest.mark.points(0.5)
@pytest.mark.parametrize("allowed", [("<unk>",), "<eos>", [5]], ids=["unknown-special", "a-str-other-than-all",
                                                                     "a-non-str-entry"])
def test_encode_bad_allowed_special_raises(tok, allowed):
    """allowed_special must be "all" or a collection of this tokenizer's specials (else ValueError)."""
    expect_error(ValueError, lambda: tok.encode("x<eos>", allowed_special=allowed), f"allowed_special={allowed!r}")


@pytest.mark.points(1)
@given(pieces=st.lists(PIECES, max_size=10))
def test_round_trip_with_allowed_specials(tok, pieces):
    """decode(encode(s, allowed_special="all")) == s, and each special in s becomes exactly one id."""
    text = "".join(pieces)
    ids = tok.encode(text, allowed_special="all")
    back = tok.decode(ids)
    assert back == text, f"expected decode(encode(s)) == s for s={text!r}, got {back!r}"
    n_special = sum(text.count(t) for t in ("<bos>", "<eos>", "<pad>"))
    special = set(tok.special_ids.values())  # one request to the worker, not one per id
    got = sum(i in special for i in ids)
    assert got == n_special, f"expected {n_special} special ids for {text!r}, got {got}"
    skipped = tok.decode(ids, skip_special_tokens=True)
    want = re.sub("<bos>|<eos>|<pad>", "", text)  # the default specials never overlap: one way to cut
    assert skipped == want, f"expected the text without specials {want!r} with skip_special_tokens, got {skipped!r}"


@pytest.mark.points(1)
@pytest.mark.parametrize("bad", ["vocab_size", -1, True, 3.0, "float-special"],
                         ids=["vocab_size", "minus-1", "True", "float-3.0", "float-of-a-special-id"])
def test_decode_unknown_id_raises(tok, base, bad):
    """decode() of an id that is not an int in 0..vocab_size-1 (True and 3.0 included) raises ValueError naming it.

    A float equal to a special id (301.0) is refused too: it is not an int, even if it compares equal to one."""
    bad_id = {"vocab_size": tok.vocab_size, "float-special": float(tok.eos_id)}.get(bad, bad)
    err = expect_error(ValueError, lambda: tok.decode([base.encode("a")[0], bad_id]), f"the id {bad_id!r}")
    assert str(bad_id) in str(err), f"expected the error message to name id {bad_id}, got {str(err)!r}"


@pytest.mark.points(0.5)
def test_decode_accepts_first_and_last_id(tok):
    """decode() accepts every id from 0 to vocab_size - 1: id 0 is the byte 0, the last id the last special."""
    got = tok.decode([0, tok.vocab_size - 1])
    assert got == "\x00<pad>", f"expected '\\x00<pad>' for the ids [0, vocab_size - 1], got {got!r}"


@pytest.mark.points(0.5)
def test_pad_empty_batch(tok):
    """pad([]) is {"input_ids": [], "attention_mask": []}, whatever the side or length (0 included)."""
    expected = {"input_ids": [], "attention_mask": []}
    assert tok.pad([]) == expected, f"expected {expected}, got {tok.pad([])}"
    for length in (4, 0):
        got = tok.pad([], length=length, side="left")
        assert got == expected, f"expected {expected} with length={length}, side='left', got {got}"


@pytest.mark.points(0.5)
@pytest.mark.parametrize("length", [-1, 2.0, True], ids=["minus-1", "float-2.0", "True"])
def test_pad_rejects_bad_length(tok, length):
    """pad(..., length=n) needs an int n >= 0 (0 works): -1, 2.0 and True raise ValueError."""
    got = tok.pad([[]], length=0)
    assert got == {"input_ids": [[]], "attention_mask": [[]]}, f"expected one empty row with length=0, got {got}"
    expect_error(ValueError, lambda: tok.pad([[7]], length=length), f"length={length!r}")


@pytest.mark.points(0.5)
def test_pad_left_mask(tok):
    """Left padding: pads first, then tokens; the mask is 0 on the pads and 1 on the tokens."""
    p = tok.pad_id
    got = tok.pad([[9], [4, 5, 6], [1, 2]], side="left")
    rows = [[p, p, 9], [4, 5, 6], [p, 1, 2]]
    assert got["input_ids"] == rows, f"expected left-padded input_ids {rows}, got {got['input_ids']}"
    mask = [[0, 0, 1], [1, 1, 1], [0, 1, 1]]
    assert got["attention_mask"] == mask, f"expected left-padding attention_mask (0 on pads) {mask}, got {got['attention_mask']}"


@pytest.mark.points(0.5)
def test_pad_too_long_raises(tok):
    """pad(..., length=n) with a sequence longer than n raises ValueError (no silent truncation)."""
    expect_error(ValueError, lambda: tok.pad([[1, 2, 3], [4]], length=2), "a row of 3 ids with length=2")


@pytest.mark.points(0.5)
def test_pad_length_equal_to_longest_adds_no_pads(tok):
    """pad(..., length=n) with n equal to the longest row adds no pad to that row (and pads the others to n)."""
    got = tok.pad([[1, 2], [3]], length=2)
    assert got["input_ids"] == [[1, 2], [3, tok.pad_id]], f"expected rows of length exactly 2, got {got['input_ids']}"


@pytest.mark.points(0.5)
def test_tokenizer_without_specials(student, base):
    """special_tokens=() gives the base alone: no ids, encode is base.encode; add_bos, add_eos, pad raise ValueError."""
    tok = student(MODULE).SpecialTokenizer(base, special_tokens=())
    assert tok.vocab_size == base.vocab_size, f"expected vocab_size {base.vocab_size}, got {tok.vocab_size}"
    got = (tok.bos_id, tok.eos_id, tok.pad_id)
    assert got == (None, None, None), f"expected bos_id, eos_id, pad_id None, got {got}"
    text = "x<eos>y"
    got = tok.encode(text, allowed_special="all")
    assert got == base.encode(text), f"expected base.encode({text!r}) = {base.encode(text)}, got {got}"
    expect_error(ValueError, lambda: tok.encode("x", add_bos=True), "add_bos=True without a <bos> token")
    expect_error(ValueError, lambda: tok.encode("x", add_eos=True), "add_eos=True without an <eos> token")
    expect_error(ValueError, lambda: tok.pad([[1], [2, 3]]), "pad() without a <pad> token")
    expect_error(ValueError, lambda: tok.pad([]), "pad([]) without a <pad> token (an empty batch too)")


LOAD_CASES = {
    "not-json": "this is not JSON {",
    "a-json-list": "[1, 2, 3]",
    "a-json-string": '"<bos>"',
}


@pytest.mark.points(0.5)
@pytest.mark.parametrize("case", list(LOAD_CASES))
def test_load_rejects_a_file_that_is_not_json(student, case):
    """SpecialTokenizer.load() of a file that save() did not write (not JSON, other JSON) raises ValueError naming the path."""
    path = student.write(f"broken-{case}.json", LOAD_CASES[case])
    err = expect_error(ValueError, lambda: student(MODULE).SpecialTokenizer.load(path), f"a file holding {LOAD_CASES[case]!r}")
    assert str(path) in str(err), f"expected the error message to name the file {str(path)!r}, got {str(err)!r}"


@pytest.mark.points(0.5)
def test_load_missing_file_raises_file_not_found(student):
    """SpecialTokenizer.load() of a file that does not exist raises FileNotFoundError (as open() does)."""
    path = student.path("no-such-file.json")
    expect_error(FileNotFoundError, lambda: student(MODULE).SpecialTokenizer.load(path), "a file that does not exist")


@pytest.mark.points(0.5)
def test_pad_leaves_the_callers_lists_unchanged(tok):
    """pad() builds new lists: the batch it is given (the caller's lists) is unchanged after the call."""
    p = tok.pad_id
    seen = tok.pad.observe([[5, 6, 7], [8], []])
    want = {"input_ids": [[5, 6, 7], [8, p, p], [p, p, p]], "attention_mask": [[1, 1, 1], [1, 0, 0], [0, 0, 0]]}
    assert seen.value == want, f"expected {want}, got {seen.value}"
    batch = seen.args[0] if seen.args else None
    assert batch == [[5, 6, 7], [8], []], (
        f"expected the batch [[5, 6, 7], [8], []] unchanged after pad, got {batch}: build new rows, do not pad the"
        " caller's lists in place"
    )
