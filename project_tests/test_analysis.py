"""Item analysis and the similarity report after a batch: which tests most students fail, which ones pass even
for the weakest submissions, and which submissions share code beyond the reference and the stubs."""

from __future__ import annotations

import csv
import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import FAST, GOOD, REPO, STUB, _real_lesson_ready, write_folder  # noqa: E402

from grader.batch import batch_grade  # noqa: E402
from grader.batch.analysis import analyze, item_analysis, similarity  # noqa: E402

POINTS = json.loads(json.dumps({"ex1": {"name": "ex1_alpha", "title": "Alpha", "visible": 2, "hidden": 1},
                                "ex2": {"name": "ex2_beta", "title": "Beta", "visible": 2, "hidden": 1}}))
ABS = {"ex1_alpha.py": "def add(a, b):\n    return abs(a) + abs(b)\n", "ex2_beta.py": GOOD["ex2_beta.py"]}
ZERO = {"ex1_alpha.py": "def add(a, b):\n    return 0\n", "ex2_beta.py": "def mul(a, b):\n    return 0\n"}
# a longer solution two students hand in with other names: what a similarity report is for
COPIED = textwrap.dedent('''
    def add(a, b):
        """Add two numbers the long way round, digit by digit."""
        total, carry, place = 0, 0, 1
        sign = -1 if (a < 0) != (b < 0) and abs(a) < abs(b) else 1
        if a < 0 and b < 0:
            return -add(-a, -b)
        if a < 0 or b < 0:
            return a + b
        while a or b or carry:
            digit = a % 10 + b % 10 + carry
            carry, digit = divmod(digit, 10)
            total += digit * place
            place *= 10
            a, b = a // 10, b // 10
        return sign * total
''')


def read(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_item_analysis_and_similarity_of_a_small_class(suite, tmp_path, private_tmp):
    subs, out = tmp_path / "subs", tmp_path / "out"
    for i in range(2):
        write_folder(subs / f"good{i}", GOOD)
    for i in range(4):  # pass the visible add tests, fail the hidden negative one
        write_folder(subs / f"abs{i}", ABS)
    for i in range(2):
        write_folder(subs / f"stub{i}", STUB)
    for i in range(2):  # mul returning 0 passes "mul by zero": a test the weakest submissions pass
        write_folder(subs / f"zero{i}", ZERO)
    write_folder(subs / "copier_a", {"ex1_alpha.py": COPIED, "ex2_beta.py": GOOD["ex2_beta.py"]})
    write_folder(subs / "copier_b", {"ex1_alpha.py": COPIED.replace("total", "result").replace("carry", "c"),
                                     "ex2_beta.py": GOOD["ex2_beta.py"]})
    write_folder(subs / "<script>", GOOD)  # an id that must not become markup in the report
    batch_grade(subs, out, tests_dir=suite, **FAST)

    written = analyze(out, subs, tests_dir=suite)  # the real reference and stubs are no boilerplate here
    assert set(written) == {"items", "histograms", "figure", "similarity", "pairs"}
    reference, stubs = write_folder(tmp_path / "reference", GOOD), write_folder(tmp_path / "stubs", STUB)
    assert set(similarity(out, subs, POINTS, [reference, stubs])) == {"similarity", "pairs"}
    items = {row["test"]: row for row in read(out / "item_analysis.csv")}
    assert set(items) == {"test_add_sums", "test_add_zero", "test_add_negative_secret", "test_mul_product",
                          "test_mul_one", "test_mul_zero_secret"}
    negative = items["test_add_negative_secret"]
    assert (negative["hidden"], negative["students"], negative["flag"]) == ("yes", "13", "")
    assert float(negative["pass_rate"]) == pytest.approx(5 / 13, abs=0.01)  # good0, good1, the copiers, <script>
    assert items["test_mul_zero_secret"]["flag"] == "passes weak submissions"
    assert items["test_add_sums"]["flag"] == "" and float(items["test_add_sums"]["discrimination"]) > 0
    hist = {(r["exercise"], r["score"]): int(r["students"]) for r in read(out / "score_histograms.csv")}
    assert hist[("ex1", "3")] == 5 and hist[("ex1", "2")] == 4 and hist[("ex1", "0")] == 4
    png = (out / "item_analysis.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000

    page = (out / "similarity.html").read_text()
    pairs = {(p["exercise_file"], *sorted((p["student_a"], p["student_b"]))) for p in read(out / "similarity.csv")}
    assert ("ex1_alpha.py", "copier_a", "copier_b") in pairs
    # identical hand-ins are alike too; the reference and the stubs never make two students alike
    groups = ({"copier_a", "copier_b"}, {f"abs{i}" for i in range(4)}, {"zero0", "zero1"})
    assert all(any({a, b} <= group for group in groups) for _, a, b in pairs), pairs
    assert "copier_a/ex1_alpha.py" in page and "similarity-" not in page and "<script>" not in page
    # it reads offline: no stylesheet or script from a CDN, its own style and show/hide button written in
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page) and "cdn." not in page.lower()
    assert ".collapse.show" in page and 'data-bs-toggle="collapse"' in page and "show-matched-code" in page


@pytest.mark.slow
def test_a_class_that_all_fails_one_test_flags_it(suite, tmp_path, private_tmp):
    subs, out = tmp_path / "subs", tmp_path / "out"
    for i in range(4):
        write_folder(subs / f"s{i}", ABS)
    batch_grade(subs, out, tests_dir=suite, **FAST)
    item_analysis(out, POINTS)
    items = {row["test"]: row for row in read(out / "item_analysis.csv")}
    assert (items["test_add_negative_secret"]["pass_rate"], items["test_add_negative_secret"]["flag"]) == \
        ("0.00", "most fail")
    assert "pairs" in similarity(out, subs, POINTS, [])  # four identical hand-ins are alike...
    given = write_folder(tmp_path / "given", ABS)  # ...unless that code is boilerplate
    assert similarity(out, subs, POINTS, [given]) == {"similarity": out / "similarity.html"}
    assert not (out / "similarity.csv").exists()


def test_nothing_graded_writes_nothing(tmp_path):
    (tmp_path / "out").mkdir()
    assert item_analysis(tmp_path / "out", POINTS) == {}
    assert not (tmp_path / "out" / "item_analysis.png").exists()


@pytest.mark.slow
@pytest.mark.skipif(_real_lesson_ready() is not None, reason=f"real exercises not ready: {_real_lesson_ready()}")
def test_a_class_of_the_projects_own_mutants(tmp_path, private_tmp):
    from mutant_class import build

    points = json.loads((REPO / "tests" / "points.json").read_text())
    subs, out = tmp_path / "subs", tmp_path / "out"
    build(subs, [m["name"] for m in points.values()], students=6)
    batch_grade(subs, out, jobs=2, progress=None, test_timeout=30.0)
    written = analyze(out, subs)
    assert {"items", "histograms", "figure", "similarity", "pairs"} <= set(written)
    rows = read(out / "item_analysis.csv")
    assert {r["exercise"] for r in rows} == set(points) and all(int(r["students"]) >= 6 for r in rows)
    pairs = read(out / "similarity.csv")
    assert any({p["student_a"], p["student_b"]} == {"copier_a", "copier_b"} and
               p["exercise_file"] == "ex2_topk_attention.py" for p in pairs), pairs
    # the reference is boilerplate: students who handed in the reference are not "similar" to each other
    assert all(p["exercise_file"] == "ex2_topk_attention.py" for p in pairs), pairs
