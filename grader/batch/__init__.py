"""Grade a folder of submissions into ``OUT/grades.csv``, one row per student, whatever the submissions do.

``python -m grader batch SUBMISSIONS --out OUT [--jobs N | --scheduler ADDRESS] [--force] [--timeout-per-submission S]
[--memory-mb M]`` (``--scheduler``: grade on a Dask cluster, grader.batch.dask_pool)

* ``SUBMISSIONS`` holds one entry per student: a folder or a ``.zip`` / ``.tar.gz`` / ``.tgz``. The student id is
  the entry name without its archive suffix. Names starting with ``.`` are ignored; any other regular file
  (``README.txt``, a ``.rar``) gets no row: it is listed with its reason in ``OUT/skipped.txt`` and a warning
  is printed. When two entries give the
  same id (``alice/`` and ``alice.zip``), neither is graded: the one row for ``alice`` is ungradable and names
  both entries, so the instructor decides which one counts.
* Only the exercise files are taken (``grader.intake.collect`` has the search rule and the archive checks). Each
  submission's files are written to a fresh folder ``OUT/.sandbox/<student>/`` (removed afterwards).
* This process preloads torch once and starts one judge session (``grader.judge.session.JudgeServer``) that collects
  the visible and hidden suites once; the session forks a judge per submission (``--jobs`` at a time), and the
  judge runs the student code only in its confined worker (``grader.judge``). The judge writes an event stream;
  this process, the only one that writes OUT, builds ``OUT/<student>/results.json`` and ``feedback.md`` from it.
  A submission that runs past ``--timeout-per-submission`` is stopped ("timed out"); its worker, and whatever
  the worker started (a PID namespace), go with it.
* Each row is appended to ``OUT/grades.csv`` as soon as its submission is done, so an interrupted run loses
  nothing already graded; at the end the file is rewritten sorted by student id.
* A re-run skips a submission whose taken files, tests, grading code (``llm_basics/**/*.py``,
  ``grader/**/*.py``, ``*.ini``, ``*.json``) and limits hash to the ``submission_hash`` stored in its
  ``results.json``, if that document carries this grader's seal (``Seals``) and was not cut short by the
  wall-clock backstop (at most ``--backstop-regrades`` times, default 2: then the test is kept as a timeout);
  ``--force`` grades everything again, and a stopped ``--force`` run's leftovers are graded by the next run
  (grader.batch.reruns).
* A graded row's reason lists, per exercise, why it was not graded (missing, ambiguous...), and the one reason
  shared by all its tests when they all fail the same way (a SyntaxError, an import error), cut to one line.
"""

from grader.batch.cli import add_analyze_parser, add_batch_parser, add_export_parser, cmd_batch
from grader.batch.gradebook import NOT_STARTED, row_from_doc
from grader.batch.run import batch_grade
from grader.batch.scheduler import Options
from grader.intake.entries import scan

__all__ = ["NOT_STARTED", "Options", "add_analyze_parser", "add_batch_parser", "add_export_parser", "batch_grade", "cmd_batch",
           "row_from_doc", "scan"]
