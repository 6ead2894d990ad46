"""What do the graded tests themselves cost, per exercise, hidden tests included?

Grades a target (the reference by default) ``--runs`` times with ``python -m grader grade --hidden`` and reads
each test's cost from the results document: ``cpu`` (CPU seconds of the judge and the worker during the test)
and ``duration`` (wall-clock seconds). Each test's figure is its minimum over the runs, so a busy moment does
not count; the table sums them per exercise and lists the dearest tests. Imports, collection and starting the
worker are not in these figures (``bench/bench_grade.py`` shows them). Not a test: nothing here passes or fails.

``--batch N`` instead grades N copies of the target in one batch (``grader.batch.batch_grade``, 2 at a time)
and takes each test's median over the copies: what a batch pays per submission once its judge session has
graded the reference (the warm-up) and its caches are full.

Usage: python bench/bench_compute.py [--target solutions] [--runs 3] [--top 15] [--batch N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def costs(target: str) -> dict[str, tuple[str, float, float]]:
    """{nodeid: (exercise, cpu, wall)} of one grading."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        subprocess.run([sys.executable, "-m", "grader", "grade", "--target", target, "--hidden", "--json", str(out)],
                       cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        doc = json.loads(out.read_text())
    found = {}
    for test in doc["tests"]:
        extra = test["extra_data"]
        # a grader older than the "cpu" field: its wall-clock duration stands in (on a quiet machine, close)
        found[extra["nodeid"]] = (extra["exercise"], extra.get("cpu", extra["duration"]), extra["duration"])
    return found


def batch_costs(target: str, copies: int) -> list[dict[str, tuple[str, float, float]]]:
    """One {nodeid: (exercise, cpu, wall)} per copy of ``target`` graded in a single batch."""
    sys.path.insert(0, str(REPO))
    from bench_batch import write_copies
    from grader.batch import batch_grade

    source = (REPO / target) if not Path(target).is_absolute() else Path(target)
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs"
        write_copies(subs, {f.name: f.read_bytes() for f in source.glob("ex*.py")}, copies, prefix="copy")
        batch_grade(subs, Path(tmp) / "out", jobs=2, progress=None)
        runs = []
        for doc in sorted((Path(tmp) / "out" / ".grader-instructor").glob("*.json")):
            tests = json.loads(doc.read_text())["tests"]
            runs.append({t["extra_data"]["nodeid"]: (t["extra_data"]["exercise"], t["extra_data"]["cpu"],
                                                     t["extra_data"]["duration"])
                         for t in tests if "::" in t["extra_data"]["nodeid"]})
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="solutions")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--batch", type=int, default=0, help="grade this many copies in one batch instead")
    args = parser.parse_args()
    if args.batch:
        runs = batch_costs(args.target, args.batch)
        pick, how = statistics.median, f"median of {len(runs)} copies graded in one batch"
    else:
        runs = [costs(args.target) for _ in range(args.runs)]
        pick, how = min, f"minimum of {args.runs} gradings per test"
    best = {node: (runs[0][node][0], pick([r[node][1] for r in runs]), pick([r[node][2] for r in runs]))
            for node in runs[0]}
    per_ex: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for ex, cpu, wall in best.values():
        per_ex[ex][0] += 1
        per_ex[ex][1] += cpu
        per_ex[ex][2] += wall
    print(f"{args.target}: {how}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"  {'exercise':10s} {'tests':>5s} {'CPU s':>7s} {'wall s':>7s}")
    for ex in sorted(per_ex):
        n, cpu, wall = per_ex[ex]
        print(f"  {ex:10s} {n:5d} {cpu:7.2f} {wall:7.2f}")
    n = sum(v[0] for v in per_ex.values())
    print(f"  {'total':10s} {n:5d} {sum(v[1] for v in per_ex.values()):7.2f} {sum(v[2] for v in per_ex.values()):7.2f}")
    print(f"the {args.top} dearest tests (CPU s, wall s):")
    for node, (ex, cpu, wall) in sorted(best.items(), key=lambda kv: -kv[1][1])[: args.top]:
        print(f"  {cpu:6.3f} {wall:6.3f}  {node}")


if __name__ == "__main__":
    main()
