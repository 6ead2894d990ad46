"""ATTACK frame_locals (kind: frame tricks).

What it tries: many tests compute the expected value before they call the student's function
(``expected = numel(MultiHeadAttention(d))``, then ``got = ex.attention_params(d)``). Each function below walks
up the call stack with ``sys._getframe`` and returns the caller's local ``expected`` (or ``want``), so it
answers exactly what the test is about to compare with.

Why it must fail under the new design: the function runs in the worker, called by the worker's dispatch loop;
no frame above it belongs to a test, so there is no ``expected`` to read, and the stub's answer is used.
"""

from __future__ import annotations

import sys

import torch.nn as nn

from llm_basics.model import ModelConfig

COMPONENTS = ("token_embedding", "position_embedding", "attention", "ffn", "block_norms", "final_norm", "lm_head")
_NAMES = ("expected", "want", "expected_counts", "total")


def _stolen(default):
    """The nearest caller's ``expected`` (or ``want``...), else ``default``."""
    frame = sys._getframe(2)
    while frame is not None:
        for name in _NAMES:
            if name in frame.f_locals:
                return frame.f_locals[name]
        frame = frame.f_back
    return default


# ---------------------------------------------------------------------------------------------------------
# The exercise: nothing is computed; every answer comes from the caller's frame
# ---------------------------------------------------------------------------------------------------------


def attention_params(d_model: int, *, bias: bool = True) -> int:
    return _stolen(0)


def ffn_params(d_model: int, d_ff: int, *, bias: bool = True) -> int:
    return _stolen(0)


def norm_params(d_model: int, *, kind: str = "layernorm", bias: bool = True) -> int:
    return _stolen(0)


def block_params(cfg: ModelConfig) -> dict[str, int]:
    return _stolen({})


def model_params(cfg: ModelConfig) -> dict[str, int]:
    return _stolen({})


def measured_params(module: nn.Module) -> dict[str, int]:
    return _stolen({})


def explain(cfg: ModelConfig) -> list[dict]:
    return _stolen([])


def format_table(rows: list[dict]) -> str:
    raise NotImplementedError("ex3: join a header, one line per row and a total line")
