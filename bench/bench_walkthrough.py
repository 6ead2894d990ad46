"""How long does the step-3 walkthrough (or `make plots`) take, on a quiet machine and on a busy one?

"Busy" is made here: N CPU-bound processes per core (plain Python loops) run next to the walkthrough for its
whole run, as other programs do on a student's laptop. Each case is run --runs times and the median printed,
with the CPU time it used and the load average. --threads picks torch's thread count: "chosen" is what the walkthrough picks itself
(llm_basics.threads), a number sets OMP_NUM_THREADS (2 on a 2-core machine is torch's own default, i.e. how the
walkthrough ran before it chose). --nice runs the walkthrough and the competing loops at that niceness (as root,
-20 keeps the machine's other work out of the way, so that "quiet" means quiet). Run from the repository root:

    .venv/bin/python bench/bench_walkthrough.py [--what step3|plots] [--load-per-core 0 2] [--threads chosen 2]
                                                [--runs 3] [--nice -20]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WHAT = {
    "step3": [sys.executable, str(REPO / "resources" / "lesson-1-llm-basics" / "step3_generation.py")],
    "plots": [sys.executable, "-m", "grader", "plots", "--target", "solutions", "--out", "{tmp}"],
}
BUSY_LOOP = "while True: pass"


def one_run(cmd: list[str], threads: str, per_core: int, nice: int) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of the walkthrough, 1-minute load average at the end)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if threads != "chosen":
        env["OMP_NUM_THREADS"] = threads
    renice = (lambda: os.nice(nice)) if nice else None
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP], preexec_fn=renice)
            for _ in range(per_core * (os.cpu_count() or 1))]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([part.replace("{tmp}", tmp) for part in cmd], cwd=REPO, env=env, check=True,
                           stdout=subprocess.DEVNULL, preexec_fn=renice)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the hogs are still running: not counted yet
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            return time.perf_counter() - start, cpu, os.getloadavg()[0]
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", choices=sorted(WHAT), default="step3")
    parser.add_argument("--load-per-core", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--threads", nargs="+", default=["chosen", "2"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--nice", type=int, default=0)
    args = parser.parse_args()
    print(f"{args.what}: median of {args.runs} runs, {os.cpu_count()} cores, niceness {args.nice}", flush=True)
    for per_core in args.load_per_core:
        for threads in args.threads:
            got = [one_run(WHAT[args.what], threads, per_core, args.nice) for _ in range(args.runs)]
            times = ", ".join(f"{t:.1f}" for t, _, _ in got)
            loads = ", ".join(f"{load:.1f}" for _, _, load in got)
            wall, cpu = statistics.median(t for t, _, _ in got), statistics.median(c for _, c, _ in got)
            print(f"  {per_core} busy loops per core, threads {threads:>6}: {wall:6.1f} s wall, {cpu:6.1f} s CPU"
                  f"   (runs {times} s; load {loads})", flush=True)


if __name__ == "__main__":
    main()
