"""A minimal training loop for a next-token language model.

Example::

    >>> from llm_basics.model import ModelConfig, TinyLM
    >>> model = TinyLM(ModelConfig(vocab_size=256, context_length=16, d_model=32, n_heads=2, n_layers=1))
    >>> ids = list(b"abcabcabc" * 20)
    >>> losses = train_lm(model, ids, steps=30, batch_size=8, lr=3e-3, seed=0)
    >>> losses[-1] < losses[0]
    True
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["get_batch", "train_lm"]


def _as_ids(ids: Tensor | Sequence[int]) -> Tensor:
    data = torch.as_tensor(ids, dtype=torch.long)
    if data.dim() != 1:
        raise ValueError(f"ids must be 1-D (one long stream of token ids), got shape {tuple(data.shape)}")
    if data.numel() < 2:
        raise ValueError(f"need at least 2 ids to make an (input, target) pair, got {data.numel()}")
    return data


def get_batch(
    ids: Tensor | Sequence[int],
    batch_size: int,
    context_length: int,
    *,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Cut ``batch_size`` random windows of ``context_length + 1`` ids; inputs are the window minus its last
    id, targets the window minus its first id (the next token at every position).

    If the stream is shorter than a window, the window shrinks to the whole stream.

    Example::

        >>> x, y = get_batch(list(range(10)), batch_size=2, context_length=4,
        ...                  generator=torch.Generator().manual_seed(0))
        >>> x.shape, y.shape
        (torch.Size([2, 4]), torch.Size([2, 4]))
        >>> bool((x[:, 1:] == y[:, :-1]).all())             # targets are the inputs shifted by one
        True
    """
    data = _as_ids(ids)  # (N,)
    # 1. a window needs T + 1 ids: T inputs and, one further on, T targets
    T = min(context_length, data.numel() - 1)
    # 2. random start of each window
    starts = torch.randint(0, data.numel() - T, (batch_size,), generator=generator)  # (B,)
    offsets = torch.arange(T + 1)  # (T+1,)
    windows = data[starts[:, None] + offsets[None, :]]  # (B, T+1)
    # 3. split every window into inputs and next-token targets
    return windows[:, :-1], windows[:, 1:]  # (B, T), (B, T)


def train_lm(
    model: nn.Module,
    ids: Tensor | Sequence[int],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``model`` with AdamW on random windows of ``ids``; return the loss of every step.

    The windows are ``model.cfg.context_length + 1`` long. ``seed`` seeds both torch's global RNG and the
    generator that picks the windows, so the same call gives the same losses. ``on_step(step, loss)``, if
    given, is called after every step (e.g. to print progress).
    """
    if steps < 0 or batch_size < 1:
        raise ValueError(f"need steps >= 0 and batch_size >= 1, got steps={steps}, batch_size={batch_size}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    data = _as_ids(ids)  # (N,)
    context_length = model.cfg.context_length
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()

    losses: list[float] = []
    for _ in range(steps):
        # 1. a fresh random batch of windows
        x, y = get_batch(data, batch_size, context_length, generator=generator)  # (B, T), (B, T)
        x, y = x.to(device), y.to(device)
        # 2. predict every next token
        logits = model(x)  # (B, T, V)
        # 3. average cross-entropy over all B * T positions
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        # 4. backpropagate and take one optimizer step
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(len(losses), losses[-1])
    return losses
