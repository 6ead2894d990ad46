"""ATTACK torch_oracle (kind: patching torch).

What it tries: the ex3 tests compute their expected counts with ``sum(p.numel() for p in m.parameters())``.
At import time this file makes ``nn.Module.parameters`` (and ``named_parameters``) yield nothing, so every
oracle count becomes 0, and then answers 0 everywhere (with an untied head balanced by a negative token
embedding, so the totals are 0 as well).

Why it must fail under the new design: the oracle runs in the judge, with its own torch; patching the
worker's ``nn.Module`` changes only the worker. The zeros it returns are compared with the real counts.
"""

from __future__ import annotations

import torch.nn as nn

from llm_basics.model import ModelConfig

COMPONENTS = ("token_embedding", "position_embedding", "attention", "ffn", "block_norms", "final_norm", "lm_head")


def _no_parameters(self, *args, **kwargs):
    return iter(())


try:
    nn.Module.parameters = _no_parameters
    nn.Module.named_parameters = _no_parameters
except Exception:
    pass


# ---------------------------------------------------------------------------------------------------------
# The exercise: every count is 0
# ---------------------------------------------------------------------------------------------------------


def attention_params(d_model: int, *, bias: bool = True) -> int:
    return 0


def ffn_params(d_model: int, d_ff: int, *, bias: bool = True) -> int:
    return 0


def norm_params(d_model: int, *, kind: str = "layernorm", bias: bool = True) -> int:
    return 0


def block_params(cfg: ModelConfig) -> dict[str, int]:
    return {"attention": 0, "ffn": 0, "norm1": 0, "norm2": 0}


def model_params(cfg: ModelConfig) -> dict[str, int]:
    head = 0 if cfg.tie_weights else cfg.vocab_size * cfg.d_model
    return {"token_embedding": -head, "position_embedding": 0, "blocks": 0, "final_norm": 0, "lm_head": head}


def measured_params(module: nn.Module) -> dict[str, int]:
    return {name: 0 for name, _ in module.named_children()}


def explain(cfg: ModelConfig) -> list[dict]:
    return [{"component": name, "formula": "0", "approx": 0, "exact": 0, "measured": 0, "difference": 0,
             "why": ""} for name in COMPONENTS]


def format_table(rows: list[dict]) -> str:
    raise NotImplementedError("ex3: join a header, one line per row and a total line")
