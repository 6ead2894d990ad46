"""How long from a save to `make watch`'s report?

Starts `python -m grader watch` on a scratch copy of the exercises, then saves each exercise file several times,
alternating the untouched stub (an unfinished exercise: its tests fail at once) and the reference solution (a
finished one: its tests run to the end), the way an editor saves (a new file renamed over the old one). For
every save it records when the watcher said it noticed the save, when the report's first line came and when its
last line came, and compares a finished exercise's report with its tests' own compute (the sum of the test
durations that `python -m grader grade` records for the same file). Run from the repository root:

    .venv/bin/python bench/bench_watch.py [--saves 6] [--exercise ex2 ...]

The targets (issue 13): an unfinished exercise's report under 0.5 s after the save; a finished one's within its
test compute plus 0.3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader.results import load_points  # noqa: E402


def save(path: Path, text: str) -> float:
    tmp = path.with_name(path.name + ".tmp~")
    tmp.write_text(text)
    start = time.perf_counter()
    os.replace(tmp, path)
    return start


def test_compute(folder: Path, ex: str) -> float:
    out = folder.parent / "compute.json"
    subprocess.run([sys.executable, "-m", "grader", "grade", "--target", str(folder), "-e", ex, "--json", str(out)],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return sum(t["extra_data"]["duration"] for t in json.loads(out.read_text())["tests"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=6, help="saves per exercise (half stub, half solution)")
    parser.add_argument("--exercise", "-e", action="append", help="exercises to save (default: all)")
    args = parser.parse_args()
    points = load_points()
    exercises = args.exercise or list(points)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "exercises"
        shutil.copytree(REPO / "exercises", folder)
        lines: queue.Queue = queue.Queue()
        proc = subprocess.Popen([sys.executable, "-m", "grader", "watch", "--target", str(folder)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env={**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})

        def pump() -> None:
            for line in proc.stdout:
                lines.put((time.perf_counter(), line.rstrip("\n")))

        threading.Thread(target=pump, daemon=True).start()

        def until(needle: str) -> list[tuple[float, str]]:
            got = []
            while True:
                stamp, line = lines.get(timeout=300)
                got.append((stamp, line))
                if needle in line:
                    return got

        started = time.perf_counter()
        until("Watching")
        startup = time.perf_counter() - started
        rows = {}
        try:
            for ex in exercises:
                name = f"{points[ex]['name']}.py"
                texts = {"unfinished": (REPO / "exercises" / name).read_text(),
                         "finished": (REPO / "solutions" / name).read_text()}
                got: dict[str, list[tuple[float, float, float]]] = {"unfinished": [], "finished": []}
                for i in range(args.saves):
                    kind = "finished" if i % 2 == 0 else "unfinished"
                    time.sleep(0.3)  # let the watcher settle, as between two saves by hand
                    t0 = save(folder / name, texts[kind])
                    out = until("Watching")
                    noticed = next(s for s, line in out if "saved at" in line) - t0
                    first = next(s for s, line in out if line.startswith("Grading ")) - t0
                    last = next(s for s, line in out if line.startswith("Graded in")) - t0
                    got[kind].append((noticed, first, last))
                ref = Path(tmp) / "ref"
                ref.mkdir(exist_ok=True)
                (ref / name).write_text(texts["finished"])
                compute = statistics.median(test_compute(ref, ex) for _ in range(3))
                rows[ex] = (got, compute)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    load = os.getloadavg()
    print(f"make watch, {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} (1 / 5 min) at the end;"
          f" start-up (torch, collection, first grading of all four) {startup:.1f} s")
    print(f"median of {args.saves // 2} saves each: save -> 'saved' line / first line of the report / last line")
    for ex, (got, compute) in rows.items():
        for kind in ("unfinished", "finished"):
            med = [statistics.median(v[i] for v in got[kind]) for i in range(3)]
            extra = f"   test compute {compute:.2f} s, report - compute {med[2] - compute:+.2f} s" if kind == "finished" else ""
            print(f"  {ex} {kind:10s}  {med[0]:5.3f} / {med[1]:5.3f} / {med[2]:5.3f} s{extra}")


if __name__ == "__main__":
    main()
