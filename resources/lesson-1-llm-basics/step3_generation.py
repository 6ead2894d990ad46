"""Step 3: train a tiny language model on this lesson's text, then let it write.

Run it from anywhere:  python resources/lesson-1-llm-basics/step3_generation.py
(measured on 2 CPU cores: 22 s on a quiet machine, 104 s while other programs kept both cores busy)

1. train a byte-level BPE tokenizer on the lesson text (vocabulary of about 512 tokens);
2. train a 2-layer TinyLM on the token ids and watch the loss go down;
3. generate from a prompt: greedy, then sampled (temperature, top-k, top-p) with a seeded generator,
   printing each piece of text as soon as it is decoded.
"""

import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, wherever we run from

import torch  # noqa: E402

from llm_basics.corpus import lesson_text  # noqa: E402
from llm_basics.generation import generate  # noqa: E402
from llm_basics.model import ModelConfig, TinyLM, count_parameters  # noqa: E402
from llm_basics.threads import matmul_flops, use_threads_for  # noqa: E402
from llm_basics.tokenizer import BPETokenizer  # noqa: E402
from llm_basics.training import train_lm  # noqa: E402

SEED = 1337
STEPS = 600
BATCH_SIZE = 16
LR = 3e-3
LOG_EVERY = 50
PROMPT = "The model"
MAX_NEW_TOKENS = 60


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def stream(title: str, **kwargs) -> str:
    """Print the prompt, then every text delta the moment generate() yields it; return the new text."""
    print(f"--- {title}")
    print(PROMPT, end="", flush=True)
    pieces = []
    for delta in generate(model, tokenizer, PROMPT, max_new_tokens=MAX_NEW_TOKENS, **kwargs):
        print(delta, end="", flush=True)
        pieces.append(delta)
    print("\n", flush=True)
    return "".join(pieces)


torch.manual_seed(SEED)

# ---------------------------------------------------------------------------------------------------------
section("1. tokenizer")
text = lesson_text()
t0 = time.perf_counter()
tokenizer = BPETokenizer.train(text, vocab_size=512)
ids = tokenizer.encode(text)
print(f"lesson text: {len(text):,} characters, {len(text.encode('utf-8')):,} bytes")
print(f"{tokenizer} trained in {time.perf_counter() - t0:.2f} s")
print(f"the text is {len(ids):,} tokens ({len(text.encode('utf-8')) / len(ids):.2f} bytes per token)")
print("the prompt as tokens:", tokenizer.pieces(PROMPT))

# ---------------------------------------------------------------------------------------------------------
section("2. training a TinyLM")
cfg = ModelConfig(vocab_size=tokenizer.vocab_size, context_length=64, d_model=64, n_heads=4, n_layers=2)
model = TinyLM(cfg)
print(cfg)
print(f"{count_parameters(model):,} parameters; {STEPS} steps of {BATCH_SIZE} windows of {cfg.context_length} tokens")
print(f"a model that guesses uniformly has loss ln({cfg.vocab_size}) = {math.log(cfg.vocab_size):.2f}")
# The largest matrix product of a step: all B*T positions times the output layer, (B*T, d) @ (d, V).
biggest = matmul_flops(BATCH_SIZE * cfg.context_length, cfg.d_model, max(cfg.vocab_size, cfg.ffn_dim))
threads = use_threads_for(biggest)
print(f"torch threads: {threads} (the largest product of a step is {biggest / 1e6:.0f} MFLOP: "
      + ("too small to share out, and extra threads would fight other programs for the cores)"
         if threads == 1 else "big enough to share out)"))

t0 = time.perf_counter()
window: list[float] = []
after_first: list[float] = []  # when step 1 ended: the pace is measured from there


def log(step: int, loss: float) -> None:
    """Print the average loss of the last LOG_EVERY steps, and how long the rest should take at this pace.

    The first step also pays for warm-up (torch sets up its kernels and memory), so it says nothing of the pace:
    the estimate counts the steps after it."""
    window.append(loss)
    now = time.perf_counter()
    if step == 1:
        after_first.append(now)
    if step == 1 or step % LOG_EVERY == 0:
        avg = sum(window) / len(window)
        if step == 1:
            eta = "warm-up included; the time left follows"
        else:
            left = (now - after_first[0]) / (step - 1) * (STEPS - step)
            eta = f"about {left:4.0f} s to go"
        print(f"  step {step:4d}/{STEPS}  loss {avg:.3f}  ({now - t0:5.1f} s, {eta})", flush=True)
        window.clear()


losses = train_lm(model, ids, steps=STEPS, batch_size=BATCH_SIZE, lr=LR, seed=SEED, on_step=log)
print(f"loss {losses[0]:.2f} -> {sum(losses[-LOG_EVERY:]) / LOG_EVERY:.2f} in {time.perf_counter() - t0:.1f} s")
print("(this is the loss on the training text itself: a model this small, trained on one page, memorises)")

# ---------------------------------------------------------------------------------------------------------
section("3. generation")
stream("greedy (temperature 0: always the most likely next token)")

sampling = dict(temperature=0.8, top_k=40, top_p=0.9)
first = stream(f"sampled {sampling}, seed 0", generator=torch.Generator().manual_seed(0), **sampling)
stream(f"sampled {sampling}, seed 1", generator=torch.Generator().manual_seed(1), **sampling)
again = "".join(generate(model, tokenizer, PROMPT, max_new_tokens=MAX_NEW_TOKENS,
                         generator=torch.Generator().manual_seed(0), **sampling))
print("seed 0 once more gives the same text:", again == first)
stream("hot and unfiltered (temperature 1.5, no top-k / top-p)", temperature=1.5,
       generator=torch.Generator().manual_seed(0))
