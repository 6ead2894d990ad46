"""How long does `make grade` take, next to the floor it cannot beat?

The floor is what any grader must pay: starting Python and importing torch, a trivial pytest session, and the
graded tests' own compute (the sum of the test durations that the grader records). Run from the repository root:

    .venv/bin/python bench/bench_grade.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def wall(cmd: list[str], runs: int, env: dict | None = None) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def test_compute(target: str) -> float:
    """Seconds spent inside the graded tests themselves (setup + call + teardown), from the results document."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        subprocess.run([sys.executable, "-m", "grader", "grade", "--target", target, "--json", str(out)],
                       cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        doc = json.loads(out.read_text())
    return sum(t["extra_data"]["duration"] for t in doc["tests"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    py = sys.executable
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        trivial = Path(tmp) / "test_trivial.py"
        trivial.write_text("def test_nothing():\n    assert True\n")
        import_torch = wall([py, "-c", "import torch"], args.runs)
        trivial_pytest = wall([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(trivial)], args.runs, env)
    rows = []
    for label, target in (("stubs (exercises/)", "exercises"), ("reference (solutions/)", "solutions")):
        with tempfile.TemporaryDirectory() as tmp:  # our writes stay in our own folder
            grade = wall(["make", "-s", "grade", f"GRADE_ARGS=--target {target} --json {Path(tmp) / 'r.json'}"],
                         args.runs)
        floor = import_torch + trivial_pytest + test_compute(target)
        rows.append((label, grade, floor))
    print(f"median of {args.runs} runs, {os.cpu_count()} cores")
    print(f"  python -c 'import torch'        {import_torch:6.2f} s")
    print(f"  trivial pytest session          {trivial_pytest:6.2f} s")
    for label, grade, floor in rows:
        print(f"  make grade, {label:24s} {grade:6.2f} s   floor {floor:5.2f} s   ratio {grade / floor:4.2f}x")


if __name__ == "__main__":
    main()
