"""A byte-level BPE tokenizer, written from scratch.

Byte-pair encoding (BPE) starts from the 256 possible byte values and learns
"merges": it repeatedly finds the most frequent pair of neighbouring tokens in
the training text and gives that pair a new id. After training:

* ids ``0..255`` are the raw bytes (so *any* string can be encoded), and
* merge number ``i`` creates id ``256 + i``.

Example
-------
>>> tok = BPETokenizer.train("low lower lowest " * 50, vocab_size=263)
>>> tok.pieces(" lowest slow")
[' lowest', ' ', 's', 'low']
>>> tok.decode(tok.encode("naïve 🙂"))
'naïve 🙂'

Three functions do the work:

* ``split_chunks`` cuts text into chunks (words, numbers, punctuation runs,
  whitespace runs). Merges never cross a chunk boundary, so a token never
  glues the end of one word to the start of the next.
* ``BPETokenizer.train`` learns the merges.
* ``BPETokenizer.encode`` / ``decode`` apply them.
"""

from __future__ import annotations

import heapq
import json
import numbers
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

__all__ = ["BPETokenizer", "split_chunks", "SPLIT_PATTERN", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "llm_basics-bpe"
FORMAT_VERSION = 1

# ---------------------------------------------------------------------------
# Pre-tokenization
# ---------------------------------------------------------------------------

# The GPT-2 idea, written for Python's `re` module (which has no \p{L}).
# The alternatives are tried left to right at each position:
#   1. an English contraction:                 's 't 're 've 'm 'll 'd
#   2. an optional space + a run of letters:   " hello", "naïve", "日本"
#      ([^\W\d_] = word characters that are neither digits nor "_")
#   3. an optional space + a run of digits:    " 2024"
#   4. an optional space + punctuation/symbols (anything that is not a
#      space, letter or digit; "_" counts as punctuation): " (", "__", "🙂"
#   5. a run of whitespace that is not followed by a non-space: the space
#      just before a word is left for that word ("x  = 1" -> "x", " ", " =")
#   6. any other run of whitespace (e.g. at the end of the text)
#   7. a catch-all for one character, so that no character is ever dropped.
SPLIT_PATTERN = (
    r"'(?:[sdmt]|ll|ve|re)"
    r"| ?[^\W\d_]+"
    r"| ?\d+"
    r"| ?(?:[^\s\w]|_)+"
    r"|\s+(?!\S)"
    r"|\s+"
    r"|[\s\S]"
)
_SPLIT_RE = re.compile(SPLIT_PATTERN)


def split_chunks(text: str) -> list[str]:
    """Cut ``text`` into the chunks that BPE works on, losing nothing.

    >>> split_chunks("Hello, world! It's 2024.")
    ['Hello', ',', ' world', '!', ' It', "'s", ' 2024', '.']
    >>> "".join(split_chunks("any text  at all\\n")) == "any text  at all\\n"
    True
    """
    _check_text(text)
    return _SPLIT_RE.findall(text)


# ---------------------------------------------------------------------------
# Small helpers shared by training and encoding
# ---------------------------------------------------------------------------


def _check_text(text: object) -> None:
    """Raise TypeError unless ``text`` is a ``str``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")


def _to_utf8(text: str) -> bytes:
    """UTF-8 bytes of ``text``; a clear ValueError for lone surrogates.

    A lone surrogate (e.g. ``"\\ud800"``) is a valid Python ``str`` but not
    valid Unicode text, so it has no UTF-8 encoding.
    """
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = text[err.start]
        raise ValueError(
            f"text contains a lone surrogate {bad!r} (U+{ord(bad):04X}) at index {err.start}; "
            "it is not valid Unicode and has no UTF-8 bytes to tokenize"
        ) from None


def get_pair_counts(ids: list[int], counts: dict | None = None, weight: int = 1) -> dict:
    """Count neighbouring pairs, each occurrence worth ``weight``.

    >>> get_pair_counts([1, 2, 3, 1, 2])
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` (scanning left to right) by ``new_id``.

    >>> merge([1, 2, 3, 1, 2], (1, 2), 256)
    [256, 3, 256]
    >>> merge([5, 5, 5], (5, 5), 256)   # overlapping: the leftmost wins
    [256, 5]
    """
    out = []
    i = 0
    n = len(ids)
    while i < n:
        if i + 1 < n and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _readable(token: bytes) -> str:
    """Show a token's bytes as text; bytes that are not whole UTF-8 characters
    appear as escapes, e.g. ``b'\\xf0\\x9f'`` -> ``'\\\\xf0\\\\x9f'``."""
    return token.decode("utf-8", errors="backslashreplace")


# ---------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------


class BPETokenizer:
    """Byte-level BPE: ids 0-255 are bytes, merge ``i`` makes id ``256 + i``.

    Attributes
    ----------
    merges : dict[tuple[int, int], int]
        ``(left_id, right_id) -> new_id``, in the order the merges were learned
        (the rank of a merge is ``new_id - 256``).
    vocab : dict[int, bytes]
        ``id -> the bytes that id stands for``; derived from ``merges``.
    vocab_size : int
        ``256 + len(merges)``.

    >>> tok = BPETokenizer({(104, 105): 256})      # one merge: b"h" + b"i"
    >>> tok.encode("hi!")
    [256, 33]
    >>> tok.vocab[256]
    b'hi'
    """

    # encode() remembers the ids of this many distinct chunks
    cache_limit = 100_000

    def __init__(self, merges: dict[tuple[int, int], int] | None = None):
        self.merges: dict[tuple[int, int], int] = dict(merges or {})
        self.vocab: dict[int, bytes] = self._build_vocab(self.merges)
        self._cache: dict[str, list[int]] = {}

    @staticmethod
    def _build_vocab(merges: dict[tuple[int, int], int]) -> dict[int, bytes]:
        """Byte strings for every id: the 256 bytes, then each merge in rank order."""
        vocab = {i: bytes([i]) for i in range(256)}
        for (a, b), new_id in merges.items():
            vocab[new_id] = vocab[a] + vocab[b]
        return vocab

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges)

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)})"

    # -- training ------------------------------------------------------------

    @classmethod
    def train(cls, text: str, vocab_size: int, *, verbose: bool = False) -> "BPETokenizer":
        """Learn ``vocab_size - 256`` merges from ``text``.

        Rule for each step: merge the most frequent neighbouring pair; among
        equally frequent pairs take the smallest ``(left_id, right_id)``.
        Pairs are counted inside chunks only (see ``split_chunks``).

        Training stops early, with fewer merges, when no pair is left at all
        (every chunk is a single token); ``vocab_size`` of the result is then
        smaller than asked for. A pair seen only once is still merged.

        >>> tok = BPETokenizer.train("aaab", vocab_size=258)
        >>> tok.merges   # (97, 97) occurs twice: first. Then "aaab" is [256, 97, 98];
        ...              # (256, 97) and (97, 98) occur once each: the smaller wins
        {(97, 97): 256, (97, 98): 257}

        Speed: identical chunks are counted once (with a weight), pair counts
        are updated incrementally, an index tells which chunks hold a pair,
        and a heap finds the best pair (stale heap entries are skipped).
        """
        _check_text(text)
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, numbers.Integral):
            raise ValueError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be at least 256 (one id per byte), got {vocab_size}")
        _to_utf8(text)  # reject lone surrogates with a clear message
        n_merges = int(vocab_size) - 256

        # Step 1: split into chunks and count each distinct chunk once.
        chunk_counts = Counter(split_chunks(text))
        words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]  # byte ids per chunk
        freqs = list(chunk_counts.values())  # how often each chunk occurs

        # Step 2: count every pair (weighted by chunk frequency) and remember
        # which chunks contain it.
        pair_counts: dict[tuple[int, int], int] = {}
        where: dict[tuple[int, int], set[int]] = {}
        for w, ids in enumerate(words):
            for pair in zip(ids, ids[1:]):
                pair_counts[pair] = pair_counts.get(pair, 0) + freqs[w]
                where.setdefault(pair, set()).add(w)

        # Step 3: a heap of (-count, left, right): the top is the best pair
        # under the tie rule. Entries go stale when a count changes; we push a
        # fresh entry on every change and skip stale ones when popped.
        heap = [(-c, a, b) for (a, b), c in pair_counts.items()]
        heapq.heapify(heap)

        merges: dict[tuple[int, int], int] = {}
        vocab = {i: bytes([i]) for i in range(256)}
        while len(merges) < n_merges and heap:
            # Step 4: pop the best pair whose count is still current.
            neg_count, a, b = heapq.heappop(heap)
            pair = (a, b)
            if pair_counts.get(pair, 0) != -neg_count:
                continue  # stale entry
            new_id = 256 + len(merges)
            merges[pair] = new_id
            vocab[new_id] = vocab[a] + vocab[b]
            if verbose:
                print(
                    f"merge {len(merges)}/{n_merges}: {pair} -> {new_id} "
                    f"{_readable(vocab[new_id])!r} (count {-neg_count})"
                )

            # Step 5: rewrite only the chunks that contain the pair, and
            # update the pair counts by the difference (old pairs out, new in).
            delta: dict[tuple[int, int], int] = {}
            for w in where.pop(pair):
                old = words[w]
                new = merge(old, pair, new_id)
                if len(new) == len(old):
                    continue  # the index is a superset: this chunk lost the pair earlier
                f = freqs[w]
                get_pair_counts(old, delta, -f)
                get_pair_counts(new, delta, f)
                for p in zip(new, new[1:]):
                    if new_id in p:
                        where.setdefault(p, set()).add(w)
                words[w] = new

            # Step 6: apply the changes and push fresh heap entries.
            for p, d in delta.items():
                if d == 0:
                    continue
                c = pair_counts.get(p, 0) + d
                if c > 0:
                    pair_counts[p] = c
                    heapq.heappush(heap, (-c, p[0], p[1]))
                else:
                    pair_counts.pop(p, None)

        if verbose and len(merges) < n_merges:
            print(f"stopped after {len(merges)} merges: no pair of tokens is left to merge")
        return cls(merges)

    # -- encoding and decoding --------------------------------------------------

    def _encode_chunk(self, chunk: str) -> list[int]:
        """Apply the merges to one chunk, lowest rank (earliest learned) first.

        With merges {(104, 105): 256, (256, 33): 257}:  "hi!" -> [104, 105, 33]
        -> [256, 33] -> [257].
        """
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            # the neighbouring pair whose merge was learned first
            pair = min(zip(ids, ids[1:]), key=lambda p: self.merges.get(p, float("inf")))
            if pair not in self.merges:
                break  # nothing left to merge
            ids = merge(ids, pair, self.merges[pair])
        return ids

    def encode(self, text: str) -> list[int]:
        """Text -> token ids.

        >>> BPETokenizer().encode("hé")        # no merges: one id per byte
        [104, 195, 169]
        """
        _check_text(text)
        _to_utf8(text)  # clear error for lone surrogates
        ids: list[int] = []
        cache = self._cache
        for chunk in split_chunks(text):
            chunk_ids = cache.get(chunk)
            if chunk_ids is None:
                chunk_ids = self._encode_chunk(chunk)
                if len(cache) >= self.cache_limit:
                    cache.clear()
                cache[chunk] = chunk_ids
            ids.extend(chunk_ids)
        return ids

    def _check_ids(self, ids: Iterable[int]) -> list[int]:
        """A list of valid ids; ValueError naming the first bad one."""
        if hasattr(ids, "tolist"):  # numpy arrays, torch tensors
            ids = ids.tolist()
        if isinstance(ids, numbers.Integral):
            ids = [ids]
        checked = []
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, numbers.Integral):
                raise ValueError(f"token id {i!r} is not an int (type {type(i).__name__})")
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"unknown token id {i}: ids must be in 0..{self.vocab_size - 1}")
            checked.append(int(i))
        return checked

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Token ids -> the bytes they stand for (always exact).

        >>> BPETokenizer().decode_bytes([104, 195])
        b'h\\xc3'
        """
        vocab = self.vocab
        return b"".join(vocab[i] for i in self._check_ids(ids))

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids -> text. Bytes are joined first, then decoded as UTF-8, so a
        character split across two tokens comes back whole; bytes that do not
        form valid UTF-8 become U+FFFD.

        >>> BPETokenizer().decode([104, 195, 169])
        'hé'
        >>> BPETokenizer().decode([104, 195])
        'h\ufffd'
        """
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def pieces(self, text: str) -> list[str]:
        """The tokens of ``text`` as readable strings (for teaching).

        A token that holds only part of a multi-byte character shows its
        bytes as escapes:

        >>> BPETokenizer().pieces("hé")
        ['h', '\\\\xc3', '\\\\xa9']
        """
        return [_readable(self.vocab[i]) for i in self.encode(text)]

    # -- saving and loading -----------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the merges to a small JSON file, one ``[left, right]`` per line.

        The vocabulary is not stored: ``load`` rebuilds it from the merges.
        """
        lines = [
            "{",
            f'  "format": {json.dumps(FORMAT_NAME)},',
            f'  "version": {FORMAT_VERSION},',
            f'  "vocab_size": {self.vocab_size},',
            '  "merges": [',
        ]
        pairs = [f"    [{a}, {b}]" for a, b in self.merges]
        lines.append(",\n".join(pairs))
        lines += ["  ]", "}"]
        text = "\n".join(line for line in lines if line) + "\n"
        Path(path).write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "BPETokenizer":
        """Read a file written by ``save``. A file that is not valid JSON, has a
        different format or version, or has malformed merges raises ValueError
        naming the path."""
        path = Path(path)
        raw = path.read_bytes()  # a missing file raises FileNotFoundError

        def bad(why: str) -> ValueError:
            return ValueError(f"{path}: not a valid BPE tokenizer file: {why}")

        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise bad(f"invalid JSON ({err})") from None
        if not isinstance(data, dict):
            raise bad("expected a JSON object at the top level")
        for key in ("format", "version", "merges"):
            if key not in data:
                raise bad(f"missing field {key!r}")
        if data["format"] != FORMAT_NAME:
            raise bad(f"format is {data['format']!r}, expected {FORMAT_NAME!r}")
        if data["version"] != FORMAT_VERSION or isinstance(data["version"], bool):
            raise bad(f"version is {data['version']!r}, this code reads version {FORMAT_VERSION}")
        if not isinstance(data["merges"], list):
            raise bad("'merges' must be a list of [left_id, right_id] pairs")

        merges: dict[tuple[int, int], int] = {}
        for rank, item in enumerate(data["merges"]):
            new_id = 256 + rank
            ok = (
                isinstance(item, list)
                and len(item) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) for x in item)
            )
            if not ok:
                raise bad(f"merge #{rank} is {item!r}, expected [left_id, right_id]")
            a, b = item
            if not (0 <= a < new_id and 0 <= b < new_id):
                raise bad(f"merge #{rank} {item!r} uses an id that does not exist before id {new_id}")
            if (a, b) in merges:
                raise bad(f"merge #{rank} {item!r} repeats an earlier merge")
            merges[(a, b)] = new_id
        if "vocab_size" in data and data["vocab_size"] != 256 + len(merges):
            raise bad(f"vocab_size is {data['vocab_size']!r} but there are {len(merges)} merges")
        return cls(merges)
