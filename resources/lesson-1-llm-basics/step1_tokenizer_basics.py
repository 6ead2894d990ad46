"""Step 1: a byte-level BPE tokenizer, trained on this lesson's own text.

Run from anywhere:
    python resources/lesson-1-llm-basics/step1_tokenizer_basics.py

What you will see:
  1. training: the first merges the tokenizer learns
  2. text -> pieces -> ids -> text
  3. a character split across tokens, and decoded back whole
  4. tokens per character for several vocabulary sizes
"""

import re
import sys
import time
from pathlib import Path

# make `import llm_basics` work without installing the package
REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from llm_basics.corpus import lesson_text, stdlib_text  # noqa: E402
from llm_basics.tokenizer import BPETokenizer, split_chunks  # noqa: E402


def section(title: str) -> None:
    print()
    print("=" * 72)
    print(title)
    print("=" * 72)


def show_training(text: str) -> BPETokenizer:
    section("1. Training: the most frequent pair becomes a new token")
    print(f"training text: the lesson README, {len(text):,} characters, "
          f"{len(text.encode('utf-8')):,} bytes, {len(split_chunks(text)):,} chunks")
    t0 = time.perf_counter()
    tok = BPETokenizer.train(text, vocab_size=512)
    print(f"trained {tok!r} in {time.perf_counter() - t0:.2f} s")
    print("\nthe first 12 merges (left id, right id) -> new id:")
    for (a, b), new_id in list(tok.merges.items())[:12]:
        print(f"  ({a:3d}, {b:3d}) -> {new_id}   {tok.vocab[a]!r} + {tok.vocab[b]!r} = {tok.vocab[new_id]!r}")
    # a merged piece that is a space then letters only is a whole word (the space marks where a word starts)
    words = [i for i in range(256, tok.vocab_size) if re.fullmatch(rb" [A-Za-z]+", tok.vocab[i])]
    words = sorted(words, key=lambda i: (-len(tok.vocab[i]), i))[:8]
    print(f"\nthe longest whole words among the merges ({len(words)} shown; most merges are pieces of words):")
    for new_id in sorted(words):
        print(f"  {new_id}: {tok.vocab[new_id]!r}")
    return tok


def show_round_trip(tok: BPETokenizer) -> None:
    section("2. Text -> pieces -> ids -> text")
    text = "The model reads token ids, not characters."
    chunks = split_chunks(text)
    pieces = tok.pieces(text)
    ids = tok.encode(text)
    print(f"text   : {text!r}")
    print(f"chunks : {chunks}")
    print(f"pieces : {pieces}")
    print(f"ids    : {ids}")
    back = tok.decode(ids)
    print(f"decoded: {back!r}")
    print(f"{len(text)} characters -> {len(ids)} tokens; round trip ok: {back == text}")


def show_multibyte(tok: BPETokenizer) -> None:
    section("3. Characters bigger than one byte")
    text = "Café 🙂 日本語"
    for ch in "é🙂日":
        print(f"  {ch!r} is U+{ord(ch):04X}, UTF-8 bytes {ch.encode('utf-8').hex(' ')}")
    ids = tok.encode(text)
    print(f"\ntext   : {text!r}")
    shown = "[" + ", ".join(f"'{piece}'" for piece in tok.pieces(text)) + "]"  # str, not repr: one backslash
    print(f"pieces : {shown}   (\\xNN = a byte that is only part of a character)")
    print(f"ids    : {ids}")
    print("(the lesson text has almost no accents, emoji or CJK, so no merge was learned")
    print(" for their bytes: each byte stays a token of its own)")

    emoji_ids = tok.encode("🙂")
    print(f"\nthe emoji alone is {len(emoji_ids)} tokens: {emoji_ids}")
    print("decoding each token on its own gives replacement characters:")
    print("  ", [tok.decode([i]) for i in emoji_ids])
    print("decoding them together joins the bytes first, then decodes UTF-8:")
    print("  ", repr(tok.decode(emoji_ids)))
    back = tok.decode(ids)
    print(f"\nwhole text decoded: {back!r}; round trip ok: {back == text}")


def show_compression(lesson: str) -> None:
    section("4. Tokens per character vs vocabulary size")
    code = stdlib_text(200_000)
    print("each tokenizer is trained on the lesson text (English prose) and measured on")
    print("  - the lesson text itself (seen in training)")
    print("  - 200 KB of Python standard-library source (never seen)")
    print()
    print(f"  {'vocab':>6} {'merges':>7} {'lesson tok/char':>16} {'Python tok/char':>16} {'train s':>8}")
    for vocab_size in (256, 300, 400, 600, 1000):
        t0 = time.perf_counter()
        tok = BPETokenizer.train(lesson, vocab_size)
        seconds = time.perf_counter() - t0
        on_lesson = len(tok.encode(lesson)) / len(lesson)
        on_code = len(tok.encode(code)) / len(code)
        print(f"  {tok.vocab_size:>6} {len(tok.merges):>7} {on_lesson:>16.3f} {on_code:>16.3f} {seconds:>8.2f}")
    print("\nMore merges -> fewer tokens per character, most of all on the kind of text")
    print("the tokenizer was trained on. Vocabulary 256 is plain bytes: 1 token per byte.")


def main() -> None:
    lesson = lesson_text()
    tok = show_training(lesson)
    show_round_trip(tok)
    show_multibyte(tok)
    show_compression(lesson)


if __name__ == "__main__":
    main()
