"""Benchmark: nbgrader autograde vs the batch grader, on the same three submissions, in the same run.

    python bench/bench_nbgrader.py [--keep DIR]

Not a test: it prints wall-clock times. It builds the nbgrader course in a temporary folder, runs
``nbgrader generate_assignment``, hands in three notebooks (the reference, the untouched release, a partial
answer), then times for each submission:

* ``nbgrader autograde lesson1 --student S`` (a new nbgrader process and a new kernel per submission);
* ``python -m grader grade --target DIR --hidden`` on the same code written as ``.py`` files (a new process);
* ``grader.grading.grade(DIR, hidden=True)`` in this process (torch already imported);
* ``grader.batch.batch_grade`` with ``--jobs 2`` over ``--copies`` copies of each of the three (what an
  instructor's batch pays per submission: the wall time of the whole batch divided by its submissions).

Autograde's own judge run (``JudgeBeforeKernel``: the notebook's code graded with the hidden tests before the
kernel starts) is read from autograde's log, which says what it took, and shown as a share of autograde's time;
the kernel's launcher (``grader.platforms.nbgrader.kernel``: a new user and mount namespace) is timed against starting the
same trivial command directly.

Then it times ``nbgrader export --exporter grader.platforms.nbgrader.exporter.ExerciseScoresExport``, which grades every
submitted notebook's code again with the judge (the exporter logs the time of each submission), and prints the
exported score (the judge's) next to the kernel's and the batch grader's. Needs nbgrader (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

from grader.batch import batch_grade  # noqa: E402
from grader.grading import grade  # noqa: E402
from grader.judge.session import preload  # noqa: E402
from grader.platforms.nbgrader.course_folder import build_course, nbgrader, write_samples  # noqa: E402
from grader.platforms.nbgrader.notebook import ASSIGNMENT, EXERCISE_CSV  # noqa: E402
from grader.platforms.nbgrader.scores import JUDGE_LOG  # noqa: E402
from grader.platforms.nbgrader.submissions import extract_submission  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def run(course: Path, *args: str, env: dict) -> str:
    process = nbgrader(course, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"nbgrader {' '.join(args)} failed:\n{out[-3000:]}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", help="build the course here and keep it (default: a temporary folder)")
    parser.add_argument("--copies", type=int, default=10, help="copies of each submission in the batch (default 10)")
    args = parser.parse_args()
    try:
        import nbgrader  # noqa: F401
    except ImportError:
        raise SystemExit("nbgrader is not installed: pip install -e '.[dev]'")

    with tempfile.TemporaryDirectory(prefix="bench-nbgrader-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        env = dict(os.environ)
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
            env[name] = str(root / name.lower())
        course = build_course(root / "course")
        seconds, _ = timed(lambda: run(course, "generate_assignment", ASSIGNMENT, "--force", env=env))
        print(f"nbgrader generate_assignment: {seconds:.1f} s")
        submitted = write_samples(course)

        preload()  # torch and pytest imported once, before the warm timings
        rows = []
        for student, notebook in submitted.items():
            folder = extract_submission(notebook, root / "py" / student)[0].parent
            t_nb, log = timed(lambda: run(course, "autograde", ASSIGNMENT, "--student", student, "--force", env=env))
            judge_before = [float(t) for t in re.findall(rf"{JUDGE_LOG}: judged the notebook's code in ([\d.]+) s", log)]
            if len(judge_before) != 1:
                raise SystemExit(f"autograde of {student}: expected one judge run in its log, found {judge_before}")
            out = root / "py" / f"{student}.json"
            t_cli, _ = timed(lambda: subprocess.run(
                [sys.executable, "-m", "grader", "grade", "--target", str(folder), "--hidden", "--json", str(out)],
                check=True, capture_output=True))
            t_warm, doc = timed(lambda: grade(folder, hidden=True))
            rows.append((student, t_nb, t_cli, t_warm, doc["score"], judge_before[0]))

        copies = root / "batch"
        for student, notebook in submitted.items():
            for i in range(args.copies):
                extract_submission(notebook, copies / "subs" / f"{student}-{i:03d}")
        n_batch = len(list((copies / "subs").iterdir()))
        t_batch, _ = timed(lambda: batch_grade(copies / "subs", copies / "out", jobs=2, progress=None))
        per_batch = t_batch / n_batch

        t_export, log = timed(lambda: run(
            course, "export", "--exporter", "grader.platforms.nbgrader.exporter.ExerciseScoresExport", env=env))
        judged = dict(re.findall(r"Judged \S+?/(\S+) in ([\d.]+) s", log))  # the exporter's own per-submission time
        with open(course / EXERCISE_CSV, newline="") as f:
            exported = {row["student_id"]: row for row in csv.DictReader(f)}

    t_direct, t_launcher = time_launcher()

    print()
    print(f"{'submission':<12} {'nbgrader autograde':>19} {'its judge run':>14} {'python -m grader':>17}"
          f" {'grade() warm':>13} {'export judge':>13} {'score kernel':>13} {'score export':>13} {'score batch':>12}")
    for student, t_nb, t_cli, t_warm, score, t_before in rows:
        row = exported[student]
        print(f"{student:<12} {t_nb:>17.1f} s {t_before:>12.1f} s {t_cli:>15.1f} s {t_warm:>11.1f} s"
              f" {float(judged[student]):>11.1f} s {row['kernel_score']:>13} {row['score']:>13} {score:>12g}")
    nb, cli, warm, before = (statistics.mean(r[i] for r in rows) for i in (1, 2, 3, 5))
    judge = statistics.mean(float(t) for t in judged.values())
    print(f"{'mean':<12} {nb:>17.1f} s {before:>12.1f} s {cli:>15.1f} s {warm:>11.1f} s {judge:>11.1f} s")
    print(f"batch --jobs 2: {n_batch} submissions ({args.copies} copies of each) in {t_batch:.1f} s = "
          f"{per_batch:.2f} s per submission")
    print(f"\nnbgrader autograde costs {nb / cli:.1f}x a python -m grader run, {nb / warm:.1f}x a warm grade() and "
          f"{nb / per_batch:.1f}x the batch's time per submission. Of autograde's time, {before:.1f} s "
          f"({100 * before / nb:.0f}%) is its own judge run (JudgeBeforeKernel, torch imported in that process "
          f"included), which lets the kernel run with no hidden test in reach. The kernel's launcher costs "
          f"{1000 * (t_launcher - t_direct):.0f} ms per kernel ({1000 * t_launcher:.0f} ms vs {1000 * t_direct:.0f} ms "
          f"for the same command started directly, medians). The export took {t_export:.1f} s for {len(rows)} "
          "submissions (one process, torch imported once): the judge's grade of each submission comes on top of "
          "autograde.")
    print(json.dumps({"autograde_s": round(nb, 2), "autograde_judge_before_kernel_s": round(before, 2),
                      "autograde_judge_share": round(before / nb, 3),
                      "kernel_launcher_overhead_ms": round(1000 * (t_launcher - t_direct), 1),
                      "python_m_grader_s": round(cli, 2), "warm_grade_s": round(warm, 2),
                      "batch_per_submission_s": round(per_batch, 3),
                      "export_judge_s": round(judge, 2), "export_total_s": round(t_export, 2)}))


def time_launcher(repeats: int = 7) -> tuple[float, float]:
    """Median seconds to run a trivial command directly, and through grader.platforms.nbgrader.kernel's launcher."""
    trivial = [sys.executable, "-c", "pass"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    launched = [sys.executable, "-m", "grader.platforms.nbgrader.kernel", "--", *trivial]
    direct = [timed(lambda: subprocess.run(trivial, check=True, env=env))[0] for _ in range(repeats)]
    through = [timed(lambda: subprocess.run(launched, check=True, env=env))[0] for _ in range(repeats)]
    return statistics.median(direct), statistics.median(through)

if __name__ == "__main__":
    main()
