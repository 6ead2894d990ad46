"""``nbgrader export --exporter grader.platforms.nbgrader.exporter.ExerciseScoresExport``: the grades file.

It writes ``exercise_grades.csv`` (a column per exercise): it takes the ``%%exercise`` cells of each SUBMITTED
notebook and grades that code with ``grader.grading.grade`` (the judge, hidden tests included), the one grading
path of ``python -m grader``. nbgrader's kernel total is kept beside it (``kernel_score``), and ``review`` says
when the two disagree, so an instructor can look at that notebook.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

from grader import results
from grader.platforms.nbgrader.notebook import EXERCISE_CSV, TESTS_DIR
from grader.platforms.nbgrader.scores import exercise_scores, judge_notebooks, score_row
from grader.untrusted import csv_row


def _make_exporter():
    from nbgrader.api import MissingEntry
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.plugins import ExportPlugin

    class ExerciseScoresExport(ExportPlugin):
        """A row per student and assignment, the judge's score per exercise (``--to``, default exercise_grades.csv)."""

        def export(self, gradebook) -> None:
            # grade() imports torch (and warms the FLOP counter) once in this process, not once per submission.
            # nbgrader's ExportApp makes the plugin with itself as parent, and it holds the course folder
            # (``--CourseDirectory.root``, the cwd by default) and its layout
            coursedir = getattr(self.parent, "coursedir", None) or CourseDirectory(config=self.config)
            rows = []
            for assignment in gradebook.assignments:
                if self.assignment and assignment.name not in map(str, self.assignment):
                    continue
                for student in gradebook.students:
                    if self.student and student.id not in map(str, self.student):
                        continue
                    try:
                        submission = gradebook.find_submission(assignment.name, student.id)
                    except MissingEntry:
                        continue
                    folder = Path(coursedir.format_path(coursedir.submitted_directory, student.id, assignment.name))
                    start = time.perf_counter()
                    judged = judge_notebooks([folder / f"{nb.name}.ipynb" for nb in submission.notebooks])
                    row = score_row(assignment.name, student.id, judged,
                                    exercise_scores(gradebook, assignment.name, student.id))
                    self.log.info("Judged %s/%s in %.1f s: %s / %s (kernel %s) %s", assignment.name, student.id,
                                  time.perf_counter() - start, row.get("score", "-"), row["max_score"],
                                  row["kernel_score"], row["review"])
                    rows.append(row)
            exercises = list(results.load_points(TESTS_DIR))  # every column, even when no row could be graded
            columns = ["assignment", "student_id", *exercises, "score", "max_score", "kernel_score", "review"]
            dest = self.to or EXERCISE_CSV
            self.log.info("Exporting the judge's per-exercise grades to %s", dest)
            with open(dest, "w", newline="") as f:  # csv: a review note or a student id may hold a comma
                writer = csv.DictWriter(f, columns, restval="")
                writer.writeheader()
                writer.writerows(csv_row(row) for row in rows)  # a review note quotes the submission

    return ExerciseScoresExport


def __getattr__(name: str):
    # nbgrader finds the exporter by its dotted name; the class is made on first use, so that importing this
    # module (the tests, a bench) never imports nbgrader
    if name == "ExerciseScoresExport":
        cls = _make_exporter()
        globals()[name] = cls
        return cls
    raise AttributeError(name)
