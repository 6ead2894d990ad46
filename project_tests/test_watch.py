"""`make watch` (grader.watch): two saves of an exercise file give two reports, the same as `make grade`'s."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from grader import report, watch
from grader.grading import REPO_ROOT

WAIT = 120.0  # seconds for any one report: generous, since other tests may be loading the machine


class Lines:
    """The stdout of a process, line by line, readable with a deadline."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def until(self, needle: str, timeout: float = WAIT) -> list[str]:
        """Lines up to and including the first that contains ``needle``."""
        got, deadline = [], time.monotonic() + timeout
        while True:
            try:
                line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line with {needle!r} within {timeout} s; got:\n" + "\n".join(self.seen)) from None
            if line is None:
                raise AssertionError(f"the output ended before {needle!r}:\n" + "\n".join(self.seen))
            got.append(line)
            self.seen.append(line)
            if needle in line:
                return got

    def rest(self, timeout: float = 30.0) -> str:
        """Everything else, once the process has ended."""
        deadline = time.monotonic() + timeout
        while (line := self.queue.get(timeout=max(0.0, deadline - time.monotonic()))) is not None:
            self.seen.append(line)
        return "\n".join(self.seen)


class Drained:
    """A pipe read to its end in a thread, so that the process never blocks on writing to it."""

    def __init__(self, stream) -> None:
        self.chunks: list[str] = []
        self.thread = threading.Thread(target=lambda: self.chunks.extend(stream), daemon=True)
        self.thread.start()

    def text(self, timeout: float = 30.0) -> str:
        self.thread.join(timeout)
        return "".join(self.chunks)


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _save(path: Path, text: str) -> None:
    """Save like an editor that writes a new file and renames it over the old one."""
    tmp = path.with_name(path.name + ".tmp~")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.mark.slow
# It once hung inside the whole suite: the watch it started inherited SIGINT ignored from this process (its
# /proc status said so), so one Ctrl-C could not stop it. conftest puts this process's SIGINT handler back before
# every test and names the test that changed it; if watch does not exit, its signal state and stacks are kept.
def test_two_saves_give_two_reports_and_ctrl_c_exits_cleanly(tmp_path):
    folder = tmp_path / "work"
    shutil.copytree(REPO_ROOT / "exercises", folder)
    stub = (folder / "ex2_topk_attention.py").read_text()
    proc = subprocess.Popen(
        [sys.executable, "-m", "grader", "watch", "--target", str(folder), "--exercise", "ex2"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"},
    )
    lines, errors = Lines(proc), Drained(proc.stderr)
    try:
        start = lines.until("Watching")
        assert any("0 / 15" in line for line in start) and any("not started" in line for line in start)

        # save 1: the reference solution gets every visible point
        _save(folder / "ex2_topk_attention.py", (REPO_ROOT / "solutions" / "ex2_topk_attention.py").read_text())
        first = lines.until("Watching")
        assert "ex2_topk_attention.py saved at" in first[0]
        assert any(line.startswith("ex2  Top-k attention") and "15 / 15" in line for line in first), first
        assert not any("What to fix" in line for line in first)

        # save 2: a bug in the tie rule costs points, with the same message `make grade` gives
        broken = (REPO_ROOT / "solutions" / "ex2_topk_attention.py").read_text().replace("return output, weights", "return output, weights * 2", 1)
        assert broken != (REPO_ROOT / "solutions" / "ex2_topk_attention.py").read_text()
        _save(folder / "ex2_topk_attention.py", broken)
        second = lines.until("Watching")
        assert "ex2_topk_attention.py saved at" in second[0]
        row = next(line for line in second if line.startswith("ex2  Top-k attention"))
        assert "15 / 15" not in row
        assert any("What to fix" in line for line in second) and any(line.startswith("  x test_") for line in second)
        assert any("save the file again to grade it" in line for line in second)

        # an editor's swap file or another folder's file is not a save of the exercise
        (folder / ".ex2_topk_attention.py.swp").write_text("x")
        (folder / "notes.txt").write_text("x")
        _save(folder / "ex2_topk_attention.py", stub)
        third = lines.until("Watching")
        assert any("not started" in line for line in third)
        assert sum("saved at" in line for line in third) == 1
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)  # the judge session gets 5 s to end, then is killed: 60 s only on a loaded machine
        except subprocess.TimeoutExpired:  # where is it stuck? every thread's stack (watch registers SIGUSR1)
            tree = subprocess.run(["ps", "-o", "pid,ppid,stat,wchan:20,args", "--ppid", str(proc.pid), "-p",
                                   str(proc.pid)], capture_output=True, text=True).stdout
            status = Path(f"/proc/{proc.pid}/status").read_text()  # is SIGINT (mask 0x2) ignored, blocked, caught?
            tree += "".join(line + "\n" for line in status.splitlines() if line.startswith(("Sig", "Shd")))
            tree += f"this process's SIGINT handler: {signal.getsignal(signal.SIGINT)!r}\n"
            tree += "lines seen:\n" + "\n".join(lines.seen) + "\n"
            proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
            proc.kill()
            proc.wait()
            (tmp_path / "watch-stuck.txt").write_text(tree + "\n" + errors.text())  # kept by pytest's tmp
    out, err = lines.rest(), errors.text()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert out.rstrip().endswith("Stopped watching.")
    time.sleep(0.5)
    assert _processes_mentioning(str(folder)) == [], "the judge session outlived `make watch`"


def test_a_save_is_a_new_signature_of_an_exercise_file(tmp_path):
    files = watch.exercise_files(tmp_path, ["ex2", "ex4"])
    assert files == {"ex2_topk_attention.py": "ex2", "ex4_scaling.py": "ex4"}
    (tmp_path / "ex2_topk_attention.py").write_text("a")
    (tmp_path / "ex4_scaling.py").write_text("b")
    graded = watch.signatures(tmp_path, files)
    assert watch.saved_exercises(graded, tmp_path, files) == []
    _save(tmp_path / "ex2_topk_attention.py", "a")  # same text, saved again: graded again
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ex4_scaling.py").write_text("c")  # another folder
    (tmp_path / "ex4_scaling.py~").write_text("c")  # an editor's backup
    assert watch.saved_exercises(graded, tmp_path, files) == ["ex2"]
    (tmp_path / "ex4_scaling.py").unlink()  # deleted, and not written again
    assert watch.saved_exercises(graded, tmp_path, files) == ["ex2"]


def _doc(exercises: list[tuple[str, float, float, list[str]]]) -> dict:
    """A minimal results document: (id, visible score, visible max, kinds of the failed tests)."""
    tests, summaries = [], []
    for ex, score, top, kinds in exercises:
        summaries.append({"id": ex, "name": ex, "title": ex, "visible_score": score, "visible_max": top,
                          "hidden_score": 0, "hidden_max": 10, "hidden_run": False, "score": score, "max_score": top})
        for kind in kinds:
            tests.append({"status": "failed", "max_score": 1, "extra_data": {
                "exercise": ex, "hidden": False, "kind": kind, "nodeid": f"tests/test_{ex}.py::test_x",
                "hint": "", "reason": "why", "details": "", "captured_output": ""}})
    return {"score": 0, "max_score": 60, "tests": tests,
            "lesson": {"exercises": summaries, "target": "exercises", "hidden_points_not_run": 40}}


def test_the_tip_names_the_exercise_being_worked_on():
    started_ex3 = _doc([("ex1", 15, 15, []), ("ex2", 0, 15, ["not_implemented"]), ("ex3", 5, 15, ["failed"]),
                        ("ex4", 0, 15, ["not_implemented"])])
    assert report.focus_exercise(started_ex3) == "ex3"
    assert "`make grade EX=ex3`" in report.render_plain(started_ex3)
    only_ex4 = _doc([("ex4", 3, 15, ["failed"])])
    text = report.render_plain(only_ex4)
    assert "EX=ex4" in text and "EX=ex2" not in text
    nothing_started = _doc([("ex1", 0, 15, ["not_implemented"]), ("ex2", 0, 15, ["not_implemented"])])
    assert report.focus_exercise(nothing_started) == "ex1"
    assert "save the file again to grade it" in report.render_plain(only_ex4, watching=True)


def test_verbose_details_leave_out_pytest_advice():
    doc = _doc([("ex1", 0, 15, ["failed"])])
    doc["tests"][0]["extra_data"]["details"] = (
        "AssertionError: expected [1, 0], got [1, 1]\nassert [1, 1] == [1, 0]\n  At index 1 diff: 1 != 0\n"
        "  Use -v to get more diff\n  ...Full output truncated (3 lines hidden), use '-vv' to show\n")
    text = report.render_plain(doc, verbose=True)
    assert "At index 1 diff" in text
    assert "Use -v" not in text and "-vv" not in text
