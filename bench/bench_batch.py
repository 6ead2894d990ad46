"""How much faster is batch grading than one ``python -m grader grade`` per submission?

Grades ``--copies`` copies of one sample submission with ``python -m grader batch``-style grading
(``grader.batch.batch_grade``, ``--jobs`` at a time), then grades ``--sample`` of the same copies one by one,
each with a fresh ``python -m grader grade --target <copy> --hidden`` process (what a shell loop over the
submissions would do). Prints submissions per minute for both and the ratio. Not a test: nothing here passes
or fails.

The sample submission (``--kind``):
  reference  every exercise from solutions/
  stubs      every exercise from exercises/ (the untouched stubs)
  mix        a half-done student: the first half of the exercises solved, the rest still stubs (default)

Usage: python bench/bench_batch.py [--copies 50] [--jobs 2] [--sample 5] [--kind mix]
"""

from __future__ import annotations

import argparse
import json
import shutil
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sample", type=int, default=5, help="copies graded one process each")
    parser.add_argument("--kind", choices=("reference", "stubs", "mix"), default="mix")
    args = parser.parse_args()

    files = sample_files(args.kind)
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        subs = root / "submissions"
        for i in range(args.copies):
            folder = subs / f"student{i:03d}"
            folder.mkdir(parents=True)
            for name, data in files.items():
                (folder / name).write_bytes(data)

        start = time.perf_counter()
        rows = batch_grade(subs, root / "out", jobs=args.jobs, progress=None)
        batch_seconds = time.perf_counter() - start
        totals = sorted({r["total"] for r in rows})
        statuses = sorted({r["status"] for r in rows})

        single_seconds = []
        for i in range(min(args.sample, args.copies)):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "grader", "grade", "--target", str(subs / f"student{i:03d}"), "--hidden",
                 "--json", str(root / "single" / f"{i}.json")],
                cwd=REPO, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            single_seconds.append(time.perf_counter() - start)
        single_scores = sorted({json.loads((root / "single" / f"{i}.json").read_text())["score"]
                                for i in range(len(single_seconds))})
        shutil.rmtree(subs, ignore_errors=True)

    batch_rate = 60 * args.copies / batch_seconds
    single_rate = 60 * len(single_seconds) / sum(single_seconds)
    print(f"sample submission: {args.kind}; batch totals {totals} ({', '.join(statuses)}); "
          f"single-run scores {single_scores}")
    print(f"batch  --jobs {args.jobs}: {args.copies} submissions in {batch_seconds:.1f} s = "
          f"{batch_rate:.1f} submissions/min ({batch_seconds / args.copies:.2f} s each)")
    print(f"single process each : {len(single_seconds)} submissions in {sum(single_seconds):.1f} s = "
          f"{single_rate:.1f} submissions/min ({sum(single_seconds) / len(single_seconds):.2f} s each)")
    print(f"ratio: {batch_rate / single_rate:.1f}x")


if __name__ == "__main__":
    main()
