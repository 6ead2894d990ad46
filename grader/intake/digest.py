"""Hashes for re-runs: a submission is graded again only when what decides its grade changed.

``submission_hash`` covers the taken files, what was refused and why, the graded suites (``tests_digest``), the
grading code (``code_digest``: the library and the grader, every subpackage included) and the limits. The batch
grader keeps it beside each result and reuses a result only under the same hash. Moving a module of ``grader/``
changes every hash, so every submission is graded once more after such a move.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Protocol

from grader.course import REPO_ROOT


class Taken(Protocol):
    """What a hash needs of a ``grader.intake.collect.Submission``: the taken files and the refusals."""

    files: dict[str, bytes]
    problems: dict[str, str]


def tests_digest(tests_dir: Path) -> str:
    """A hash of every file of the graded suites (visible and hidden), so a changed test re-grades everyone."""
    h = hashlib.sha256()
    for path in sorted(p for p in tests_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(tests_dir)
        if "__pycache__" in rel.parts or rel.suffix == ".pyc" or rel.parts[0] in (".pytest_cache", ".hypothesis"):
            continue
        h.update(str(rel.as_posix()).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


CODE_ROOT = REPO_ROOT  # llm_basics/ and grader/ (a module attribute, so that a test can point it elsewhere)
CODE_PATTERNS = ("llm_basics/**/*.py", "grader/**/*.py", "grader/**/*.ini", "grader/**/*.json")


def code_digest(root: Path | None = None) -> str:
    """A hash of the grading code (``llm_basics/*.py``, ``grader/*.py``, ``*.ini``, ``*.json``), so that a fix
    to the library or the grader re-grades everyone."""
    root = Path(root or CODE_ROOT)
    h = hashlib.sha256()
    paths = sorted({p for pattern in CODE_PATTERNS for p in root.glob(pattern) if p.is_file()})
    for path in paths:
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def submission_hash(sub: Taken, *, tests: str, settings: dict, code: str | None = None) -> str:
    """A hash of what is graded: the taken files, what was refused and why, the tests, the grading code
    (``code_digest()`` unless given) and the limits."""
    h = hashlib.sha256()
    for name in sorted(sub.files):
        h.update(b"file\0" + name.encode() + b"\0" + hashlib.sha256(sub.files[name]).digest())
    h.update(json.dumps(sub.problems, sort_keys=True).encode())
    h.update(tests.encode())
    h.update(b"code\0" + (code if code is not None else code_digest()).encode())
    h.update(json.dumps(settings, sort_keys=True).encode())
    return "sha256:" + h.hexdigest()
