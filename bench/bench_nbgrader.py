"""Benchmark: nbgrader autograde vs the batch grader, on the same three submissions, in the same run.

    python bench/bench_nbgrader.py [--keep DIR]

Not a test: it prints wall-clock times. It builds the nbgrader course in a temporary folder, runs
``nbgrader generate_assignment``, hands in three notebooks (the reference, the untouched release, a partial
answer), then times for each submission:

* ``nbgrader autograde lesson1 --student S`` (a new nbgrader process and a new kernel per submission);
* ``python -m grader grade --target DIR --hidden`` on the same code written as ``.py`` files (a new process);
* ``grader.grading.grade(DIR, hidden=True)`` in this process (torch already imported: what a batch run pays
  per submission once it is warm).

It also checks, in passing, that both ways give the same score. Needs the ``nbgrader`` extra.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

from grader.grading import grade  # noqa: E402
from grader.runner import preload  # noqa: E402
from grader.nbgrader_export import (  # noqa: E402
    ASSIGNMENT,
    EXERCISE_CSV,
    build_course,
    extract_submission,
    nbgrader,
    write_samples,
)


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def run(course: Path, *args: str, env: dict) -> None:
    process = nbgrader(course, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"nbgrader {' '.join(args)} failed:\n{out[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", help="build the course here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    try:
        import nbgrader  # noqa: F401
    except ImportError:
        raise SystemExit("nbgrader is not installed: pip install -e '.[nbgrader]' (make nbgrader does it)")

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
            t_nb, _ = timed(lambda: run(course, "autograde", ASSIGNMENT, "--student", student, "--force", env=env))
            out = root / "py" / f"{student}.json"
            t_cli, _ = timed(lambda: subprocess.run(
                [sys.executable, "-m", "grader", "grade", "--target", str(folder), "--hidden", "--json", str(out)],
                check=True, capture_output=True))
            t_warm, doc = timed(lambda: grade(folder, hidden=True))
            rows.append((student, t_nb, t_cli, t_warm, doc["score"]))

        run(course, "export", "--exporter", "grader.nbgrader_export.ExerciseScoresExport", env=env)
        exported = {}
        for line in (course / EXERCISE_CSV).read_text().splitlines()[1:]:
            fields = line.split(",")
            exported[fields[1]] = float(fields[-2])

    print()
    print(f"{'submission':<12} {'nbgrader autograde':>19} {'python -m grader':>17} {'grade() warm':>13}"
          f" {'score nbgrader':>15} {'score batch':>12}")
    for student, t_nb, t_cli, t_warm, score in rows:
        print(f"{student:<12} {t_nb:>17.1f} s {t_cli:>15.1f} s {t_warm:>11.1f} s {exported[student]:>15g} {score:>12g}")
    nb, cli, warm = (statistics.mean(r[i] for r in rows) for i in (1, 2, 3))
    print(f"{'mean':<12} {nb:>17.1f} s {cli:>15.1f} s {warm:>11.1f} s")
    print(f"\nnbgrader autograde costs {nb / cli:.1f}x a python -m grader run and {nb / warm:.1f}x a warm batch "
          "grade per submission.")
    print(json.dumps({"autograde_s": round(nb, 2), "python_m_grader_s": round(cli, 2), "warm_grade_s": round(warm, 2)}))


if __name__ == "__main__":
    main()
