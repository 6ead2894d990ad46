"""How long is a student's first `make grade`, from a clean clone with only Python and pip?

For each git ref given, clones the repository into a scratch folder and runs `make setup` (the venv and every
dependency, with an empty pip cache) and then `make grade`, as a student's first `make grade` does; refs are
run in turn, round after round, so that a change in the machine's load hits each alike. Prints the median of
each, with the load average, since other work on the machine changes these figures a lot. Run from the
repository root:

    .venv/bin/python bench/bench_setup.py [--rounds 3] [REF ...]     # default: HEAD

pip is used as configured on the machine (its index, --find-links, constraints): on this project's machines the
torch wheel comes from the local disk, so the figures leave out its download (192 MB for the CPU build).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def first_grade(ref: str, scratch: Path) -> tuple[float, float, float]:
    """(setup seconds, first grade seconds, the 1-minute load average at the end) for one clean clone of ref."""
    clone = scratch / f"clone-{time.time_ns()}"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    subprocess.run(["git", "checkout", "-q", ref], cwd=clone, check=True)
    env = {**os.environ, "PIP_CACHE_DIR": str(scratch / f"pip-cache-{time.time_ns()}")}
    times = []
    for target in ("setup", "grade"):
        start = time.perf_counter()
        subprocess.run(["make", target], cwd=clone, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    subprocess.run(["rm", "-rf", str(clone), env["PIP_CACHE_DIR"]], check=True)
    return times[0], times[1], os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("refs", nargs="*", default=["HEAD"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    refs = {ref: subprocess.run(["git", "rev-parse", "--short", ref], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip() for ref in args.refs}
    got: dict[str, list[tuple[float, float, float]]] = {ref: [] for ref in refs}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for ref, sha in refs.items():
                setup, grade, load = first_grade(sha, Path(tmp))
                got[ref].append((setup, grade, load))
                print(f"round {round_ + 1} {ref} ({sha}): setup {setup:5.1f} s, first grade {grade:4.1f} s,"
                      f" total {setup + grade:5.1f} s, load {load:.1f}", flush=True)
    print(f"median of {args.rounds} clean clones, {os.cpu_count()} cores:")
    for ref, rows in got.items():
        setup, grade = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
        total = statistics.median(r[0] + r[1] for r in rows)
        loads = ", ".join(f"{r[2]:.1f}" for r in rows)
        print(f"  {ref:12s} setup {setup:5.1f} s + first grade {grade:4.1f} s = {total:5.1f} s   (load {loads})")


if __name__ == "__main__":
    main()
