"""A tiny decoder-only language model: embeddings, pre-norm Transformer blocks, a (tied) output head.

Example::

    >>> import torch
    >>> from llm_basics.model import ModelConfig, TinyLM, count_parameters
    >>> cfg = ModelConfig(vocab_size=512, context_length=64, d_model=64, n_heads=4, n_layers=2)
    >>> model = TinyLM(cfg)
    >>> ids = torch.randint(0, 512, (2, 10))         # (B, T)
    >>> model(ids).shape                              # (B, T, vocab_size)
    torch.Size([2, 10, 512])
    >>> count_parameters(model)
    136960
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch import Tensor

from llm_basics.attention import Linear, MultiHeadAttention

__all__ = [
    "ModelConfig",
    "RMSNorm",
    "make_norm",
    "FeedForward",
    "TransformerBlock",
    "TinyLM",
    "count_parameters",
]

NORM_KINDS = ("layernorm", "rmsnorm")


class Embedding(nn.Embedding):
    """``nn.Embedding`` that leaves its weights alone on the meta device (see ``llm_basics.attention.Linear``)."""

    def reset_parameters(self) -> None:
        if not self.weight.is_meta:
            super().reset_parameters()


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of a :class:`TinyLM`. Frozen, and checked when created.

    Example::

        >>> ModelConfig(d_model=64, n_heads=4).ffn_dim       # d_ff=None means 4 * d_model
        256
        >>> ModelConfig(d_model=64, n_heads=5)
        Traceback (most recent call last):
        ...
        ValueError: d_model (64) must be divisible by n_heads (5)
    """

    vocab_size: int = 512
    context_length: int = 128
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int | None = None
    norm: str = "layernorm"
    bias: bool = True
    tie_weights: bool = True

    def __post_init__(self) -> None:
        sizes = {
            "vocab_size": self.vocab_size,
            "context_length": self.context_length,
            "d_model": self.d_model,
            "n_heads": self.n_heads,
            "n_layers": self.n_layers,
        }
        if self.d_ff is not None:
            sizes["d_ff"] = self.d_ff
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.norm not in NORM_KINDS:
            raise ValueError(f"norm must be one of {NORM_KINDS}, got {self.norm!r}")

    @property
    def ffn_dim(self) -> int:
        """Hidden width of the feed-forward layer: ``d_ff``, or ``4 * d_model`` when ``d_ff`` is None."""
        return 4 * self.d_model if self.d_ff is None else self.d_ff


class RMSNorm(nn.Module):
    """Root-mean-square norm: ``x / sqrt(mean(x**2) + eps) * weight``; no mean subtraction, no bias.

    Example::

        >>> RMSNorm(2)(torch.tensor([[3.0, 4.0]]))      # rms = sqrt((9 + 16) / 2)
        tensor([[0.8485, 1.1314]], grad_fn=<MulBackward0>)
    """

    def __init__(self, d: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))  # (d,)

    def forward(self, x: Tensor) -> Tensor:
        # 1. root mean square over the feature dimension
        inv_rms = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (..., 1)
        # 2. rescale to unit RMS, then apply the learned per-feature gain
        return x * inv_rms * self.weight  # (..., d)


def make_norm(kind: str, d: int, *, bias: bool) -> nn.Module:
    """``nn.LayerNorm(d, bias=bias)`` for ``"layernorm"``, ``RMSNorm(d)`` for ``"rmsnorm"``.

    Example::

        >>> sum(p.numel() for p in make_norm("layernorm", 8, bias=True).parameters())   # weight + bias
        16
        >>> sum(p.numel() for p in make_norm("rmsnorm", 8, bias=True).parameters())     # weight only
        8
    """
    if kind == "layernorm":
        return nn.LayerNorm(d, bias=bias)
    if kind == "rmsnorm":
        return RMSNorm(d)
    raise ValueError(f"unknown norm {kind!r}; expected one of {NORM_KINDS}")


class FeedForward(nn.Module):
    """Position-wise MLP: ``fc2(gelu(fc1(x)))``, widening d -> d_ff -> d.

    Example::

        >>> FeedForward(8, 32, bias=True)(torch.randn(2, 3, 8)).shape
        torch.Size([2, 3, 8])
    """

    def __init__(self, d: int, d_ff: int, *, bias: bool = True):
        super().__init__()
        self.fc1 = Linear(d, d_ff, bias=bias)
        self.act = nn.GELU()
        self.fc2 = Linear(d_ff, d, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.fc1(x))  # (B, T, d_ff)
        return self.fc2(h)  # (B, T, d)


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x = x + attn(norm1(x))``, then ``x = x + ffn(norm2(x))``.

    Example::

        >>> block = TransformerBlock(ModelConfig(d_model=16, n_heads=2))
        >>> block(torch.randn(1, 4, 16)).shape
        torch.Size([1, 4, 16])
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.norm1 = make_norm(cfg.norm, d, bias=cfg.bias)
        self.attn = MultiHeadAttention(d, cfg.n_heads, bias=cfg.bias, causal=True)
        self.norm2 = make_norm(cfg.norm, d, bias=cfg.bias)
        self.ffn = FeedForward(d, cfg.ffn_dim, bias=cfg.bias)

    def forward(self, x: Tensor, *, mask: Tensor | None = None) -> Tensor:
        # 1. tokens exchange information (attention), added to the residual stream
        x = x + self.attn(self.norm1(x), mask=mask)  # (B, T, d)
        # 2. each token is processed on its own (MLP), added to the residual stream
        x = x + self.ffn(self.norm2(x))  # (B, T, d)
        return x


class TinyLM(nn.Module):
    """Decoder-only LM: token + position embeddings, ``n_layers`` blocks, final norm, linear head.

    With ``cfg.tie_weights`` the head reuses the token embedding matrix (one tensor, counted once).

    Example::

        >>> model = TinyLM(ModelConfig(vocab_size=300, context_length=16, d_model=32, n_heads=2, n_layers=1))
        >>> model(torch.tensor([[1, 2, 3]])).shape        # (B, T, vocab_size)
        torch.Size([1, 3, 300])
        >>> model.lm_head.weight is model.tok_emb.weight
        True
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = Embedding(cfg.context_length, cfg.d_model)
        self.blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg.n_layers))
        self.norm_f = make_norm(cfg.norm, cfg.d_model, bias=cfg.bias)
        self.lm_head = Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.apply(_init_weights)
        if cfg.tie_weights:
            # the same Parameter object in both places: one tensor, one gradient, counted once
            self.lm_head.weight = self.tok_emb.weight

    def forward(self, ids: Tensor) -> Tensor:
        """ids ``(B, T)`` of token ids with ``T <= context_length`` -> logits ``(B, T, vocab_size)``."""
        if ids.dim() != 2:
            raise ValueError(f"ids must have shape (B, T), got shape {tuple(ids.shape)}")
        B, T = ids.shape
        if T > self.cfg.context_length:
            raise ValueError(
                f"sequence length {T} is longer than the model's context_length {self.cfg.context_length}; "
                "crop the input to the last context_length tokens"
            )
        # 1. what each token is, plus where it is
        pos = torch.arange(T, device=ids.device)  # (T,)
        x = self.tok_emb(ids) + self.pos_emb(pos)  # (B, T, d)
        # 2. the stack of Transformer blocks
        for block in self.blocks:
            x = block(x)  # (B, T, d)
        # 3. final norm, then one score per vocabulary entry
        x = self.norm_f(x)  # (B, T, d)
        return self.lm_head(x)  # (B, T, V)


def _init_weights(module: nn.Module) -> None:
    """GPT-2 style init: N(0, 0.02) for Linear and Embedding weights, zeros for biases.

    A model built on the meta device has no numbers to initialise, so it is left as it is (this keeps a meta
    build cheap)."""
    if any(p.is_meta for p in module.parameters(recurse=False)):
        return
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable numbers in ``module``; a shared (tied) tensor is counted once.

    Example::

        >>> count_parameters(nn.Linear(3, 2))           # 3*2 weights + 2 biases
        8
    """
    return sum(p.numel() for p in module.parameters())
