"""After a batch: which tests most students fail, which look suspiciously easy, and which submissions look alike.

``python -m grader analyze OUT [--submissions SUBMISSIONS]`` (``python -m grader batch`` runs it at its end) reads
the results documents this grader sealed in OUT (graded submissions only) and writes, beside ``grades.csv``:

* ``item_analysis.csv``: one row per test function (a parametrized test's cases together): its exercise, whether
  it is hidden, cases, points, how many students it was run for, the share of them who passed it entirely
  (``pass_rate``), the mean share of its cases passed, its discrimination (the correlation between passing it and
  the student's score on the rest of the exercise: near 0 or negative, the test does not follow skill), the share
  of the weakest submissions (under a quarter of the rest of the exercise) that pass it, and a ``flag``:
  ``most fail`` (pass rate at most 25%) or ``passes weak submissions`` (at least half of three or more weak
  submissions pass it: suspiciously easy, or it checks what a stub already does);
* ``score_histograms.csv``: per exercise, how many students got each score;
* ``item_analysis.png``: the score histograms on top, then per exercise a bar per test, hardest first, flagged
  bars annotated;
* ``similarity.html`` (and ``similarity.csv``), with SUBMISSIONS: a copydetect report over the exercise files
  taken from each submission (the same search rule as grading), comparing each exercise file only with the same
  file of other students, with the reference solutions and the stubs as boilerplate that never counts.
"""

from __future__ import annotations

import csv
import html
import json
import math
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from grader.batch.gradebook import INSTRUCTOR, Seals
from grader.untrusted import csv_row

ITEMS_CSV, HISTOGRAMS_CSV, PNG = "item_analysis.csv", "score_histograms.csv", "item_analysis.png"
SIMILARITY_HTML, SIMILARITY_CSV = "similarity.html", "similarity.csv"
HARD, WEAK, WEAK_PASS, WEAK_MIN = 0.25, 0.25, 0.5, 3


@dataclass
class Item:
    exercise: str
    test: str
    hidden: bool
    cases: int = 0
    points: float = 0.0
    outcomes: dict[str, float] = field(default_factory=dict)  # student -> share of cases passed
    rest: dict[str, float] = field(default_factory=dict)  # student -> share of the rest of the exercise

    def row(self) -> dict:
        n = len(self.outcomes)
        passed = [1.0 if v == 1.0 else 0.0 for v in self.outcomes.values()]
        rate = sum(passed) / n if n else 0.0
        weak = [p for s, p in zip(self.outcomes, passed) if self.rest.get(s, 0.0) < WEAK]
        weak_rate = sum(weak) / len(weak) if weak else None
        flag = ""
        if n and rate <= HARD:
            flag = "most fail"
        elif weak_rate is not None and len(weak) >= WEAK_MIN and weak_rate >= WEAK_PASS:
            flag = "passes weak submissions"
        return {"exercise": self.exercise, "test": self.test, "hidden": "yes" if self.hidden else "no",
                "cases": self.cases, "points": f"{self.points:g}", "students": n, "pass_rate": f"{rate:.2f}",
                "mean_case_rate": f"{sum(self.outcomes.values()) / n:.2f}" if n else "",
                "discrimination": _fmt(_correlation(passed, [self.rest.get(s, 0.0) for s in self.outcomes])),
                "weak_pass_rate": "" if weak_rate is None else f"{weak_rate:.2f}", "flag": flag}


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


def _correlation(xs: list[float], ys: list[float]) -> float | None:
    n = len(xs)
    if n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / math.sqrt(sxx * syy)


def graded_documents(out: Path) -> dict[str, dict]:
    """student -> results document, for every graded document in OUT that carries this grader's seal; the
    instructor's full record (hidden tests with their names) where the batch keeps one for the same submission."""
    seals, docs = Seals(out), {}
    full_records = INSTRUCTOR
    for student in sorted(seals.seals):
        if not seals.verify(student):
            continue
        try:
            doc = json.loads((out / student / "results.json").read_text())
        except (OSError, ValueError):
            continue
        if doc.get("lesson", {}).get("status") != "graded":
            continue
        full = out / full_records / f"{student}.json" if full_records else None
        try:
            record = json.loads(full.read_text()) if full is not None and full.is_file() else None
        except (OSError, ValueError):
            record = None
        same = record is not None and record["lesson"].get("submission_hash") == doc["lesson"].get("submission_hash")
        docs[student] = record if same else doc
    return docs


def items_of(docs: dict[str, dict]) -> list[Item]:
    """One Item per test function, with each student's outcome and score on the rest of the exercise."""
    items: dict[str, Item] = {}
    for student, doc in docs.items():
        tally: dict[str, list[float]] = {}  # test function -> [points passed, points, cases passed, cases]
        for test in doc["tests"]:
            extra = test.get("extra_data", {})
            if extra.get("kind") == "not_graded" or "::" not in extra.get("nodeid", ""):
                continue
            key = extra["nodeid"].split("[", 1)[0]
            item = items.setdefault(key, Item(extra["exercise"], key.split("::", 1)[1], bool(extra["hidden"])))
            t = tally.setdefault(key, [0.0, 0.0, 0, 0])
            passed = test["status"] == "passed"
            t[0] += test["max_score"] if passed else 0.0
            t[1] += test["max_score"]
            t[2] += passed
            t[3] += 1
        totals = {e["id"]: (e["score"], e["max_score"]) for e in doc["lesson"]["exercises"]}
        for key, (got, worth, passed, cases) in tally.items():
            item = items[key]
            item.cases, item.points = max(item.cases, cases), max(item.points, round(worth, 2))
            item.outcomes[student] = passed / cases
            score, top = totals.get(item.exercise, (0.0, 0.0))
            item.rest[student] = (score - got) / (top - worth) if top > worth else 0.0
    return sorted(items.values(), key=lambda i: (i.exercise, i.hidden, i.test))


def histograms(docs: dict[str, dict], points: dict) -> dict[str, dict[float, int]]:
    """exercise -> score -> number of students (graded documents; a missing file scores 0)."""
    out: dict[str, dict[float, int]] = {ex: {} for ex in points}
    for doc in docs.values():
        for e in doc["lesson"]["exercises"]:
            counts = out.setdefault(e["id"], {})
            counts[e["score"]] = counts.get(e["score"], 0) + 1
    return out


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        path.unlink(missing_ok=True)
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(csv_row(row) for row in rows)  # student ids are the submissions' text


def item_analysis(out: Path, points: dict) -> dict[str, Path]:
    """Write the item analysis CSVs and figure into OUT; returns what was written (nothing without a graded row)."""
    docs = graded_documents(out)
    if not docs:
        return {}
    rows = [item.row() for item in items_of(docs)]
    hist = histograms(docs, points)
    write_csv(out / ITEMS_CSV, rows)
    write_csv(out / HISTOGRAMS_CSV, [{"exercise": ex, "score": f"{score:g}", "students": n}
                                     for ex, counts in hist.items() for score, n in sorted(counts.items())])
    from grader.batch.figures import item_figure

    item_figure(out / PNG, rows, hist, points, students=len(docs))
    return {"items": out / ITEMS_CSV, "histograms": out / HISTOGRAMS_CSV, "figure": out / PNG}


# ----------------------------------------------------------------------------------------------------------
# Similarity
# ----------------------------------------------------------------------------------------------------------


def _safe(student: str, taken: set[str]) -> str:
    """A folder name for a student id in the report: letters, digits, '.', '-', '_' only (ids are untrusted)."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", student).strip("._") or "student"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(name)
    return name


def similarity(out: Path, submissions: Path, points: dict, boilerplate: list[Path], *,
               threshold: float = 0.33) -> dict[str, Path]:
    """copydetect over the exercise files of every submission; writes similarity.html and similarity.csv."""
    from grader.intake import collect as sandbox
    from grader.intake.entries import scan

    wanted = {ex: meta["name"] for ex, meta in points.items()}
    with tempfile.TemporaryDirectory(prefix="similarity-") as tmp:
        root, base = Path(tmp) / "submissions", Path(tmp) / "boilerplate"
        base.mkdir(parents=True)
        taken: set[str] = set()
        for student, entries in scan(submissions, out).items():
            sub = sandbox.collect(entries[0].path, wanted, parts=entries[0].parts, student=student)
            if len(entries) == 1 and sub.files and not sub.error:
                folder = root / _safe(student, taken)
                folder.mkdir(parents=True)
                for name, data in sub.files.items():
                    (folder / name).write_bytes(data)
        for i, folder in enumerate(boilerplate):
            for name in (f"{m}.py" for m in wanted.values()):
                if (folder / name).is_file():
                    (base / str(i)).mkdir(exist_ok=True)
                    shutil.copyfile(folder / name, base / str(i) / name)
        if not root.is_dir() or len(list(root.iterdir())) < 2:
            return {}
        return _copydetect(root, base, out, threshold)


# What copydetect's page takes from a CDN (Bootstrap's stylesheet and script), written here for the few classes
# and the one behaviour (a button that shows or hides the matched code) the page uses, so that it reads offline.
OFFLINE_STYLE = """<style>
  body { font-family: system-ui, sans-serif; margin: 0 1em; color: #212529; line-height: 1.4; }
  .container { margin: 0 auto; } .d-flex { display: flex; } .justify-content-center { justify-content: center; }
  .row { display: flex; gap: 1em; } .col { flex: 1 1 0; min-width: 0; }
  .table { border-collapse: collapse; width: 100%; margin: 1em 0; }
  .table td, .table th { border-top: 1px solid #dee2e6; padding: .3em .5em; vertical-align: top; }
  .table-striped tbody tr:nth-of-type(odd) { background: #f2f2f2; } .table-light { background: #f8f9fa; }
  .btn { display: inline-block; border: 1px solid #6c757d; border-radius: .25em; padding: .25em .75em;
         background: #6c757d; color: #fff; cursor: pointer; font: inherit; }
  .collapse { display: none; } .collapse.show { display: block; }
  .card { border: 1px solid #dee2e6; border-radius: .25em; padding: 1em; }
  pre { overflow-x: auto; background: #fff; }
</style>
"""
OFFLINE_SCRIPT = """<script id="show-matched-code">
  document.querySelectorAll("[data-bs-toggle=collapse]").forEach(function (button) {
    button.addEventListener("click", function () {
      var target = document.querySelector(button.getAttribute("data-bs-target"));
      if (target) { target.classList.toggle("show"); }
    });
  });
</script>
"""
_REMOTE = re.compile(r"<link[^>]*href=\"https?://[^>]*>\s*|<script[^>]*src=\"https?://[^>]*>\s*</script>\s*",
                     re.IGNORECASE)


def offline(page: str) -> str:
    """The report without anything fetched from the network: its remote stylesheet and script are replaced by
    ``OFFLINE_STYLE`` and ``OFFLINE_SCRIPT``, written into the page."""
    page = _REMOTE.sub("", page)
    page = page.replace("</head>", OFFLINE_STYLE + "</head>", 1)
    return page.replace("</body>", OFFLINE_SCRIPT + "</body>", 1)


def _copydetect(root: Path, base: Path, out: Path, threshold: float) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")  # copydetect draws its figures with pyplot: never a window
    from copydetect import CopyDetector

    boilerplate = [str(base)] if any(base.iterdir()) else []
    detector = CopyDetector(test_dirs=[str(root)], ref_dirs=[str(root)], boilerplate_dirs=boilerplate,
                            extensions=["py"], same_name_only=True, ignore_leaf=True, autoopen=False, silent=True,
                            display_t=threshold, out_file=str(out / SIMILARITY_HTML))
    detector.run()
    page = detector.generate_html_report(output_mode="return") or ""
    for prefix in (str(root) + "/", str(base) + "/", str(root), str(base)):  # show student/file, not temp paths
        page = page.replace(prefix, "").replace(html.escape(prefix), "")
    (out / SIMILARITY_HTML).write_text(offline(page), encoding="utf-8")
    rows = []
    for test_sim, ref_sim, a, b, *_rest, overlap in detector.get_copied_code_list():
        pa, pb = Path(a).relative_to(root), Path(b).relative_to(root)
        rows.append({"exercise_file": pa.name, "student_a": pa.parent.name, "student_b": pb.parent.name,
                     "similarity_a": f"{test_sim:.2f}", "similarity_b": f"{ref_sim:.2f}", "tokens": int(overlap)})
    write_csv(out / SIMILARITY_CSV, rows) if rows else (out / SIMILARITY_CSV).unlink(missing_ok=True)
    return {"similarity": out / SIMILARITY_HTML, **({"pairs": out / SIMILARITY_CSV} if rows else {})}


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------


def analyze(out: Path, submissions: Path | None = None, tests_dir: Path | None = None,
            boilerplate: list[Path] | None = None) -> dict[str, Path]:
    """The item analysis of OUT, and the similarity report when the submissions folder is given (``boilerplate``:
    folders of given code that never counts, by default the reference solutions and the stubs)."""
    from grader import results
    from grader.course import EXERCISES, SOLUTIONS, TESTS_DIR

    points = results.load_points(Path(tests_dir or TESTS_DIR))
    written = item_analysis(Path(out), points)
    if submissions is not None:
        given = boilerplate if boilerplate is not None else [SOLUTIONS, EXERCISES]
        written.update(similarity(Path(out), Path(submissions), points, [Path(f) for f in given if Path(f).is_dir()]))
    return written


def cmd_analyze(args) -> int:
    written = analyze(Path(args.out), Path(args.submissions) if args.submissions else None,
                      boilerplate=args.boilerplate)
    if not written:
        print(f"nothing to analyse: no graded submission in {args.out}")
        return 1
    print("\n".join(f"{what}: {path}" for what, path in written.items()))
    return 0


def add_analyze_parser(sub) -> None:
    import argparse

    a = sub.add_parser("analyze", help="item analysis (per test, per exercise) and a similarity report of a batch",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("out", metavar="OUT", help="the batch's output folder")
    a.add_argument("--submissions", metavar="FOLDER", help="the submissions folder: also write similarity.html")
    a.add_argument("--boilerplate", metavar="FOLDER", action="append",
                   help="a folder of given code the similarity report ignores, as <exercise>.py files (repeat it;"
                        " default: solutions/ and exercises/, the reference and the stubs)")
    a.set_defaults(func=cmd_analyze)
