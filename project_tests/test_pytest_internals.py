"""The pytest internals the judge relies on, each checked by name, so that a pytest upgrade that removes one or
changes its shape fails here, loudly, instead of silently changing verdicts or records.

pyproject.toml pins pytest to the range these were tested with; this is what to run before widening it:
- ``session._setupstate.teardown_exact(nextitem)`` (grader/judge/serve.py): the forked judge tears down the
  warm-up's fixtures before grading its submission;
- ``item._report_sections`` (grader/judge/serve.py): emptied so that captured output never carries over from the
  warm-up run to a submission's record;
- ``item._repr_failure_py`` (grader/judge/plugin.py): overridden on the item so that an error in a fixture's setup
  shows the student's traceback (``repr_failure`` does it for the call) without formatting the judge's frames."""

from __future__ import annotations

import inspect
import textwrap

import pytest
from _pytest import nodes, runner

STUDENT_TB = "the student's own traceback"


def test_session_setupstate_teardown_exact_takes_the_next_item(request):
    state = getattr(request.session, "_setupstate", None)
    assert state is not None, "pytest internal gone: session._setupstate (grader/judge/serve.py tears down with it)"
    teardown = getattr(state, "teardown_exact", None)
    assert callable(teardown), "pytest internal gone: session._setupstate.teardown_exact (grader/judge/serve.py)"
    params = list(inspect.signature(runner.SetupState.teardown_exact).parameters)
    assert params == ["self", "nextitem"], f"pytest internal changed shape: SetupState.teardown_exact{params}"


def test_item_report_sections_is_the_list_captured_output_goes_to(request):
    sections = getattr(request.node, "_report_sections", None)
    assert isinstance(sections, list), "pytest internal gone: item._report_sections (grader/judge/serve.py)"
    before = len(sections)
    request.node.add_report_section("call", "stdout", "x")
    assert request.node._report_sections[before:] == [("call", "stdout", "x")], (
        "pytest internal changed shape: Item.add_report_section no longer appends (when, key, content) to "
        "item._report_sections (grader/judge/serve.py empties it between runs)")
    del request.node._report_sections[before:]


def test_item_repr_failure_py_is_what_formats_a_setup_error(pytester_like):
    """Run a test whose fixture fails with the plugin's override in place: the report must carry our text."""
    params = list(inspect.signature(nodes.Node._repr_failure_py).parameters)
    assert params[:3] == ["self", "excinfo", "style"], (
        f"pytest internal changed shape: Node._repr_failure_py{params} (grader/judge/plugin.py overrides it)")
    reports = pytester_like
    setup = [r for r in reports if r.when == "setup" and r.failed]
    call = [r for r in reports if r.when == "call" and r.failed]
    assert setup and str(setup[0].longrepr) == STUDENT_TB, (
        "pytest internal changed: item._repr_failure_py no longer formats a fixture's setup error "
        "(grader/judge/plugin.py overrides it to show the student's traceback)")
    assert call and str(call[0].longrepr) == STUDENT_TB, "pytest changed: item.repr_failure no longer formats a call"


@pytest.fixture
def pytester_like(tmp_path, monkeypatch):
    """The reports of a tiny in-process pytest run whose items have repr_failure/_repr_failure_py overridden
    the way grader/judge/plugin.py does it."""
    (tmp_path / "test_tiny.py").write_text(textwrap.dedent('''
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("in setup")

        def test_setup_fails(broken):
            pass

        def test_call_fails():
            raise RuntimeError("in call")
    '''))
    reports = []

    class Override:
        @pytest.hookimpl(wrapper=True)
        def pytest_runtest_makereport(self, item, call):
            item.repr_failure = lambda excinfo: STUDENT_TB
            item._repr_failure_py = lambda excinfo, style=None: STUDENT_TB
            try:
                return (yield)
            finally:
                item.__dict__.pop("repr_failure", None)
                item.__dict__.pop("_repr_failure_py", None)

        def pytest_runtest_logreport(self, report):
            reports.append(report)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # only pytest itself: what is checked is its core
    pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(tmp_path / "test_tiny.py")],
                plugins=[Override()])
    return reports
