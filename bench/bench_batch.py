"""How much faster is batch grading than one ``python -m grader grade`` per submission?

Grades ``--copies`` copies of one sample submission with ``python -m grader batch``-style grading
(``grader.batch.batch_grade``, ``--jobs`` at a time), and ``--sample`` of the same copies one by one, each
with a fresh ``python -m grader grade --target <copy> --hidden`` process (what a shell loop over the
submissions would do): half of them just before the batch and half just after it, so that the machine's
drift weighs on both alike. Prints submissions per minute for both and the ratio. Not a test: nothing here
passes or fails.

The sample submission (``--kind``):
  reference  every exercise from solutions/
  stubs      every exercise from exercises/ (the untouched stubs)
  mix        a half-done student: the first half of the exercises solved, the rest still stubs (default)

Usage: python bench/bench_batch.py [--copies 50] [--jobs 2] [--sample 5] [--kind mix] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader.batch import batch_grade  # noqa: E402


def sample_files(kind: str) -> dict[str, bytes]:
    points = json.loads((REPO / "tests" / "points.json").read_text())
    names = [meta["name"] for meta in points.values()]
    files = {}
    for i, name in enumerate(names):
        solved = kind == "reference" or (kind == "mix" and i < len(names) // 2)
        source = REPO / ("solutions" if solved else "exercises") / f"{name}.py"
        files[f"{name}.py"] = source.read_bytes()
    return files


def write_copies(subs: Path, files: dict[str, bytes], copies: int, prefix: str = "student") -> None:
    """``copies`` submission folders ``subs/<prefix>000``... each holding ``files``."""
    for i in range(copies):
        folder = subs / f"{prefix}{i:03d}"
        folder.mkdir(parents=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)


def batch_rate(subs: Path, out: Path, jobs: int) -> tuple[float, list[dict]]:
    """Submissions per minute of one batch over every folder of ``subs``, and its rows."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    rows = batch_grade(subs, out, jobs=jobs, progress=None)
    return 60 * len(rows) / (time.perf_counter() - start), rows


def single_runs(subs: Path, out: Path, indices: range) -> tuple[float, list[float]]:
    """Seconds taken by a loop of ``python -m grader grade --hidden`` runs (one per copy in ``indices``), and
    their scores."""
    out.mkdir(parents=True, exist_ok=True)
    seconds, scores = 0.0, []
    for i in indices:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "grader", "grade", "--target", str(subs / f"student{i:03d}"), "--hidden",
             "--json", str(out / f"{i}.json")],
            cwd=REPO, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        seconds += time.perf_counter() - start
        scores.append(json.loads((out / f"{i}.json").read_text())["score"])
    return seconds, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sample", type=int, default=5, help="copies graded one process each")
    parser.add_argument("--kind", choices=("reference", "stubs", "mix"), default="mix")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure both this many times, one after the other, and give the medians (a shared"
                             " machine's speed drifts by 10%% or more from one minute to the next)")
    args = parser.parse_args()

    files = sample_files(args.kind)
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        subs = root / "submissions"
        write_copies(subs, files, args.copies)
        batch, single, ratios = [], [], []
        sample = min(args.sample, args.copies)
        for r in range(args.repeat):
            # half the single runs before the batch and half after it: the machine's drift weighs on both alike
            before, scores = single_runs(subs, root / "single", range(sample // 2))
            b_rate, rows = batch_rate(subs, root / "out", args.jobs)
            after, more = single_runs(subs, root / "single", range(sample // 2, sample))
            s_rate, scores = 60 * sample / (before + after), scores + more
            batch.append(b_rate)
            single.append(s_rate)
            ratios.append(b_rate / s_rate)
            totals = sorted({row["total"] for row in rows})
            statuses = sorted({row["status"] for row in rows})
            print(f"run {r + 1}: batch totals {totals} ({', '.join(statuses)}), single-run scores "
                  f"{sorted(set(scores))}; batch {b_rate:.1f}/min, single {s_rate:.1f}/min, ratio {b_rate / s_rate:.1f}x")

    b, s1 = statistics.median(batch), statistics.median(single)
    print(f"sample submission: {args.kind}; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
          + (f"; medians of {args.repeat} runs" if args.repeat > 1 else ""))
    print(f"batch  --jobs {args.jobs}: {args.copies} submissions, {b:.1f} submissions/min ({60 / b:.2f} s each)")
    print(f"single process each : {min(args.sample, args.copies)} submissions, {s1:.1f} submissions/min "
          f"({60 / s1:.2f} s each)")
    print(f"ratio: {statistics.median(ratios):.1f}x" + (f" (runs: {', '.join(f'{x:.1f}' for x in ratios)})"
                                                       if args.repeat > 1 else ""))


if __name__ == "__main__":
    main()
