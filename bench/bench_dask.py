"""Is grading on Dask as fast as a local batch? Submissions per minute on a LocalCluster against ``--jobs``.

Grades ``--copies`` copies of one sample submission (``--kind``, as in bench_batch.py) twice per round, each
time in a fresh ``python -m grader batch --force --no-analysis`` process: with ``--jobs W`` and with
``--scheduler local:W`` (W = ``--workers``), alternating which goes first. For each it prints:

* end to end: from the command's start to its last row, start-up included (the local batch imports torch and
  collects the suites once; the Dask batch starts the cluster, and each worker imports torch and collects);
* steady state: the rate between the first and the last row, once everything is warm.

Then the per-task overhead of the cluster path, on a warm LocalCluster of one worker: ``--tasks`` tasks sent one
after another, each a submission of the untouched stubs; the client's round trip (submit to result) minus the
judge's own grading time measured on the worker (what a local batch pays too). That is what Dask adds per
submission: scheduling, shipping the files, writing them on the worker, the events back.

Not a test: nothing here passes or fails. The machine should be quiet: both paths use every core.

Usage: python bench/bench_dask.py [--copies 40] [--workers 2] [--rounds 2] [--kind mix] [--tasks 20]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_batch import sample_files, write_copies  # noqa: E402

from grader import results  # noqa: E402
from grader.grading import TESTS_DIR  # noqa: E402


CPUACCT = Path("/sys/fs/cgroup/cpuacct")  # cgroup v1 CPU accounting, where there is one and we may use it


class CpuMeter:
    """CPU seconds used by a command and everything it starts (a cgroup: orphans and daemons count too), so that
    a busy machine, which stretches wall-clock times, does not blur the cost. None where cgroups are not ours."""

    def __init__(self, name: str) -> None:
        self.group = CPUACCT / name
        try:
            self.group.mkdir(exist_ok=True)
            (self.group / "cpuacct.usage").write_text("0")
        except OSError:
            self.group = None

    def join(self) -> None:  # runs in the child, before exec
        if self.group is not None:
            (self.group / "tasks").write_text(str(os.getpid()))

    def seconds(self) -> float | None:
        if self.group is None:
            return None
        time.sleep(1.0)  # what the command left behind (a judge session ending after its worker) finishes
        used = int((self.group / "cpuacct.usage").read_text()) / 1e9
        try:
            self.group.rmdir()
        except OSError:
            pass
        return used


def timed_batch(subs: Path, out: Path, how: list[str]) -> dict:
    """Run one batch command; the time of each progress line it prints (one per row, when not a terminal)."""
    meter = CpuMeter(f"bench-dask-{os.getpid()}-{out.name}")
    start = time.perf_counter()
    command = [sys.executable, "-m", "grader", "batch", str(subs), "--out", str(out), "--force", "--no-analysis",
               *how]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          preexec_fn=meter.join) as proc:
        times = [time.perf_counter() for line in proc.stdout if line.startswith("[")]
    cpu = meter.seconds()
    n = len(times)
    with open(out / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    steady = (n - 1) / (times[-1] - times[0]) * 60 if n > 1 else float("nan")
    return {"seconds": times[-1] - start, "rate": 60 * n / (times[-1] - start), "steady": steady, "cpu": cpu,
            "totals": sorted({r["total"] for r in rows}), "csv": (out / "grades.csv").read_text()}


def task_overhead(tasks: int) -> list[float]:
    """Seconds Dask adds to each task on a warm one-worker cluster (round trip minus the judge's grading)."""
    from grader.batch import dask_pool
    from grader.batch.dask_worker import PLUGIN_NAME, GraderSetup, Suite, grade_submission
    from grader.judge.session import Limits

    points = results.load_points(TESTS_DIR)
    files = sample_files("stubs")
    exercises = list(points)
    suite = Suite.read(TESTS_DIR, points)
    limits = dataclasses.asdict(Limits())
    extra = []
    with dask_pool.local_cluster(1) as cluster:
        client, _ = dask_pool.connect(cluster.scheduler_address)
        try:
            client.register_plugin(GraderSetup(suite), name=PLUGIN_NAME)
            for i in range(tasks + 1):
                start = time.perf_counter()
                reply = client.submit(grade_submission, files, exercises, limits, 600.0, suite.digest,
                                      key=f"bench-{i}").result()
                round_trip = time.perf_counter() - start
                if i:  # the first task warms the worker
                    extra.append(round_trip - reply["elapsed"])
        finally:
            client.close()
    return extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kind", choices=("reference", "stubs", "mix"), default="mix")
    parser.add_argument("--tasks", type=int, default=20, help="tasks for the per-task overhead")
    args = parser.parse_args()

    files = sample_files(args.kind)
    runs: dict[str, list[dict]] = {"local": [], "dask": []}
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        root = Path(tmp)
        subs = root / "submissions"
        write_copies(subs, files, args.copies)
        for r in range(args.rounds):
            order = ["local", "dask"] if r % 2 == 0 else ["dask", "local"]
            for which in order:
                how = ["--jobs", str(args.workers)] if which == "local" else ["--scheduler", f"local:{args.workers}"]
                run = timed_batch(subs, root / f"out-{which}-{r}", how)
                runs[which].append(run)
                cpu = f", {run['cpu']:.0f} CPU s" if run["cpu"] is not None else ""
                print(f"round {r + 1} {which:5}: {run['seconds']:6.1f} s end to end = {run['rate']:5.1f}/min, "
                      f"steady {run['steady']:5.1f}/min{cpu}, totals {run['totals']}, load "
                      f"{os.getloadavg()[0]:.1f}", flush=True)
        same = all(run["csv"] == runs["local"][0]["csv"] for run in runs["local"] + runs["dask"])

    print(f"\nsample submission: {args.kind}, {args.copies} copies, {args.workers} workers; "
          f"identical grades.csv in every run: {same}")
    for key, label in (("rate", "end to end"), ("steady", "steady state")):
        local = statistics.median(run[key] for run in runs["local"])
        dask = statistics.median(run[key] for run in runs["dask"])
        print(f"{label:12}: --jobs {args.workers} {local:5.1f} submissions/min, --scheduler local:{args.workers} "
              f"{dask:5.1f}/min: local is {local / dask:.2f}x the Dask rate")
    if all(run["cpu"] is not None for run in runs["local"] + runs["dask"]):
        local = statistics.median(run["cpu"] for run in runs["local"])
        dask = statistics.median(run["cpu"] for run in runs["dask"])
        print(f"CPU seconds : --jobs {args.workers} {local:.0f} s ({local / args.copies:.2f} s a submission), "
              f"--scheduler local:{args.workers} {dask:.0f} s ({dask / args.copies:.2f} s a submission): "
              f"Dask costs {dask / local:.2f}x")
    extra = task_overhead(args.tasks)
    print(f"per-task overhead of the cluster path (warm worker, {len(extra)} tasks): median "
          f"{1000 * statistics.median(extra):.0f} ms, max {1000 * max(extra):.0f} ms")


if __name__ == "__main__":
    main()
