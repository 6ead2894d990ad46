"""Tests of llm_basics.tokenizer (the given byte-level BPE)."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_basics.corpus import lesson_text
from llm_basics.tokenizer import FORMAT_NAME, FORMAT_VERSION, BPETokenizer, split_chunks

# derandomized: the same examples on every run
PROPERTY = settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# a few lines that are not English, so that some merges join multi-byte characters
EXTRA = "Grüße aus Köln! Ça va très bien. 日本語のテキスト。 Привет, мир. 🙂🙂 👍🏽 ok\n" * 3

# text with every kind of character the pre-tokenizer distinguishes
text_strategy = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.sampled_from(list("ab 'sll\n\t_1é🙂日,")), max_size=40),
)


@pytest.fixture(scope="module")
def tok():
    return BPETokenizer.train(lesson_text() + EXTRA, vocab_size=600)


def naive_train(text, vocab_size):
    """Reference trainer: recount every pair after every merge (slow, obviously right)."""
    words = [list(c.encode("utf-8")) for c in split_chunks(text)]
    merges = {}
    for new_id in range(256, vocab_size):
        counts = {}
        for ids in words:
            for pair in zip(ids, ids[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges[best] = new_id
        words = [_merge(ids, best, new_id) for ids in words]
    return merges


def _merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


# -- split_chunks -------------------------------------------------------------


@PROPERTY
@given(text_strategy)
def test_split_chunks_covers_text(text):
    chunks = split_chunks(text)
    assert "".join(chunks) == text
    assert all(chunks), "no empty chunk"


def test_split_chunks_examples():
    assert split_chunks("Hello, world! It's 2024.") == [
        "Hello", ",", " world", "!", " It", "'s", " 2024", "."
    ]
    # the space before a word stays with the word; "_" is punctuation
    assert split_chunks("x  = my_var\n") == ["x", " ", " =", " my", "_", "var", "\n"]
    assert split_chunks("naïve 日本") == ["naïve", " 日本"]
    assert split_chunks("") == []


# -- training -----------------------------------------------------------------


def test_train_tie_rule_smallest_pair():
    # chunks "ba", " ab": (98, 97), (32, 97), (97, 98) all occur once -> (32, 97)
    assert BPETokenizer.train("ba ab", 257).merges == {(32, 97): 256}


def test_train_most_frequent_beats_smaller_pair():
    # chunks "zzz", " ab": (122, 122) occurs twice, the others once
    assert BPETokenizer.train("zzz ab", 257).merges == {(122, 122): 256}


def test_train_hand_example():
    # "aaab": (97, 97) x2 first; then [256, 97, 98]: (256, 97) and (97, 98) once each
    assert BPETokenizer.train("aaab", 258).merges == {(97, 97): 256, (97, 98): 257}


def test_train_counts_pairs_inside_chunks_only():
    tok = BPETokenizer.train("ab ab", 300)
    # "ab" + " ab": (98, 32) would cross a chunk boundary and is never counted
    assert tok.merges == {(97, 98): 256, (32, 256): 257}


def test_train_stops_when_no_pair_is_left():
    tok = BPETokenizer.train("ab", 1000)
    assert tok.merges == {(97, 98): 256}
    assert tok.vocab_size == 257
    assert BPETokenizer.train("", 300).vocab_size == 256


def test_train_is_deterministic():
    text = lesson_text()[:4000] + EXTRA
    a = BPETokenizer.train(text, 500)
    b = BPETokenizer.train(text, 500)
    assert list(a.merges.items()) == list(b.merges.items())


def test_train_matches_naive_reference_on_lesson_text():
    text = lesson_text()[:3000] + EXTRA
    assert list(BPETokenizer.train(text, 420).merges.items()) == list(naive_train(text, 420).items())


@PROPERTY
@given(st.text(alphabet=st.sampled_from(list("aab b\nc'sé日")), max_size=60), st.integers(256, 300))
def test_train_matches_naive_reference_property(text, vocab_size):
    assert list(BPETokenizer.train(text, vocab_size).merges.items()) == list(
        naive_train(text, vocab_size).items()
    )


def test_train_smaller_vocab_is_a_prefix(tok):
    small = BPETokenizer.train(lesson_text() + EXTRA, 400)
    assert list(small.merges.items()) == list(tok.merges.items())[:144]


def test_merges_and_vocab_are_consistent(tok):
    assert tok.vocab_size == 600 == len(tok.vocab)
    assert list(tok.merges.values()) == list(range(256, 600))
    for (a, b), new_id in tok.merges.items():
        assert a < new_id and b < new_id
        assert tok.vocab[new_id] == tok.vocab[a] + tok.vocab[b]
    assert all(tok.vocab[i] == bytes([i]) for i in range(256))


@pytest.mark.parametrize("bad", [255, 0, -1, 2.5, "300", None, True])
def test_train_rejects_bad_vocab_size(bad):
    with pytest.raises(ValueError, match="vocab_size"):
        BPETokenizer.train("hello", bad)


# -- encode / decode -----------------------------------------------------------


def test_encode_applies_merges_by_rank():
    # rank 0 is (b, c), rank 1 is (a, b): in "abc" the pair (b, c) is merged first,
    # although (a, b) comes first in the text
    tok = BPETokenizer({(98, 99): 256, (97, 98): 257})
    assert tok.encode("abc") == [97, 256]
    assert tok.encode("ab") == [257]
    # a merge that uses an earlier merge
    chain = BPETokenizer({(97, 98): 256, (256, 99): 257})
    assert chain.encode("abc abd") == [257, 32, 256, 100]


def test_encode_does_not_merge_across_chunks():
    tok = BPETokenizer({(98, 32): 256})  # "b" + " "
    assert tok.encode("ab ab") == [97, 98, 32, 97, 98]


def test_encode_cache_gives_same_result(tok):
    text = lesson_text()[:2000]
    assert tok.encode(text) == tok.encode(text)


def test_encode_compresses_training_text(tok):
    text = lesson_text()
    assert len(tok.encode(text)) < 0.5 * len(text.encode("utf-8"))


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "hello world",
        "🙂",
        "👍🏽 family: 👨‍👩‍👧",
        "Grüße, naïve café — 日本語 Привет مرحبا",
        "\x00\x01\x7f\t\r\n\u200b\ufeff",
        "it's  they'll   x=1_000\n\n",
        "\ufffd and \U0010ffff",
    ],
)
def test_round_trip_examples(tok, text):
    assert tok.decode(tok.encode(text)) == text


@PROPERTY
@given(text_strategy)
def test_round_trip_property(tok, text):
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text
    assert tok.decode_bytes(ids) == text.encode("utf-8")


def test_pieces_join_to_text(tok):
    text = "The tokenizer splits text into pieces."
    pieces = tok.pieces(text)
    assert "".join(pieces) == text
    assert len(pieces) == len(tok.encode(text))


@PROPERTY
@given(text_strategy)
def test_pieces_bytes_equal_text_bytes(tok, text):
    ids = tok.encode(text)
    assert b"".join(tok.vocab[i] for i in ids) == text.encode("utf-8")
    assert len(tok.pieces(text)) == len(ids)


def test_pieces_show_split_character():
    assert BPETokenizer().pieces("é") == ["\\xc3", "\\xa9"]


def test_decode_joins_bytes_before_utf8():
    # a merged token " " + first byte of the emoji: the boundary is inside the character
    tok = BPETokenizer({(32, 240): 256})
    ids = tok.encode(" 🙂")
    assert ids == [256, 159, 153, 130]
    # decoded in parts, the halves of the emoji become replacement characters
    assert tok.decode(ids[:1]) == " \ufffd"
    assert "\ufffd" in tok.decode(ids[:2])
    assert tok.decode(ids) == " 🙂"


def test_trained_tokenizer_splits_some_character_and_decodes_it(tok):
    # find a character of EXTRA whose bytes are spread over several tokens
    text = EXTRA
    ids = tok.encode(text)
    split_seen = any(_is_partial_utf8(tok.vocab[i]) for i in ids)
    assert split_seen, "expected at least one token that holds part of a character"
    assert tok.decode(ids) == text


def _is_partial_utf8(b):
    try:
        b.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


def test_decode_invalid_bytes_are_replaced():
    assert BPETokenizer().decode([104, 255, 105]) == "h\ufffdi"


def test_decode_accepts_sequences_and_arrays(tok):
    ids = tok.encode("hello there")
    assert tok.decode(tuple(ids)) == "hello there"
    assert tok.decode(np.array(ids, dtype=np.int64)) == "hello there"
    assert tok.decode([]) == ""


@pytest.mark.parametrize("bad", [-1, 600, 10**9])
def test_decode_unknown_id(tok, bad):
    with pytest.raises(ValueError, match=str(bad)):
        tok.decode([65, bad])
    with pytest.raises(ValueError, match=str(bad)):
        tok.decode_bytes([bad])


@pytest.mark.parametrize("bad", [3.0, "a", None, True])
def test_decode_non_int_id(tok, bad):
    with pytest.raises(ValueError, match="not an int"):
        tok.decode([65, bad])


@pytest.mark.parametrize("bad", [b"bytes", None, 42, ["a"]])
def test_non_str_text_is_type_error(tok, bad):
    with pytest.raises(TypeError, match="str"):
        tok.encode(bad)
    with pytest.raises(TypeError):
        tok.pieces(bad)
    with pytest.raises(TypeError):
        split_chunks(bad)
    with pytest.raises(TypeError):
        BPETokenizer.train(bad, 300)


def test_lone_surrogate_is_value_error(tok):
    with pytest.raises(ValueError, match="surrogate.*index 2"):
        tok.encode("ab\ud800cd")
    with pytest.raises(ValueError, match="surrogate"):
        BPETokenizer.train("x\udfff", 300)


def test_repr(tok):
    assert repr(tok) == "BPETokenizer(vocab_size=600, merges=344)"


# -- save / load ----------------------------------------------------------------


def test_save_load_round_trip(tok, tmp_path):
    path = tmp_path / "tok.json"
    tok.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == FORMAT_NAME and data["version"] == FORMAT_VERSION
    assert data["merges"][0] == list(next(iter(tok.merges)))
    loaded = BPETokenizer.load(str(path))
    assert list(loaded.merges.items()) == list(tok.merges.items())
    assert loaded.vocab == tok.vocab
    text = lesson_text()[:500] + EXTRA
    assert loaded.encode(text) == tok.encode(text)


def test_save_load_empty(tmp_path):
    path = tmp_path / "empty.json"
    BPETokenizer().save(path)
    assert BPETokenizer.load(path).vocab_size == 256


def _valid():
    return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "vocab_size": 258, "merges": [[97, 98], [256, 99]]}


@pytest.mark.parametrize(
    "content",
    [
        "not json at all",
        "",
        "[1, 2]",
        json.dumps({k: v for k, v in _valid().items() if k != "merges"}),
        json.dumps({k: v for k, v in _valid().items() if k != "format"}),
        json.dumps({**_valid(), "format": "something-else"}),
        json.dumps({**_valid(), "version": 99}),
        json.dumps({**_valid(), "merges": "abc"}),
        json.dumps({**_valid(), "merges": [[97, 98], [256]]}),
        json.dumps({**_valid(), "merges": [[97, 98], [257, 99]]}),  # id 257 not made yet
        json.dumps({**_valid(), "merges": [[97, 98], [97, 98]]}),
        json.dumps({**_valid(), "merges": [[97, 98], [-1, 99]]}),
        json.dumps({**_valid(), "merges": [[97, 98], [1.5, 99]]}),
        json.dumps({**_valid(), "vocab_size": 300}),
    ],
)
def test_load_corrupt_file_names_path(tmp_path, content):
    path = tmp_path / "broken.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        BPETokenizer.load(path)
    assert str(path) in str(info.value)


def test_load_valid_hand_written(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(_valid()), encoding="utf-8")
    tok = BPETokenizer.load(path)
    assert tok.encode("abc") == [257]


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        BPETokenizer.load(tmp_path / "nope.json")
