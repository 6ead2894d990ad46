"""The judge's event stream, as the parent reads it: one JSON line per collected suite, test start and result.

The judge writes it (grader.judge.plugin.emit) into a file the parent made and opened before any worker of that
submission ran; every reader here goes through that descriptor, never the file's name (a worker without Landlock
could replace the name with a link, a FIFO or a forged copy).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from grader.records import SessionResult
from grader.untrusted_paths import open_regular, read_regular


def report_progress(events: list[dict], on_progress) -> None:
    tests = next((e["tests"] for e in events if e["event"] == "collected"), [])
    done = sum(1 for e in events if e["event"] == "result")
    current = next((e["nodeid"] for e in reversed(events) if e["event"] == "start"), "")
    on_progress(done, len(tests), current)


def open_events(path: Path) -> int:
    """A descriptor of the events file ``submit`` made, for read_events. Opened at once and kept, the file read is
    the one the parent made, whatever a worker without Landlock later puts under its name (a link, a FIFO, a
    forged copy): the judge opened it before any worker of its submission ran."""
    return open_regular(path)


def _read_from(fd: int, offset: int) -> bytes:
    """Everything in the file behind ``fd`` from ``offset`` on."""
    parts = []
    if sys.platform != "linux":  # no pread on Windows: seek, then read (the descriptor is ours alone)
        os.lseek(fd, offset, os.SEEK_SET)
        while chunk := os.read(fd, 1 << 20):
            parts.append(chunk)
        return b"".join(parts)
    while chunk := os.pread(fd, 1 << 20, offset + sum(map(len, parts))):
        parts.append(chunk)
    return b"".join(parts)


def read_events(source: Path | int, offset: int, into: list[dict]) -> int:
    """Append the whole event lines past ``offset`` to ``into``; returns the new offset. ``source``: a descriptor
    from open_events, or a path, read only as a regular file (never through a link, never from a FIFO)."""
    if isinstance(source, int):
        data = _read_from(source, offset)
    else:
        data = read_regular(source, offset=offset)
    end = data.rfind(b"\n") + 1  # only whole lines
    for line in data[:end].splitlines():
        if line.strip():
            into.append(json.loads(line))
    return offset + end


def read_all(fd: int) -> list[dict]:
    """Every event behind ``fd`` (from open_events), and the descriptor closed: a finished judge's stream."""
    events: list[dict] = []
    try:
        read_events(fd, 0, events)
    except OSError:
        pass
    finally:
        os.close(fd)
    return events


def absorb(result: SessionResult, events: list[dict]) -> None:
    """Take one judge's events into ``result`` (grader.records.SessionResult.absorb)."""
    result.absorb(events)
