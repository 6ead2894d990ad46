"""What a batch re-run reuses, and what it still owes: earlier results, backstop re-grades, a stopped ``--force``.

* An earlier ``OUT/<student>/results.json`` is reused when it carries this grader's seal, was made from the same
  submission hash (grader.intake.digest) and is final: not an ``error``, not marked for re-grading.
* A result cut short by the wall-clock backstop (code that sleeps or blocks, or a stalled machine) is marked for
  re-grading, but at most ``backstop_regrades`` times (default 2) for the same submission: the grading after that
  keeps the test as a timeout, says so in its reason, and is final. Code that sleeps past the backstop every time
  is then not graded again on every run.
* A ``--force`` run that is stopped leaves submissions it did not re-grade; they keep their earlier (final) rows,
  so a plain re-run would skip them as unchanged. Their names are kept in ``OUT/.force-pending.json``, and the
  next run grades them as if forced: "run the batch again" is then true.
"""

from __future__ import annotations

import json
from pathlib import Path

DEFAULT_BACKSTOP_REGRADES = 2
FORCE_PENDING = ".force-pending.json"


class Reruns:
    def __init__(self, out: Path, seals, *, force: bool = False,
                 backstop_regrades: int = DEFAULT_BACKSTOP_REGRADES) -> None:
        self.out, self.seals, self.force, self.backstop_regrades = out, seals, force, backstop_regrades
        try:
            owed = json.loads((out / FORCE_PENDING).read_text())
        except (OSError, ValueError):
            owed = []
        self.owed = {s for s in owed if type(s) is str} if type(owed) is list else set()

    def earlier(self, student: str) -> dict | None:
        """The earlier results document of ``student``, if this grader wrote it (its seal)."""
        previous = self.out / student / "results.json"
        if not previous.is_file() or not self.seals.verify(student):
            return None
        try:
            old = json.loads(previous.read_text())
        except (ValueError, OSError):
            return None
        return old if type(old) is dict and type(old.get("lesson")) is dict else None

    def unchanged(self, student: str, digest: str) -> dict | None:
        """The earlier document, for the same submission and final, unless this run (or a stopped forced run
        before it) grades it again regardless."""
        if self.force or student in self.owed:
            return None
        old = self.earlier(student)
        if old is None:
            return None
        lesson = old["lesson"]
        final = lesson.get("status") != "error" and not lesson.get("needs_regrade")
        return old if lesson.get("submission_hash") == digest and final else None

    def backstop_gradings(self, student: str, digest: str) -> int:
        """How many gradings in a row of this same submission ended at the wall-clock backstop so far."""
        old = self.earlier(student)
        if old is None or old["lesson"].get("submission_hash") != digest or not old["lesson"].get("needs_regrade"):
            return 0
        count = old["lesson"].get("backstop_gradings", 1)
        return count if type(count) is int and count > 0 else 1

    def settle(self, doc: dict, earlier: int) -> dict:
        """Count this grading if it ended at the backstop; past ``backstop_regrades`` re-grades it is final, its
        backstop tests kept as timeouts with that reason."""
        lesson = doc["lesson"]
        if not lesson.get("needs_regrade"):
            return doc
        lesson["backstop_gradings"] = gradings = earlier + 1
        if gradings <= self.backstop_regrades:
            return doc
        lesson["needs_regrade"] = False
        lesson["backstop_final"] = True
        note = (f" (stopped at the wall-clock backstop in {gradings} gradings of this submission in a row: kept as "
                f"a timeout, not graded again)")
        for test in doc["tests"]:
            extra = test.get("extra_data", {})
            if extra.get("backstop"):
                reason = extra.get("reason", "")
                extra["reason"] = reason + note
                test["output"] = test.get("output", "").replace(reason, extra["reason"]) if reason else note.strip()
        return doc

    def remember(self, left: list[str]) -> None:
        """After a run: the submissions still owed a forced grading (those this forced run, or an earlier stopped
        one, did not reach); the file is removed when there are none."""
        owed = sorted(s for s in left if self.force or s in self.owed)
        path = self.out / FORCE_PENDING
        if owed:
            path.write_text(json.dumps(owed) + "\n")
        else:
            path.unlink(missing_ok=True)
