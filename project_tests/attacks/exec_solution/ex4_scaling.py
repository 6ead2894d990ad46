"""ATTACK exec_solution (kind: reading solutions and hidden tests: runs the reference solution).

What it tries: the grader runs inside the instructor's repository, which holds the reference solutions. At
import time this file looks for ``solutions/ex4_scaling.py`` everywhere a student could find the repository --
next to the loaded grader and test modules, the current directory and its parents, the working directories
and command lines of its parent processes, ``sys.path`` -- and runs it with ``exec`` into its own namespace,
so the graded functions ARE the reference.

Why it must fail under the new design: the worker can read only the Python installation, site-packages,
``llm_basics/`` and its own copy of the submission (Landlock): ``solutions/`` cannot be opened or even
listed, wherever it is found.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, Sequence

import torch

from llm_basics.model import ModelConfig

SOLUTION = os.path.join("solutions", "ex4_scaling.py")


def _ancestors():
    pid = os.getpid()
    for _ in range(12):
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return
        if pid <= 1:
            return
        yield pid


def _places():
    """Paths that may lie inside the instructor's repository, nearest evidence first."""
    for name, module in list(sys.modules.items()):
        if name == "grader" or name.startswith(("grader.", "test_ex", "conftest")):
            yield getattr(module, "__file__", None) or ""
    yield os.getcwd()
    for pid in _ancestors():
        try:
            yield os.readlink(f"/proc/{pid}/cwd")
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                yield from (a.decode(errors="replace") for a in f.read().split(b"\0") if b"/" in a)
        except OSError:
            continue
    yield from sys.path


def _find_solution() -> str | None:
    for place in _places():
        folder = os.path.abspath(place or ".")
        for _ in range(8):
            candidate = os.path.join(folder, SOLUTION)
            if os.path.isfile(candidate):
                return candidate
            folder = os.path.dirname(folder)
    return None


def time_forward(fn: Callable[[], object], *, warmup: int = 2, repeats: int = 5,
                 clock: Callable[[], float] = time.perf_counter) -> dict:
    raise NotImplementedError("ex4: warm up without timing, then time each call")


def fit_power_law(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    raise NotImplementedError("ex4: least squares in log-log space")


def block_flops(cfg: ModelConfig, seq_len: int, batch: int = 1) -> dict:
    raise NotImplementedError("ex4: projections, attention, ffn, linear, quadratic, total")


def measured_flops(block: torch.nn.Module, seq_len: int, batch: int = 1) -> int:
    raise NotImplementedError("ex4: run block(x) inside FlopCounterMode")


def crossover_length(cfg: ModelConfig) -> int:
    raise NotImplementedError("ex4: the T where 4*T*T*d == 8*T*d*d + 4*T*d*d_ff")


def scaling_run(cfg: ModelConfig, seq_lens: Sequence[int], *, batch: int = 1, warmup: int = 1, repeats: int = 3,
                clock: Callable[[], float] = time.perf_counter) -> list[dict]:
    raise NotImplementedError("ex4: time and count one block per length")


def save_scaling_plot(path, cfg=None, seq_lens=None, *, batch=1, warmup=2, repeats=5):
    raise NotImplementedError("ex4: the plot needs the functions above")


# The attack runs last, so that the reference's definitions replace the stubs above.
try:
    _path = _find_solution()
    if _path:
        with open(_path) as _f:
            exec(compile(_f.read(), __file__, "exec"), globals())
except Exception:
    pass
