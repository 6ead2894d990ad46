"""Partial credit survives (issue 23): realistic partial submissions keep the points of the properties their code
truly has. ``partial_credit.toml`` is the table of their expected verdicts (the tests each one loses, its score);
this grades every entry in one judge session and holds the grader to it."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from variants import half_done, mutate  # noqa: E402

from grader.instructor.placeholders import grade_submissions  # noqa: E402

TABLE = Path(__file__).parent / "partial_credit.toml"
ENTRIES = tomllib.loads(TABLE.read_text(encoding="utf-8"))["submission"]


def source_of(entry: dict) -> str:
    if "replace" in entry:
        return mutate(entry["module"], *[tuple(pair) for pair in entry["replace"]])
    return half_done(entry["module"], entry["stub"])


def test_table_covers_every_exercise_and_the_named_mistakes():
    names = {entry["name"] for entry in ENTRIES}
    assert {"ex2-wrong-scale", "ex3-wrong-ffn-bias-count"} <= names
    assert {entry["module"].split("_", 1)[0] for entry in ENTRIES} == {"ex1", "ex2", "ex3", "ex4"}
    for entry in ENTRIES:
        assert 0 < entry["score"] < 25 and entry["lost"], f"{entry['name']}: a partial submission keeps some points"


@pytest.mark.slow
def test_partial_submissions_keep_their_verdicts():
    docs = grade_submissions({entry["name"]: {f"{entry['module']}.py": source_of(entry)} for entry in ENTRIES})
    wrong = []
    for entry in ENTRIES:
        doc = docs[entry["name"]]
        lost = sorted(t["extra_data"]["nodeid"].split("::")[-1] for t in doc["tests"] if t["status"] != "passed")
        score = doc["lesson"]["exercises"][0]["score"]
        if lost != sorted(entry["lost"]) or score != pytest.approx(entry["score"], abs=0.01):
            gained = sorted(set(entry["lost"]) - set(lost))
            newly = sorted(set(lost) - set(entry["lost"]))
            wrong.append(f"{entry['name']}: score {score:g} (table {entry['score']:g}); now lost {newly}; "
                         f"now passed {gained}")
    assert not wrong, "\n".join(wrong)
