"""One status line for the whole install (grader/install.py; stdlib only, Python 3.8+).

A sibling of install.py, imported by it both as ``grader.install_status`` and, when install.py runs as a script
before anything is installed, as ``install_status``.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

STEP = re.compile(r"^\s*(Resolved|Prepared|Installed|Uninstalled|Audited|Using Python|Using CPython|Creating|Collecting|Downloading|Obtaining|Installing|Building|Preparing|Processing|Using cached|"
                  r"Successfully|Getting requirements|Checking if)\b")
DOWNLOAD = re.compile(r"^\s*Downloading (\S+) \(([\d.]+ [kMG]?B)\)")


class Status:
    """One line for the whole install, rewritten in place on a terminal: the install's step (``step``), the line
    its tool printed last (``detail``), bytes downloaded so far, the time."""

    FRAMES = "|/-\\"

    def __init__(self, stream, label: str, tmpdir: Path | None = None, step: str = "starting") -> None:
        self.stream, self.label, self.tmpdir = stream, label, tmpdir
        self.tty = stream.isatty()
        self._step, self.detail, self.width, self.start = step, "", 0, time.monotonic()
        self.last_log, self._repeated = self.start, ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def __enter__(self) -> "Status":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self.tty:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()

    @property
    def step(self) -> str:
        return self._step

    @step.setter
    def step(self, text: str) -> None:
        """A new step of the whole install; a log gets it as a line, a terminal on the status line."""
        self._step, self.detail = text, ""
        if not self.tty:
            self.write(f"  {text[:150]}")
            self.last_log = time.monotonic()

    def write(self, text: str) -> None:
        """A line that stays (above the status line on a terminal)."""
        if self.tty:
            self.stream.write("\r" + " " * self.width + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()

    def line(self, text: str) -> None:
        """A line of pip's output: the step it is on now."""
        text = text.strip()
        if not STEP.match(text):
            return
        self.detail = text
        logged = DOWNLOAD.match(text) or text.startswith(("Installing collected", "Successfully installed",
                                                          "Resolved", "Installed", "Using Python"))
        if not self.tty and logged:
            self.stream.write(f"  {text[:150]}\n")
            self.stream.flush()
            self.last_log = time.monotonic()

    def _downloaded(self) -> str:
        """Bytes of the file pip is downloading now (pip writes it into its temporary folder as it comes)."""
        if self.tmpdir is None:
            return ""
        try:
            sizes = [(p.stat().st_mtime, p.stat().st_size) for p in self.tmpdir.glob("pip-*/*") if p.is_file()]
        except OSError:
            return ""
        if not sizes or not DOWNLOAD.match(self.detail):
            return ""
        return f", {max(sizes)[1] / 1e6:.1f} MB so far"

    def _spin(self) -> None:
        frame = 0
        while not self._stop.wait(0.2):
            elapsed = time.monotonic() - self.start
            if self.tty:
                now = f"{self._step}: {self.detail}" if self.detail else self._step  # the install's step, the tool's
                text = f"  {self.FRAMES[frame % 4]} {self.label} [{elapsed:4.0f} s] {now}{self._downloaded()}"
                text = text[: max(40, _columns() - 1)]
                self.stream.write("\r" + text.ljust(self.width))
                self.stream.flush()
                self.width = len(text)
                frame += 1
            elif time.monotonic() - self.last_log > 20:  # a log gets a line now and then, so a wait is never mute
                # the tool's last line once; while it says nothing new, the step (a repeated "Successfully
                # uninstalled ..." read as a loop)
                news = self.detail and self.detail != self._repeated
                text = self.detail if news else f"still on: {self._step}"
                self.stream.write(f"  ... {elapsed:.0f} s: {text[:120]}\n")
                self.stream.flush()
                self._repeated, self.last_log = self.detail, time.monotonic()


def _columns() -> int:
    return shutil.get_terminal_size((100, 24)).columns or 100
