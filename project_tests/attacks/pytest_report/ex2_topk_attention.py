"""ATTACK pytest_report (kind: patching pytest).

What it tries: at import time, patch pytest itself: ``CallInfo.from_call`` forgets any exception raised in
setup or call, and ``TestReport.from_item_and_call`` marks every report as passed. Any plugin that trusts
pytest's reports then records every later test as passed.

Why it must fail under the new design: the worker that imports this file runs no pytest session; the
reports are made by the judge's pytest, in another process, from the plain values the worker returned.
Patching the worker's copy of ``_pytest`` (if it is even importable there) changes nothing the judge sees.
"""

from __future__ import annotations

from torch import Tensor


def _patch_pytest() -> None:
    try:
        import _pytest.reports as reports
        import _pytest.runner as runner
    except Exception:
        return

    original_report = reports.TestReport.from_item_and_call.__func__

    def from_item_and_call(cls, item, call):
        report = original_report(cls, item, call)
        report.outcome = "passed"
        report.longrepr = None
        report.sections = []
        return report

    reports.TestReport.from_item_and_call = classmethod(from_item_and_call)

    original_call = runner.CallInfo.from_call.__func__

    def from_call(cls, func, when, reraise=None):
        info = original_call(cls, func, when, reraise)
        if info.excinfo is not None and when in ("setup", "call", "teardown"):
            try:
                object.__setattr__(info, "excinfo", None)  # a frozen dataclass in some pytest versions
            except Exception:
                pass
        return info

    runner.CallInfo.from_call = classmethod(from_call)  # a class attribute: every module that uses it sees it


try:
    _patch_pytest()
except Exception:
    pass


# ---------------------------------------------------------------------------------------------------------
# The untouched exercise (nothing implemented)
# ---------------------------------------------------------------------------------------------------------


def topk_mask(scores: Tensor, top_k: int) -> Tensor:
    raise NotImplementedError("ex2: keep the top_k largest entries of each row")


def topk_attention(q: Tensor, k: Tensor, v: Tensor, top_k: int, *, causal: bool = True):
    raise NotImplementedError("ex2: validate the arguments, then mask, keep the top_k scores, softmax and mix")
