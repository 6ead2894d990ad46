"""Exercise 1: special tokens on top of a BPE tokenizer.

A language model needs a few control tokens that are not text: ``<bos>`` (beginning of a sequence),
``<eos>`` (end of a sequence: generation stops here) and ``<pad>`` (filler that makes every sequence of a
batch the same length). Here you wrap a trained ``llm_basics.tokenizer.BPETokenizer`` (the *base*) in a
``SpecialTokenizer`` that adds them.

Ids
---
The base owns ids ``0 .. base.vocab_size - 1``. Special token number ``i`` (in the order given) gets id
``base.vocab_size + i``, so it can never collide with a text token. With a base of 300 ids and the default
specials: ``<bos>`` = 300, ``<eos>`` = 301, ``<pad>`` = 302, and ``vocab_size`` = 303.

Safety: users must not be able to type a control token
-------------------------------------------------------
If every ``"<eos>"`` inside user text became the id 301, anyone could end a sequence early or forge a
prompt structure by typing five characters. So ``encode`` treats a special string in the text as ordinary
text (encoded by the base BPE, many ids, none of them special) UNLESS the caller lists it in
``allowed_special``. An allowed special is never cut apart or glued to its neighbours: it becomes its one id,
and the text on each side of it is encoded on its own. A special that is not allowed is plain text like any
other, so the BPE may merge its ``<`` with the character before it (``".<eos>"`` may encode with a ``".<"``
token): the result is exactly ``base.encode(text)``.

Worked example (base of 300 ids; ``base.encode("hi")`` is written ``[h, i]`` here)::

    tok = SpecialTokenizer(base)
    tok.encode("hi<eos>")                          # [h, i, <, e, o, s, >]   (base.encode("hi<eos>"))
    tok.encode("hi<eos>", allowed_special="all")   # [h, i, 301]
    tok.encode("hi", add_bos=True, add_eos=True)   # [300, h, i, 301]
    tok.decode([300, h, i, 301])                   # "<bos>hi<eos>"
    tok.decode([300, h, i, 301], skip_special_tokens=True)   # "hi"
    tok.pad([[5, 6, 7], [8]])
    # {"input_ids": [[5, 6, 7], [8, 302, 302]], "attention_mask": [[1, 1, 1], [1, 0, 0]]}
    tok.pad([[5, 6, 7], [8]], side="left")
    # {"input_ids": [[5, 6, 7], [302, 302, 8]], "attention_mask": [[1, 1, 1], [0, 0, 1]]}

The round trip ``decode(encode(s)) == s`` holds for every string ``s``, with or without
``allowed_special="all"``.

Conventions used in every docstring below: "an int" means a Python ``int`` that is not a ``bool`` (``True``
and ``False`` are refused wherever an int is asked for, and so is a float such as ``3.0``); numpy integers
are not part of this exercise. "ValueError naming X" means that ``str(X)`` appears in the error message.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Sequence

from llm_basics.tokenizer import BPETokenizer

FORMAT_NAME = "llm_basics-special-tokenizer"
FORMAT_VERSION = 1
DEFAULT_SPECIALS = ("<bos>", "<eos>", "<pad>")


class SpecialTokenizer:
    """A BPE tokenizer plus special (control) tokens whose ids follow the base vocabulary."""

    def __init__(self, base: BPETokenizer, special_tokens: Sequence[str] = DEFAULT_SPECIALS):
        """Wrap ``base`` and give each special token an id after the base vocabulary.

        Store three attributes (the properties below read them):

        * ``self.base``: the base tokenizer;
        * ``self.special_tokens``: a tuple of the special strings, in the order given;
        * ``self._ids``: a dict special string -> id, where the i-th special gets ``base.vocab_size + i``.

        Example (``base.vocab_size == 300``)::

            tok = SpecialTokenizer(base)
            tok._ids        # {'<bos>': 300, '<eos>': 301, '<pad>': 302}

        Errors:

        * ``special_tokens`` is a single ``str`` (``"<eos>"`` instead of ``("<eos>",)``) -> ``TypeError``;
        * a special that is not a ``str`` -> ``TypeError``;
        * an empty special ``""`` -> ``ValueError``;
        * the same special twice -> ``ValueError`` naming it.

        A list works like a tuple (``self.special_tokens`` is a tuple either way). An empty tuple is allowed:
        no specials at all, so ``vocab_size == base.vocab_size``, ``bos_id``, ``eos_id`` and ``pad_id`` are
        ``None``, and ``encode(text, allowed_special="all")`` is ``base.encode(text)``.
        """
        # Step 1: check the special tokens (see the errors above).
        # BEGIN SOLUTION TODO: raise TypeError/ValueError for a bare str, a non-str, an empty or a repeated special
        if isinstance(special_tokens, str):
            raise TypeError(f"special_tokens must be a tuple or list of str, not the str {special_tokens!r}")
        special_tokens = tuple(special_tokens)
        for token in special_tokens:
            if not isinstance(token, str):
                raise TypeError(f"every special token must be a str, got {token!r} ({type(token).__name__})")
            if token == "":
                raise ValueError("a special token cannot be the empty string")
        for i, token in enumerate(special_tokens):
            if token in special_tokens[:i]:
                raise ValueError(f"special token {token!r} is given twice")
        # END SOLUTION
        # Step 2: store base, the tuple of specials, and the dict string -> base.vocab_size + i.
        # BEGIN SOLUTION TODO: set self.base, self.special_tokens and self._ids (the i-th special gets base.vocab_size + i)
        self.base = base
        self.special_tokens = special_tokens
        self._ids = {token: base.vocab_size + i for i, token in enumerate(special_tokens)}
        # END SOLUTION

    # -- given: read-only views of what __init__ stored ----------------------------------------------------

    @property
    def special_ids(self) -> dict[str, int]:
        """A copy of the dict special string -> id, e.g. ``{'<bos>': 300, '<eos>': 301, '<pad>': 302}``."""
        return dict(self._ids)

    @property
    def vocab_size(self) -> int:
        """Number of ids in all: the base ids plus one per special token."""
        return self.base.vocab_size + len(self.special_tokens)

    @property
    def bos_id(self) -> int | None:
        """Id of ``"<bos>"``, or ``None`` when ``"<bos>"`` is not one of the special tokens."""
        return self._ids.get("<bos>")

    @property
    def eos_id(self) -> int | None:
        """Id of ``"<eos>"``, or ``None`` when ``"<eos>"`` is not one of the special tokens."""
        return self._ids.get("<eos>")

    @property
    def pad_id(self) -> int | None:
        """Id of ``"<pad>"``, or ``None`` when ``"<pad>"`` is not one of the special tokens."""
        return self._ids.get("<pad>")

    def _required_id(self, token: str) -> int:
        """The id of ``token``; ValueError when this tokenizer has no such special token."""
        if token not in self._ids:
            raise ValueError(f"this tokenizer has no {token} token (its special tokens are {self.special_tokens})")
        return self._ids[token]

    # -- encoding --------------------------------------------------------------------------------------------

    def encode(
        self,
        text: str,
        *,
        add_bos: bool = False,
        add_eos: bool = False,
        allowed_special: str | Iterable[str] = (),
    ) -> list[int]:
        """Text -> ids.

        ``allowed_special`` says which special strings inside ``text`` become their single id:

        * ``()`` (default): none. A ``"<eos>"`` in the text is plain text: the result is exactly
          ``self.base.encode(text)``, and it holds no special id.
        * ``"all"``: every special token of this tokenizer.
        * a list/tuple/set of special strings, e.g. ``["<eos>"]``: only those; the others stay plain text.
          A string in it that is not a special token -> ``ValueError``, and so does an entry that is not a
          ``str`` at all (``allowed_special=[5]``); any other ``str`` than ``"all"`` (e.g.
          ``allowed_special="<eos>"``) -> ``ValueError`` too.

        Cut the text at every occurrence of an allowed special; each special becomes its one id, and each
        piece of text between them is encoded with ``self.base.encode`` on its own (so BPE never merges
        across a special). Then ``add_bos`` puts the ``<bos>`` id FIRST and ``add_eos`` puts the ``<eos>`` id
        LAST (``ValueError`` if this tokenizer has no such token; the ``_required_id`` helper does that).

        When allowed specials overlap, read the text from left to right: the special that STARTS FIRST wins,
        and of two that start at the same place the LONGER wins (the order of ``special_tokens`` plays no
        part). With ``tok2 = SpecialTokenizer(base, ("a><", "<a>", "<a><b>"))`` (ids 300, 301, 302)::

            tok2.encode("<a><b>", allowed_special="all")             # [302]: "<a>" and "<a><b>" start at 0
            tok2.encode("<a><b>", allowed_special=["a><", "<a>"])    # [301, *base.encode("<b>")]: "<a>"
                                                                     # starts before "a><" (at 1)
            tok2.encode("<a><b>", allowed_special=["a><"])           # [*base.encode("<"), 300, *base.encode("b>")]

        Examples (``base.vocab_size == 300``)::

            tok.encode("a<eos><eos>b", allowed_special="all")  # [*base.encode("a"), 301, 301, *base.encode("b")]
            tok.encode("<eo", allowed_special="all")           # base.encode("<eo"): a partial special is text
            tok.encode("")                                     # []: empty text, no ids
            tok.encode("", add_bos=True, add_eos=True)         # [300, 301]

        A special at the very start or end of the text works the same as one in the middle.
        ``text`` that is not a ``str`` -> ``TypeError``.
        """
        # Step 1: check the text, and work out the set of allowed specials.
        # BEGIN SOLUTION TODO: TypeError for non-str text; turn allowed_special into a set of specials (ValueError for bad ones)
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if isinstance(allowed_special, str):
            if allowed_special != "all":
                raise ValueError(
                    f"allowed_special must be 'all' or a collection of special tokens, got the str {allowed_special!r}"
                )
            allowed_special = self.special_tokens
        allowed = set(allowed_special)
        for token in allowed:
            if token not in self._ids:
                raise ValueError(f"{token!r} in allowed_special is not a special token of this tokenizer")
        # END SOLUTION
        # Step 2: build the list ``ids``: cut the text at the allowed specials; a special -> its one id,
        #         each piece of text between them -> self.base.encode(piece).
        # BEGIN SOLUTION TODO: split text around the allowed specials; emit one id per special and base.encode(piece) for the rest
        ids: list[int] = []
        pieces = [text]
        if allowed:
            longest_first = sorted(allowed, key=len, reverse=True)
            pattern = "(" + "|".join(re.escape(token) for token in longest_first) + ")"
            pieces = re.split(pattern, text)  # odd positions hold the specials that matched
        for position, piece in enumerate(pieces):
            if position % 2 == 1:
                ids.append(self._ids[piece])
            elif piece:
                ids.extend(self.base.encode(piece))
        # END SOLUTION
        # Step 3: <bos> first, <eos> last, when asked for.
        # BEGIN SOLUTION TODO: put the <bos> id first if add_bos and the <eos> id last if add_eos
        if add_bos:
            ids.insert(0, self._required_id("<bos>"))
        if add_eos:
            ids.append(self._required_id("<eos>"))
        # END SOLUTION
        return ids

    # -- decoding --------------------------------------------------------------------------------------------

    def decode(self, ids: Iterable[int], *, skip_special_tokens: bool = False) -> str:
        """Ids -> text. A special id becomes its string (e.g. ``"<eos>"``), or nothing when
        ``skip_special_tokens`` is True.

        Decode each RUN of base ids between special ids with ONE call to ``self.base.decode``, not id by id:
        a character like ``"🙂"`` may be spread over several byte tokens and only comes back whole when its
        bytes are decoded together. Keep the text after the last special too.

        ``ids`` may be any iterable of ints, a generator too, which can be walked only once: make a list of it
        first (``ids = list(ids)``), then check and decode that list.

        Examples (``base.vocab_size == 300``)::

            tok.decode([300, *base.encode("hi"), 301])                            # '<bos>hi<eos>'
            tok.decode([300, *base.encode("hi"), 301], skip_special_tokens=True)  # 'hi'
            tok.decode([])                                                        # ''

        An id that is not an int in ``0 .. vocab_size - 1`` -> ``ValueError`` naming that id: ``-1``,
        ``vocab_size``, ``True`` and ``3.0`` are all refused, and so is ``301.0`` although it equals the
        ``<eos>`` id.
        """
        # Step 1: check every id.
        # BEGIN SOLUTION TODO: raise ValueError naming any id that is not an int in 0..vocab_size-1
        ids = list(ids)
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.vocab_size:
                raise ValueError(f"unknown token id {i!r}: ids must be ints in 0..{self.vocab_size - 1}")
        # END SOLUTION
        # Step 2: walk the ids; a run of base ids is decoded in one go; a special id adds its string.
        # BEGIN SOLUTION TODO: decode runs of base ids with self.base.decode, put the special strings between them, return the text
        token_of = {i: token for token, i in self._ids.items()}
        parts: list[str] = []
        run: list[int] = []
        for i in ids:
            if i in token_of:
                parts.append(self.base.decode(run))
                run = []
                if not skip_special_tokens:
                    parts.append(token_of[i])
            else:
                run.append(i)
        parts.append(self.base.decode(run))
        return "".join(parts)
        # END SOLUTION

    # -- batching --------------------------------------------------------------------------------------------

    def pad(
        self,
        batch: Sequence[Sequence[int]],
        *,
        length: int | None = None,
        side: str = "right",
    ) -> dict[str, list[list[int]]]:
        """Pad every sequence of ``batch`` with the ``<pad>`` id to the same length.

        Returns ``{"input_ids": rows, "attention_mask": masks}``: lists of lists, one row per sequence, where
        the mask is 1 at a real token and 0 at a pad.

        * ``length=None``: pad to the longest sequence of the batch. Given: pad every row to exactly
          ``length``; a sequence LONGER than ``length`` -> ``ValueError`` (no silent truncation).
          ``length`` must be an int >= 0, else ``ValueError`` (``-1``, ``2.0`` and ``True`` are refused).
        * ``side="right"`` puts the pads after the tokens, ``side="left"`` before them (used for generation,
          so that every prompt ends at the last position). Any other side -> ``ValueError``.
        * An empty batch gives ``{"input_ids": [], "attention_mask": []}``.
        * No ``<pad>`` special token in this tokenizer -> ``ValueError``, even for an empty batch.

        (Build new lists rather than appending to the ones you are given: they belong to the caller.)

        Example (``<pad>`` is 302)::

            tok.pad([[5, 6, 7], [8]], length=4, side="left")
            # {'input_ids':      [[302, 5, 6, 7], [302, 302, 302, 8]],
            #  'attention_mask': [[0, 1, 1, 1],   [0, 0, 0, 1]]}
        """
        # Step 1: check side and length, and find the target length.
        # BEGIN SOLUTION TODO: ValueError for a bad side or length; the target length is length, or the longest row
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', got {side!r}")
        pad_id = self._required_id("<pad>")
        rows = [list(seq) for seq in batch]
        longest = max((len(row) for row in rows), default=0)
        if length is None:
            length = longest
        elif isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ValueError(f"length must be an int >= 0 or None, got {length!r}")
        elif longest > length:
            raise ValueError(f"a sequence of {longest} ids is longer than length={length} (pad does not truncate)")
        # END SOLUTION
        # Step 2: build each padded row and its mask (1 = token, 0 = pad) on the chosen side.
        # BEGIN SOLUTION TODO: pad each row with length - len(row) pad ids on the chosen side, build its 1/0 mask, return the dict
        input_ids: list[list[int]] = []
        attention_mask: list[list[int]] = []
        for row in rows:
            n_pad = length - len(row)
            if side == "right":
                input_ids.append(row + [pad_id] * n_pad)
                attention_mask.append([1] * len(row) + [0] * n_pad)
            else:
                input_ids.append([pad_id] * n_pad + row)
                attention_mask.append([0] * n_pad + [1] * len(row))
        return {"input_ids": input_ids, "attention_mask": attention_mask}
        # END SOLUTION

    # -- saving and loading ----------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write this tokenizer (base merges AND special tokens) to one JSON file at ``path`` (a str or a Path).

        A good layout::

            {"format": FORMAT_NAME, "version": FORMAT_VERSION,
             "special_tokens": ["<bos>", "<eos>", "<pad>"],
             "merges": [[left_id, right_id], ...]}       # self.base.merges in rank order
        """
        # BEGIN SOLUTION TODO: write format, version, the special tokens and the base merges as JSON
        data = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "special_tokens": list(self.special_tokens),
            "merges": [[a, b] for (a, b) in self.base.merges],
        }
        Path(path).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        # END SOLUTION

    @classmethod
    def load(cls, path: str | Path) -> "SpecialTokenizer":
        """Read a file written by ``save`` and rebuild the same tokenizer (same ids, same specials).

        Rebuild the base with ``BPETokenizer({(a, b): 256 + rank, ...})``: merge number ``rank`` makes id
        ``256 + rank``. A file that is not valid JSON, or JSON that ``save`` did not write (such as
        ``[1, 2, 3]`` or ``"<bos>"``) -> ``ValueError`` naming the path. A file that does not exist ->
        ``FileNotFoundError``, as ``open`` raises it. ``path`` may be a ``str`` or a ``Path``.
        """
        # BEGIN SOLUTION TODO: read the JSON, check it, rebuild the BPETokenizer from the merges and return cls(base, specials)
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
                raise ValueError(f"format is not {FORMAT_NAME!r}")
            if data.get("version") != FORMAT_VERSION:
                raise ValueError(f"version is {data.get('version')!r}, expected {FORMAT_VERSION}")
            merges = {(int(a), int(b)): 256 + rank for rank, (a, b) in enumerate(data["merges"])}
            specials = data["special_tokens"]
            if not isinstance(specials, list):
                raise ValueError("'special_tokens' must be a list")
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: not a special-tokenizer file ({err})") from None
        return cls(BPETokenizer(merges), specials)
        # END SOLUTION
