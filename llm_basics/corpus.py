"""Text to train on, with no download.

* ``lesson_text()``: the lesson's own README (about 15 KB of English).
* ``stdlib_text(n_bytes)``: Python standard-library source files glued
  together, a real corpus of any size up to several MB.

>>> len(stdlib_text(1000).encode("utf-8")) <= 1000
True
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path
from typing import Iterator

__all__ = ["LESSON_README", "lesson_text", "stdlib_text", "stdlib_files"]

# resources/lesson-1-llm-basics/README.md, found relative to this package
LESSON_README = Path(__file__).resolve().parent.parent / "resources" / "lesson-1-llm-basics" / "README.md"

# folders of the standard-library tree that hold installed third-party code
_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}


def lesson_text() -> str:
    """The text of the lesson (``resources/lesson-1-llm-basics/README.md``)."""
    if not LESSON_README.is_file():
        raise FileNotFoundError(
            f"lesson text not found at {LESSON_README}; run from a full clone of the repository"
        )
    return LESSON_README.read_text(encoding="utf-8")


def stdlib_files() -> Iterator[Path]:
    """The standard library's ``.py`` files in a fixed order (sorted by path,
    files of a folder before its sub-folders), skipping third-party packages."""
    root = Path(sysconfig.get_paths()["stdlib"])
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)  # walk order is fixed
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield Path(folder) / name


def stdlib_text(n_bytes: int = 1_000_000) -> str:
    """At most ``n_bytes`` bytes (UTF-8) of Python standard-library source.

    Files are read in ``stdlib_files()`` order and concatenated; files that are
    not valid UTF-8 (a few test files, on purpose) are skipped; the last file
    is cut at a character boundary. The same Python version gives the same
    text every time.
    """
    if isinstance(n_bytes, bool) or not isinstance(n_bytes, int) or n_bytes < 0:
        raise ValueError(f"n_bytes must be a non-negative int, got {n_bytes!r}")
    parts: list[bytes] = []
    total = 0
    for path in stdlib_files():
        if total >= n_bytes:
            break
        try:
            data = path.read_bytes()
            data.decode("utf-8")  # skip files that are not UTF-8
        except (OSError, UnicodeDecodeError):
            continue
        parts.append(data[: n_bytes - total])
        total += len(parts[-1])
    # errors="ignore" drops only the partial character at the very end, if any
    return b"".join(parts).decode("utf-8", errors="ignore")
