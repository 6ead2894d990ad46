"""Exercise 2: top-k attention -- each query attends to its k best keys only.

In ordinary causal attention every query spreads its weight over ALL the keys it may see. Top-k attention
keeps, for every query, only the ``top_k`` largest scores and drops the rest BEFORE the softmax, so the
softmax renormalises over the kept keys alone. It is a simple form of sparse attention: a long context is
summarised by a few keys per query.

Shapes (leading dimensions ``...`` are batch and heads, and are carried along untouched)::

    q        (..., Tq, d)       queries
    k        (..., Tk, d)       keys
    v        (..., Tk, dv)      values (dv may differ from d)
    scores   (..., Tq, Tk)      q @ k^T / sqrt(d)       (d is the width of q and k, not of v)
    weights  (..., Tq, Tk)      softmax over the LAST axis (keys); exactly 0 where a key was dropped
    output   (..., Tq, dv)      weights @ v

Rules:

* **causal** (default): query ``i`` may see key ``j`` only when ``j <= i``; this needs ``Tq == Tk``
  (self-attention), otherwise ``ValueError``. With ``causal=False`` every key is visible and Tq, Tk may differ.
* **exactly k**: query ``i`` keeps ``min(top_k, number of keys it may see)`` keys. In causal mode query ``i``
  sees ``i + 1`` keys, so the first queries keep fewer than ``top_k``.
* **tie rule**: among equal scores the LOWER key index wins. E.g. the row ``[2, 5, 5, 5]`` with ``top_k=2``
  keeps keys 1 and 2 (not 3). So exactly k keys are kept even when scores tie.
* ``top_k >= Tk`` keeps every visible key: the result is plain (causal) attention.
* never NaN, output dtype = input dtype (float32, float64, bfloat16), and gradients flow to q, k and v.

Worked example (d = 1, so the scale is 1/sqrt(1) = 1), ``q = k = [[1], [2], [3]]``, ``top_k = 2``, causal::

    scores (causal)   [[1, -, -],          query 0 sees key 0 only     -> keeps 1 key
                       [2, 4, -],          query 1 sees keys 0, 1      -> keeps both
                       [3, 6, 9]]          query 2 sees keys 0, 1, 2   -> keeps 6 and 9, drops 3
    weights           [[1.000, 0,     0    ],
                       [0.119, 0.881, 0    ],        softmax([2, 4])
                       [0,     0.047, 0.953]]        softmax([6, 9]); key 0 gets exactly 0

Also in this file (given, nothing to write): ``demo_weights`` computes full and top-k weights for a short
sentence with a tiny model, and ``save_heatmap`` draws them side by side as a PNG.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["topk_mask", "topk_attention", "demo_weights", "attention_heatmap", "save_heatmap"]


def topk_mask(scores: Tensor, top_k: int) -> Tensor:
    """Boolean mask, same shape as ``scores``, True at the ``top_k`` largest entries of every row.

    A row is the LAST axis (for attention scores ``(..., Tq, Tk)``: one row per query, k counted over keys).
    Ties: among equal values the lower index wins, so each row has exactly ``min(top_k, row length)`` True
    entries -- except that an entry equal to ``-inf`` (a hidden key) is NEVER kept, so a row with fewer than
    ``top_k`` finite entries keeps just those. You may assume ``top_k`` is an int >= 1.

    Example::

        >>> topk_mask(torch.tensor([[0.1, 3.0, -1.0, 2.0],
        ...                         [2.0, 5.0, 5.0, 5.0]]), 2)
        tensor([[False,  True, False,  True],
                [False,  True,  True, False]])
        >>> topk_mask(torch.tensor([[1.0, float("-inf"), float("-inf")]]), 2)
        tensor([[ True, False, False]])

    Hint: ``torch.topk`` does NOT promise which of equal values it returns. ``torch.sort(..., descending=True,
    stable=True)`` keeps equal values in their original (index) order; ``Tensor.scatter`` writes True at a
    list of indices.
    """
    # 1. order each row from largest to smallest; equal values keep their index order (the tie rule)
    # 2. the first top_k positions of that order are the kept indices (fewer if the row is shorter)
    # 3. write True at those indices of an all-False mask
    # 4. never keep a -inf entry (a key that the query may not see)
    # BEGIN SOLUTION TODO: keep the top_k largest entries of each row (lower index wins ties, never -inf)
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices  # (..., Tq, Tk)
    kept = order[..., :top_k]  # (..., Tq, min(top_k, Tk))
    keep = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)  # (..., Tq, Tk)
    keep = keep.scatter(-1, kept, True)  # (..., Tq, Tk)
    keep = keep & (scores > float("-inf"))  # (..., Tq, Tk)
    return keep
    # END SOLUTION


def topk_attention(q: Tensor, k: Tensor, v: Tensor, top_k: int, *, causal: bool = True) -> tuple[Tensor, Tensor]:
    """Attention in which every query keeps only its ``top_k`` best scores; returns ``(output, weights)``.

    Shapes: q ``(..., Tq, d)``, k ``(..., Tk, d)``, v ``(..., Tk, dv)`` -> output ``(..., Tq, dv)`` and
    weights ``(..., Tq, Tk)``, both in the dtype of ``q``.

    * ``top_k`` must be an int >= 1 (``0``, ``-1``, ``2.5``, ``2.0``, ``"3"`` or a bool -> ``ValueError``).
    * ``causal=True`` needs ``Tq == Tk`` (``ValueError`` otherwise); query ``i`` sees keys ``j <= i``.
    * Each weight row sums to 1 and has exactly ``min(top_k, visible keys)`` non-zero entries; dropped and
      hidden keys get weight exactly 0. Ties: the lower key index wins (use ``topk_mask``).
    * With ``top_k >= Tk`` this is ordinary attention,
      ``torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)``.

    Example (the worked example of the module docstring)::

        >>> x = torch.tensor([[1.0], [2.0], [3.0]])              # (T=3, d=1)
        >>> out, w = topk_attention(x, x, x, top_k=2)
        >>> w.round(decimals=3)
        tensor([[1.0000, 0.0000, 0.0000],
                [0.1190, 0.8810, 0.0000],
                [0.0000, 0.0470, 0.9530]])
    """
    # 1. check top_k (an int, not a bool, at least 1) and, when causal, that Tq == Tk
    # 2. scores = q @ k^T / sqrt(d), with d the last size of q                          # (..., Tq, Tk)
    # 3. causal: set the scores of future keys (j > i) to -inf
    # 4. keep the top_k scores of each query row (topk_mask); set all the others to -inf
    # 5. softmax over the keys (the last axis) -> weights; output = weights @ v
    # BEGIN SOLUTION TODO: validate the arguments, then mask, keep the top_k scores, softmax and mix the values
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be an int >= 1, got {top_k!r}")
    t_q, t_k = q.size(-2), k.size(-2)
    if causal and t_q != t_k:
        raise ValueError(f"causal top-k attention needs Tq == Tk, got Tq={t_q}, Tk={t_k}")
    d = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (..., Tq, Tk)
    if causal:
        visible = torch.ones(t_q, t_k, dtype=torch.bool, device=q.device).tril()  # (Tq, Tk)
        scores = scores.masked_fill(~visible, float("-inf"))  # (..., Tq, Tk)
    keep = topk_mask(scores, top_k)  # (..., Tq, Tk)
    scores = scores.masked_fill(~keep, float("-inf"))  # (..., Tq, Tk)
    weights = torch.softmax(scores, dim=-1)  # (..., Tq, Tk)
    output = weights @ v  # (..., Tq, dv)
    return output, weights
    # END SOLUTION


# ----------------------------------------------------------------------------------------------------------
# Given: look at what top-k attention does to a real sentence (nothing to write below this line)
# ----------------------------------------------------------------------------------------------------------

DEMO_SENTENCE = "The cat sat on the mat because it was tired."


def demo_weights(sentence: str = DEMO_SENTENCE, top_k: int = 3, *, train_steps: int = 40, seed: int = 0) -> dict:
    """Full causal and top-k attention weights of one head of a tiny model, for one sentence.

    A byte-level BPE tokenizer is trained on the lesson text, a small ``TinyLM`` is trained on it for
    ``train_steps`` steps (a few seconds; 0 keeps it untrained), and the queries and keys of head 0 of its
    first block are attended with ``topk_attention`` twice: once with every key (``top_k = T``) and once
    with ``top_k``.

    Returns ``{"tokens": [str, ...], "full": Tensor (T, T), "topk": Tensor (T, T), "top_k": int}``.
    """
    from llm_basics.corpus import lesson_text
    from llm_basics.model import ModelConfig, TinyLM
    from llm_basics.tokenizer import BPETokenizer
    from llm_basics.training import train_lm

    text = lesson_text()
    tokenizer = BPETokenizer.train(text, 320)
    torch.manual_seed(seed)
    model = TinyLM(ModelConfig(vocab_size=tokenizer.vocab_size, context_length=32, d_model=64, n_heads=4))
    if train_steps:
        train_lm(model, tokenizer.encode(text), steps=train_steps, batch_size=8, lr=3e-3, seed=seed)
    model.eval()

    ids = torch.tensor([tokenizer.encode(sentence)])[:, : model.cfg.context_length]  # (1, T)
    block = model.blocks[0]
    with torch.no_grad():
        pos = torch.arange(ids.size(1))  # (T,)
        x = block.norm1(model.tok_emb(ids) + model.pos_emb(pos))  # (1, T, d_model)
        head = block.attn.head_dim
        q = block.attn.q_proj(x)[0, :, :head]  # (T, hd): head 0
        k = block.attn.k_proj(x)[0, :, :head]  # (T, hd)
        full = topk_attention(q, k, k, top_k=ids.size(1))[1]  # (T, T)
        sparse = topk_attention(q, k, k, top_k=top_k)[1]  # (T, T)
    tokens = [tokenizer.decode([i]) for i in ids[0].tolist()]
    return {"tokens": tokens, "full": full, "topk": sparse, "top_k": top_k}


def attention_heatmap(tokens: list[str], full_weights: Tensor, topk_weights: Tensor, path, *, top_k: int) -> Path:
    """Write a PNG with two heatmaps side by side: full causal attention and top-k attention."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [repr(t)[1:-1].replace(" ", "\u2423") for t in tokens]  # show spaces as a visible mark
    size = max(5.0, 0.3 * len(labels) + 1.5)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1.5, size), constrained_layout=True)
    for ax, weights, title in ((axes[0], full_weights, "full causal"), (axes[1], topk_weights, f"top-k = {top_k}")):
        image = ax.imshow(weights.detach().float().cpu().numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_title(title, fontsize=14)
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=10)
        ax.set_yticks(range(len(labels)), labels, fontsize=10)
        ax.set_xlabel("key (attended to)")
        ax.set_ylabel("query (attending)")
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_heatmap(path, sentence: str = DEMO_SENTENCE, top_k: int = 3) -> Path:
    """Compute :func:`demo_weights` for ``sentence`` and draw them with :func:`attention_heatmap` at ``path``."""
    demo = demo_weights(sentence, top_k)
    return attention_heatmap(demo["tokens"], demo["full"], demo["topk"], path, top_k=demo["top_k"])


if __name__ == "__main__":
    import sys

    print(save_heatmap(sys.argv[1] if len(sys.argv) > 1 else "topk_attention.png"))
