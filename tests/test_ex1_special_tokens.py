"""Exercise 1 (visible): special tokens on top of a BPE tokenizer. 15 points."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grader.judge.compare import token_ids
from llm_basics.tokenizer import BPETokenizer

MODULE = "ex1_special_tokens"
SPECIALS = ("<bos>", "<eos>", "<pad>")

# A fixed text (not the lesson file, so the tests never change when the lesson does); it holds a few "<"
# and ">" so that the base BPE learns merges such as "<e" and the difference between "one id" and
# "several base ids" is plain to see.
TRAINING_TEXT = (
    "The model reads a sequence of token ids. <eos> marks the end of a sequence and <bos> its start. "
    "A batch is padded with <pad> so that every row has the same length. "
    "Tokens are learned from text: the most frequent pair of neighbours becomes a new token. "
) * 20

# text pieces that look like specials, or parts of them, mixed with ordinary text
TRICKY = st.sampled_from(["<bos>", "<eos>", "<pad>", "<eo", "eos>", "<", ">", "<<eos>>", "<EOS>", " ", "🙂", "é"])
TEXT = st.lists(
    st.one_of(TRICKY, st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)), max_size=8
).map("".join)


def expect_error(kind, call, what):
    """Run call(); return the exception of type ``kind`` it raises, or fail with a one-line message."""
    try:
        call()
    except kind as err:
        return err
    pytest.fail(f"expected {kind.__name__} for {what}, got no error", pytrace=False)


@pytest.fixture(scope="module")
def base():
    return BPETokenizer.train(TRAINING_TEXT, vocab_size=300)


@pytest.fixture
def tok(student, base):
    ex = student(MODULE)
    return ex.SpecialTokenizer(base)


@pytest.mark.points(1)
def test_special_ids_follow_base_vocab(tok, base):
    """Special token i gets id base.vocab_size + i, in the order given."""
    expected = {s: base.vocab_size + i for i, s in enumerate(SPECIALS)}
    assert tok.special_ids == expected, f"expected special_ids {expected}, got {tok.special_ids}"
    got = (tok.bos_id, tok.eos_id, tok.pad_id)
    assert got == tuple(expected.values()), f"expected (bos_id, eos_id, pad_id) {tuple(expected.values())}, got {got}"
    assert tok.vocab_size == base.vocab_size + 3, f"expected vocab_size {base.vocab_size + 3}, got {tok.vocab_size}"


@pytest.mark.points(0.5)
def test_special_ids_custom_order(student, base):
    """Custom special tokens (a list works like a tuple) get ids base.vocab_size, +1, ... in the order given.

    self.special_tokens is stored as a tuple, even when a list is given."""
    ex = student(MODULE)
    tok = ex.SpecialTokenizer(base, special_tokens=["<|end|>", "<pad>"])
    expected = {"<|end|>": base.vocab_size, "<pad>": base.vocab_size + 1}
    assert tok.special_ids == expected, f"expected special_ids {expected}, got {tok.special_ids}"
    assert tok.bos_id is None, f"expected bos_id None when there is no <bos>, got {tok.bos_id}"
    got = tok.special_tokens
    assert got == ("<|end|>", "<pad>"), f"expected special_tokens to be the tuple ('<|end|>', '<pad>'), got {got!r}"


@pytest.mark.points(0.5)
def test_encode_plain_text_matches_base(tok, base):
    """Text without specials encodes exactly like the base tokenizer."""
    text = "Every row has the same length."
    assert tok.encode(text) == base.encode(text), f"expected base.encode(text) {base.encode(text)}, got {tok.encode(text)}"


@pytest.mark.points(1.5)
def test_encode_add_bos_eos(tok, base):
    """add_bos puts the <bos> id first, add_eos puts the <eos> id last."""
    body = base.encode("a new token")
    got = tok.encode("a new token", add_bos=True, add_eos=True)
    expected = [tok.bos_id] + body + [tok.eos_id]
    assert got == expected, f"expected [bos] + text ids + [eos] = {expected}, got {got}"
    got = tok.encode("a new token", add_eos=True)
    assert got == body + [tok.eos_id], f"expected the eos id LAST with add_eos only: {body + [tok.eos_id]}, got {got}"


@pytest.mark.points(2)
@pytest.mark.parametrize("text", ["stop <eos> here", "<bos>", "a<pad>b<eos>"], ids=["glued-to-a-space", "alone", "two"])
def test_encode_special_text_not_allowed_is_plain(tok, base, text):
    """By default a special string typed in the text is ordinary text: no control id can be injected."""
    got = tok.encode(text)
    assert got == base.encode(text), f"expected base.encode({text!r}) = {base.encode(text)} (specials not allowed), got {got}"
    injected = set(got) & set(tok.special_ids.values())
    assert not injected, f"expected no special id without allowed_special, got {sorted(injected)} for {text!r}"


@pytest.mark.points(1.5)
@pytest.mark.parametrize("allowed", ["all", ("<eos>",), ["<eos>", "<bos>"]], ids=["all", "tuple", "list"])
def test_encode_allowed_special_is_one_id(tok, base, allowed):
    """An allowed special becomes exactly one id; the text around it is encoded by the base BPE."""
    got = tok.encode("the end<eos>new start", allowed_special=allowed)
    expected = base.encode("the end") + [tok.eos_id] + base.encode("new start")
    assert got == expected, f"expected one <eos> id between the two text parts {expected}, got {got}"


OVERLAP_CASES = {
    # allowed_special -> [("special", name) or ("text", piece), ...] for the text "<a><b>"
    "same-start-longer-wins": ("all", [("special", "<a><b>")]),
    "earlier-start-wins": (["a><", "<a>"], [("special", "<a>"), ("text", "<b>")]),
    "only-the-later-one-allowed": (["a><"], [("text", "<"), ("special", "a><"), ("text", "b>")]),
}


@pytest.mark.points(1)
@pytest.mark.parametrize("case", list(OVERLAP_CASES))
def test_encode_overlapping_specials(student, base, case):
    """Overlapping allowed specials: the one that starts first wins; of two starting together, the longer wins.

    The order of special_tokens plays no part (see the tok2 example in the encode docstring)."""
    tok = student(MODULE).SpecialTokenizer(base, special_tokens=("a><", "<a>", "<a><b>"))
    ids = {"a><": base.vocab_size, "<a>": base.vocab_size + 1, "<a><b>": base.vocab_size + 2}
    allowed, parts = OVERLAP_CASES[case]
    expected = []
    for kind, value in parts:
        expected += [ids[value]] if kind == "special" else base.encode(value)
    got = tok.encode("<a><b>", allowed_special=allowed)
    assert got == expected, (
        f"expected {expected} for encode('<a><b>', allowed_special={allowed!r}) with specials "
        f"('a><', '<a>', '<a><b>') = {list(ids.values())}: {' + '.join(v for _, v in parts)}, got {got}"
    )


@pytest.mark.points(1.5)
@given(text=TEXT)
def test_decode_round_trip(tok, base, text):
    """decode(encode(s)) == s for every string, with and without allowed_special="all"."""
    known = "the end"  # the ids of a known text first: a round trip through no ids at all proves nothing
    ids = tok.encode(known)
    assert ids == base.encode(known), (
        f"expected encode({known!r}) to give base.encode = {base.encode(known)}, got {ids!r}"
    )
    ids = tok.encode(text)
    token_ids(ids, tok.vocab_size, f"encode({text!r})")
    back = tok.decode(ids)
    assert back == text, f"expected decode(encode(s)) == s for s={text!r}, got {back!r}"
    ids = tok.encode(text, allowed_special="all")
    token_ids(ids, tok.vocab_size, f"encode({text!r}, allowed_special='all')")
    back = tok.decode(ids)
    assert back == text, f"expected decode(encode(s, allowed_special='all')) == s for s={text!r}, got {back!r}"


@pytest.mark.points(1)
def test_decode_skip_special_tokens(tok, base):
    """decode(..., skip_special_tokens=True) leaves the special tokens out of the text."""
    ids = [tok.bos_id] + base.encode("hello") + [tok.eos_id, tok.pad_id]
    got = tok.decode(ids, skip_special_tokens=True)
    assert got == "hello", f"expected 'hello' with skip_special_tokens=True, got {got!r}"
    got = tok.decode(ids)
    assert got == "<bos>hello<eos><pad>", f"expected '<bos>hello<eos><pad>' by default, got {got!r}"


@pytest.mark.points(1.5)
def test_pad_right_to_longest(tok):
    """pad() fills with the <pad> id on the right up to the longest row; the mask is 1 for tokens, 0 for pads."""
    p = tok.pad_id
    got = tok.pad([[5, 6, 7], [8], []])
    rows = [[5, 6, 7], [8, p, p], [p, p, p]]
    assert got["input_ids"] == rows, f"expected input_ids {rows}, got {got['input_ids']}"
    mask = [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert got["attention_mask"] == mask, f"expected attention_mask {mask}, got {got['attention_mask']}"
    assert set(got) == {"input_ids", "attention_mask"}, f"expected the keys input_ids and attention_mask, got {sorted(got)}"


@pytest.mark.points(1)
def test_pad_left_with_length(tok):
    """pad(..., side="left", length=n) puts the pads BEFORE the tokens, and the mask follows them."""
    p = tok.pad_id
    got = tok.pad([[5, 6], [7]], length=3, side="left")
    rows = [[p, 5, 6], [p, p, 7]]
    assert got["input_ids"] == rows, f"expected left-padded input_ids {rows}, got {got['input_ids']}"
    mask = [[0, 1, 1], [0, 0, 1]]
    assert got["attention_mask"] == mask, f"expected left-padding attention_mask {mask}, got {got['attention_mask']}"


@pytest.mark.points(1)
def test_save_load_round_trip(student, base):
    """save() then SpecialTokenizer.load() gives the same specials and ids; a path may be a str or a Path."""
    ex = student(MODULE)
    tok = ex.SpecialTokenizer(base, special_tokens=("<s>", "</s>"))
    path = student.path("tok.json")  # in the one folder your code may write while it is graded
    tok.save(path)
    json.loads(student.read("tok.json").decode("utf-8"))  # the file is JSON
    loaded = ex.SpecialTokenizer.load(str(path))
    expected = {"<s>": base.vocab_size, "</s>": base.vocab_size + 1}
    assert loaded.special_ids == expected, f"expected special_ids {expected} after load, got {loaded.special_ids}"
    text = "<s>the most frequent pair</s>"
    want = tok.encode(text, allowed_special="all")
    got = loaded.encode(text, allowed_special="all")
    assert got == want, f"expected the loaded tokenizer to encode like the saved one {want}, got {got}"


@pytest.mark.points(0.5)
@pytest.mark.parametrize(
    "case",
    ["duplicate special", "empty special", "bare str as special_tokens", "non-str special", "bytes as text",
     "None as text", "bad side"],
)
def test_errors_for_bad_arguments(student, base, case):
    """Bad arguments raise the documented errors, TypeError for a wrong type and ValueError for a wrong value.

    TypeError for a bare str, a non-str special or non-str text; ValueError for a duplicate special (naming it), an
    empty special or a bad side."""
    ex = student(MODULE)
    if case == "duplicate special":
        err = expect_error(ValueError, lambda: ex.SpecialTokenizer(base, special_tokens=("<eos>", "<pad>", "<eos>")), case)
        assert "<eos>" in str(err), f"expected the error for a duplicate special to name '<eos>', got {str(err)!r}"
    elif case == "empty special":
        expect_error(ValueError, lambda: ex.SpecialTokenizer(base, special_tokens=("<eos>", "")), case)
    elif case == "bare str as special_tokens":
        expect_error(TypeError, lambda: ex.SpecialTokenizer(base, special_tokens="<eos>"), "special_tokens='<eos>'")
    elif case == "non-str special":
        expect_error(TypeError, lambda: ex.SpecialTokenizer(base, special_tokens=("<eos>", 7)), "the special 7")
    elif case == "bytes as text":
        expect_error(TypeError, lambda: ex.SpecialTokenizer(base).encode(b"bytes are not text"), "text=b'...'")
    elif case == "None as text":
        expect_error(TypeError, lambda: ex.SpecialTokenizer(base).encode(None), "text=None")
    else:
        expect_error(ValueError, lambda: ex.SpecialTokenizer(base).pad([[1, 2]], side="center"), "side='center'")


@pytest.mark.points(0.5)
def test_decode_takes_a_one_shot_iterable(student, tok, base):
    """decode() takes any iterable of ids, a generator too: walk the ids once (make a list of them first)."""
    ids = [tok.bos_id, *base.encode("the model reads"), tok.eos_id, *base.encode(" a batch")]
    want = "<bos>the model reads<eos> a batch"
    got = tok.decode(student.once(ids))
    assert got == want, (
        f"expected {want!r} from a generator of ids, got {got!r}: a generator can be walked only once, so check"
        " and decode the ids from one list (ids = list(ids))"
    )
