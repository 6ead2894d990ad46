"""ATTACK carry_hidden (kind: hidden inputs carried to later tests).

What it tries: keep every value the tests hand to this module (arguments, and the text of every file it is
asked to load) and show it in a later test, whose output the student gets back. At import it wraps the
worker's error reporting (found in ``sys.modules``, as the grader's source shows) so that every error of ANY
exercise, the untouched stubs' NotImplementedError included, carries what was kept; every call also prints it.
A hidden test of ex1 that ran before a visible test of ex2 in the same worker handed its inputs straight into
ex2's failure reasons and output, and so into results.json and feedback.md.

Why it must fail under the new design: visible tests run first, and a worker that has served a hidden test is stopped before any
visible one (grader.judge.plugin._keep_hidden_inputs_in); what a hidden test's own run shows is left out of what
students get (grader.results.for_students). The mark that it ran: each call prints ``atk-carry_hidden kept N``.
"""

from __future__ import annotations

import sys

KEPT: list[str] = []


def _keep(*values) -> None:
    for value in values:
        KEPT.append(repr(value)[:300])
    print(f"atk-carry_hidden kept {len(KEPT)}: {' | '.join(KEPT[-20:])}")


def _wrap_errors() -> None:
    worker = sys.modules.get("grader.worker.worker")
    cls = getattr(worker, "Worker", None)
    if cls is None or getattr(cls.error, "_atk", False):
        return
    original = cls.error

    def error(self, exc):
        try:
            exc.args = (f"{exc} [kept: {' | '.join(KEPT[-20:])}]",)
        except Exception:  # noqa: BLE001
            pass
        return original(self, exc)

    error._atk = True
    cls.error = error


_wrap_errors()


class SpecialTokenizer:
    def __init__(self, *args, **kwargs) -> None:
        _keep(args, kwargs)
        raise NotImplementedError("ex1: carry_hidden keeps what it is given")

    @classmethod
    def load(cls, path, *args, **kwargs):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                _keep(f.read())
        except OSError as exc:
            _keep(str(exc))
        raise NotImplementedError("ex1: carry_hidden keeps what it is given")
