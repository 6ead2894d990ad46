"""Benchmark: train our BPE and Hugging Face `tokenizers` on the same ~1 MB of text.

    python bench/bench_tokenizer.py [--bytes 1000000] [--vocab 1000] [--repeats 3]

Not a test: it prints wall-clock times (median of the repeats) and their ratio.
The text is Python standard-library source (llm_basics.corpus.stdlib_text), so
nothing is downloaded. `tokenizers` is optional: `pip install tokenizers`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

from llm_basics.corpus import stdlib_text  # noqa: E402
from llm_basics.tokenizer import BPETokenizer  # noqa: E402


def median_time(fn, repeats: int):
    """Run ``fn`` ``repeats`` times; return (median seconds, last result)."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def train_ours(text: str, vocab_size: int) -> BPETokenizer:
    return BPETokenizer.train(text, vocab_size)


def train_hf(text: str, vocab_size: int):
    """The Hugging Face BPE trainer with a byte-level pre-tokenizer (GPT-2 style)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, like ours
        show_progress=False,
    )
    # feed lines in batches so the trainer can use its worker threads
    lines = text.splitlines(keepends=True)
    batches = ["".join(lines[i : i + 1000]) for i in range(0, len(lines), 1000)]
    tok.train_from_iterator(batches, trainer=trainer)
    return tok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=1_000_000, help="corpus size in bytes")
    parser.add_argument("--vocab", type=int, default=1000, help="vocabulary size")
    parser.add_argument("--repeats", type=int, default=3, help="runs per trainer (median is shown)")
    args = parser.parse_args()

    text = stdlib_text(args.bytes)
    print(f"corpus: {len(text.encode('utf-8')):,} bytes of Python stdlib source; "
          f"vocab {args.vocab}; median of {args.repeats}; {os.cpu_count()} CPU(s)")

    ours_s, ours = median_time(lambda: train_ours(text, args.vocab), args.repeats)
    ours_tpc = len(ours.encode(text)) / len(text)
    print(f"  llm_basics BPETokenizer.train : {ours_s:7.3f} s   "
          f"({len(ours.merges)} merges, {ours_tpc:.3f} tokens/char on the training text)")

    try:
        import tokenizers
    except ImportError:
        print("  Hugging Face tokenizers      : not installed; `pip install tokenizers` to compare")
        return
    hf_s, hf = median_time(lambda: train_hf(text, args.vocab), args.repeats)
    hf_tpc = len(hf.encode(text).ids) / len(text)
    print(f"  tokenizers {tokenizers.__version__:<8} BpeTrainer: {hf_s:7.3f} s   "
          f"(vocab {hf.get_vocab_size()}, {hf_tpc:.3f} tokens/char on the training text)")
    print(f"  ratio ours / tokenizers      : {ours_s / hf_s:7.1f}x")


if __name__ == "__main__":
    main()
