"""The batch's progress display (moved out of grader.report, which is shipped to students)."""

from __future__ import annotations

import sys
import time

from grader.report import use_rich
from grader.untrusted import one_line


class Display:
    """A rich progress bar on a terminal, with a line per submission above it; one plain line per submission
    otherwise; nothing with mode None. The time left is the submissions left at the pace graded ones have come
    (unchanged ones cost nothing), counting down between them."""

    def __init__(self, total: int, mode: str | None, stream) -> None:
        self.stream = stream or sys.stdout
        self.mode = ("rich" if use_rich(self.stream) else "plain") if mode == "auto" else mode
        self.total, self.done = total, 0
        self.tally = {"graded": 0, "ungradable": 0, "error": 0}
        self.graded_at: list[float] = []  # when each submission graded in this run finished
        self.deadline: float | None = None  # when the batch should end, at the pace so far
        self.started = time.monotonic()
        self.progress = None
        if self.mode == "rich":
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            # auto_refresh=False: no refresh thread, because this process forks workers.
            self.progress = Progress(
                TextColumn("[bold]Grading"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[tally]}"),
                TimeElapsedColumn(), TextColumn("{task.fields[left]}"), console=Console(file=self.stream),
                auto_refresh=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("grading", total=total, tally=self._tally(), left="")
            self.progress.refresh()

    def _tally(self) -> str:
        t = self.tally
        return f"[green]{t['graded']} graded[/] [yellow]{t['ungradable']} ungradable[/] [red]{t['error']} errors[/]"

    def _left(self) -> str:
        if self.done >= self.total:
            return ""
        if self.deadline is None:
            return "estimating time left"
        left = max(0, round(self.deadline - time.monotonic()))
        return f"about {left // 60} min {left % 60:02d} s left" if left >= 60 else f"about {left} s left"

    def _estimate(self, seconds: float | None) -> None:
        now = time.monotonic()
        if seconds:  # graded here (unchanged and refused ones cost nothing: they say nothing of the pace)
            self.graded_at.append(now)
        if not self.graded_at:
            return
        first, last = self.graded_at[0], self.graded_at[-1]
        pace = ((last - first) / (len(self.graded_at) - 1) if len(self.graded_at) > 1
                else first - self.started)  # seconds per graded submission, all jobs together
        self.deadline = now + pace * (self.total - self.done)

    def tick(self) -> None:
        if self.progress is not None:
            self.progress.update(self.task, left=self._left())
            self.progress.refresh()

    def line(self, row: dict, seconds: float | None) -> str:
        width = len(str(self.total))
        what = (f"{row['total']}/{row['max']}" if row["status"] == "graded" else f"{row['status']}: {row['reason']}")
        when = "skipped (unchanged)" if seconds is None else f"{seconds:.1f} s"
        return f"[{self.done:>{width}}/{self.total}] {one_line(row['student'])}  {one_line(what)}  ({when})"

    def finished(self, row: dict, seconds: float | None) -> None:
        self.done += 1
        self.tally[row["status"]] = self.tally.get(row["status"], 0) + 1
        self._estimate(seconds)
        if self.mode == "rich":
            self.progress.console.print(self.line(row, seconds), markup=False, highlight=False,
                                        style=None if row["status"] == "graded" else "yellow")
            self.progress.update(self.task, advance=1, tally=self._tally(), left=self._left())
            self.progress.refresh()
        elif self.mode == "plain":
            self.stream.write(self.line(row, seconds) + "\n")
            self.stream.flush()

    def close(self, summary: str) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.mode is not None:
            self.stream.write(summary + "\n")
            self.stream.flush()
