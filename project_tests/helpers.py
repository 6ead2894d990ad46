"""Helpers shared by the project's batch tests (test_batch, test_batch_lifecycle, test_analysis, test_dask,
test_lms, test_attacks): the small fake suite they grade against, its good and stub submissions, ways to write
submissions and read what a batch left, and the real lesson's reference, stubs and mutants as a batch.

They live here rather than in a test module so that test modules do not import each other: each import tied one
test file to another's layout (test_dask used test_batch's suite, test_batch used test_dask's lesson folders).
The one exception is ``lesson_submissions``, which reads test_ex2_variants.py's table of ex2 mutants, when called.
The fixtures that go with these (``suite``, ``private_tmp``) are in conftest.py."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import textwrap
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ATTACKS_DIR = Path(__file__).resolve().parent / "attacks"

# Two exercises, 3 points each, 1 of them hidden: small enough that a batch of it takes seconds.
POINTS = {
    "ex1": {"name": "ex1_alpha", "title": "Alpha", "visible": 2, "hidden": 1},
    "ex2": {"name": "ex2_beta", "title": "Beta", "visible": 2, "hidden": 1},
}
SUITE = {
    "conftest.py": '''
        import pytest

        @pytest.fixture(autouse=True)
        def _fresh():
            yield
    ''',
    "test_ex1_alpha.py": '''
        import pytest

        @pytest.mark.points(1)
        def test_add_sums(student):
            """add(a, b) returns a + b."""
            got = student("ex1_alpha").add(1, 2)
            assert got == 3, f"expected 3, got {got}"

        @pytest.mark.points(1)
        def test_add_zero(student):
            """add(a, 0) returns a."""
            got = student("ex1_alpha").add(5, 0)
            assert got == 5, f"expected 5, got {got}"
    ''',
    "hidden/test_ex1_alpha_hidden.py": '''
        import pytest

        @pytest.mark.points(1)
        def test_add_negative_secret(student):
            """SECRET HINT add works for negatives."""
            assert student("ex1_alpha").add(-1, -2) == -3, "SECRET REASON expected -3"
    ''',
    "test_ex2_beta.py": '''
        import pytest

        @pytest.mark.points(1)
        def test_mul_product(student):
            """mul(a, b) returns a * b."""
            got = student("ex2_beta").mul(2, 3)
            assert got == 6, f"expected 6, got {got}"

        @pytest.mark.points(1)
        def test_mul_one(student):
            """mul(a, 1) returns a."""
            got = student("ex2_beta").mul(7, 1)
            assert got == 7, f"expected 7, got {got}"
    ''',
    "hidden/test_ex2_beta_hidden.py": '''
        import pytest

        @pytest.mark.points(1)
        def test_mul_zero_secret(student):
            """SECRET HINT mul by zero."""
            assert student("ex2_beta").mul(3, 0) == 0, "SECRET REASON expected 0"
    ''',
}
GOOD = {"ex1_alpha.py": "def add(a, b):\n    return a + b\n", "ex2_beta.py": "def mul(a, b):\n    return a * b\n"}
STUB = {
    "ex1_alpha.py": 'def add(a, b):\n    raise NotImplementedError("ex1: add the numbers")\n',
    "ex2_beta.py": 'def mul(a, b):\n    raise NotImplementedError("ex2: multiply the numbers")\n',
}
FAST = dict(jobs=2, test_timeout=2.0, memory_mb=512, timeout_per_submission=60.0, progress=None)


def write_suite(root: Path) -> Path:
    """The fake suite (POINTS, SUITE) written into ``root``, laid out like tests/."""
    (root / "hidden").mkdir(parents=True)
    (root / "points.json").write_text(json.dumps(POINTS))
    for name, text in SUITE.items():
        (root / name).write_text(textwrap.dedent(text))
    return root


def write_folder(folder: Path, files: dict[str, str | bytes]) -> Path:
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else textwrap.dedent(data).encode())
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_zip(path: Path, files: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def read_csv(out: Path) -> dict[str, dict]:
    with open(out / "grades.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def processes_named(prefix: str) -> list[int]:
    """Processes whose comm name (PR_SET_NAME) starts with ``prefix``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if Path(f"/proc/{name}/comm").read_text().startswith(prefix) and alive(int(name)):
                    found.append(int(name))
            except OSError:
                continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _real_lesson_ready() -> str | None:
    """None when the real lesson (solutions, exercises and tests of every exercise) is written, else what is not."""
    points = json.loads((REPO / "tests" / "points.json").read_text())
    for meta in points.values():
        name = meta["name"]
        for folder in ("solutions", "exercises"):
            if not (REPO / folder / f"{name}.py").is_file():
                return f"{folder}/{name}.py is not written yet"
        if not list((REPO / "tests").glob(f"test_{name}.py")):
            return f"tests/test_{name}.py is not written yet"
    return None


# ---------------------------------------------------------------------------------- the real lesson in a batch
def build_submission(folder: Path, attack: str | None, *, base: Path = REPO / "exercises") -> Path:
    """The untouched stubs (or the files of ``base``), with the attack's one exercise file laid over its stub."""
    folder.mkdir(parents=True)
    for stub in sorted(base.glob("ex*_*.py")):
        shutil.copy2(stub, folder / stub.name)
    if attack:
        for path in (ATTACKS_DIR / attack).glob("ex*_*.py"):
            shutil.copy2(path, folder / path.name)
    return folder


def lesson_submissions(subs: Path) -> None:
    """The reference, the stubs, two ex2 mutants and a submission that reads the tests, as a batch's folders."""
    # the mutants are test_ex2_variants.py's own table (imported here, when asked for, not copied): one list of them
    from test_ex2_variants import MODULE, MUTANTS
    from variants import mutate

    points = json.loads((REPO / "tests" / "points.json").read_text())
    write_folder(subs / "reference", {f"exercises/{m['name']}.py": (REPO / "solutions" / f"{m['name']}.py").read_bytes()
                                      for m in points.values()})
    build_submission(subs / "stubs", None)
    for name in sorted(MUTANTS)[:2]:  # the stubs, with a plausible wrong ex2
        folder = build_submission(subs / f"mutant-{name}", None)
        (folder / f"{MODULE}.py").write_text(mutate(MODULE, *MUTANTS[name][0]))
    build_submission(subs / "redteam", "read_hidden")  # tries to copy the hidden tests out


def _verdicts(doc: dict) -> list[dict]:
    """Every test's entry but its duration and CPU time: name, score, status, message, captured output, and the judge's
    traceback with the suite's folder (the worker's copy, or the repository) and object addresses left out."""

    def same(key, value):
        if key == "details":
            value = re.sub(r'File "[^"]*/tests/', 'File "tests/', re.sub(r"0x[0-9a-f]+", "0x?", value))
        return value

    volatile = ("duration", "cpu")
    return [{**t, "extra_data": {k: same(k, v) for k, v in t.get("extra_data", {}).items() if k not in volatile}}
            for t in doc["tests"]]


def student_visible(results: dict) -> dict:
    """What Gradescope shows a student of a results.json: the top-level output and every box not "hidden" (its
    documented visibility: "hidden: test case will never be shown to students"; stdout only with
    stdout_visibility other than hidden). extra_data is kept in as well, though Gradescope only stores it."""
    return {"output": results["output"], "extra_data": results.get("extra_data"),
            "tests": [t for t in results["tests"] if t.get("visibility", results.get("visibility")) != "hidden"]}
