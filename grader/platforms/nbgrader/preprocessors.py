"""The nbgrader preprocessors of the course, one step each, and the lists that put them in nbgrader's place.

``nbgrader_config.py`` (written by ``course_folder``) imports ``assignment_preprocessors`` and
``autograde_preprocessors`` from here, so this module is imported only where nbgrader runs: it imports nbgrader
at the top. (The rest of the package imports without nbgrader, so that ``python -m grader`` stays fast.)

- ``TodoStubs`` (``generate_assignment``): each solution block becomes the stub of ``exercises/``;
- ``JudgeBeforeKernel`` (``autograde``, first): the judge grades the notebook's code, hidden tests included,
  before the student's kernel starts, and leaves what each test cell shows for that kernel;
- ``HiddenTestsExecute`` (``autograde``): nbgrader's Execute, its kernel started where the hidden tests are out
  of reach (``grader.platforms.nbgrader.kernel``);
- ``ForgetJudged`` (``autograde``, last): the judged cells of the notebook are removed.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

from nbconvert.preprocessors import Preprocessor
from nbgrader.converters import Autograde, GenerateAssignment
from nbgrader.preprocessors import ClearSolutions, Execute
from traitlets import Bool

from grader import results
from grader.course import Block, exercise_of
from grader.platforms.nbgrader.kernel import confinement, kernel_manager_class, warn_unconfined_once
from grader.platforms.nbgrader.notebook import TESTS_DIR
from grader.platforms.nbgrader.scores import JUDGE_LOG, forget_judged, judged_cells, write_judged
from grader.platforms.nbgrader.submissions import sources_of_cells

TODO_LINE = re.compile(r"^\s*# TODO: (?P<todo>.+?)\s*$")


class TodoStubs(ClearSolutions):
    """``generate_assignment``: nbgrader's ClearSolutions, except that in an ``%%exercise exN_name`` cell a
    solution block under a ``# TODO: x`` line becomes ``raise NotImplementedError("exN: x")``, the stub of
    ``exercises/`` (grader.course.Block.stub), rather than one message for every block."""

    def _replace_solution_region(self, cell, language):
        words = cell.source.partition("\n")[0].split()
        exercise = exercise_of(words[1]) if cell.cell_type == "code" and len(words) > 1 and \
            words[0] == "%%exercise" else None
        if exercise is None:
            return super()._replace_solution_region(cell, language)
        out, inside, replaced = [], False, False
        for line in cell.source.split("\n"):
            if self.begin_solution_delimeter in line:
                if inside:
                    raise RuntimeError("encountered nested begin solution statements")
                indent = re.match(r"\s*", line).group(0)
                todo = TODO_LINE.match(out[-1]) if out else None
                if todo:
                    out.append(Block(0, indent, todo.group("todo")).stub(exercise)[1].rstrip("\n"))
                else:
                    out += [indent + stub for stub in self.code_stub[language].split("\n")]
                inside = replaced = True
            elif self.end_solution_delimeter in line:
                inside = False
            elif not inside:
                out.append(line)
        if inside:
            raise RuntimeError("no end solution statement found")
        cell.source = "\n".join(out)
        return replaced


class JudgeBeforeKernel(Preprocessor):
    """``autograde``, before the kernel starts: grade the notebook's ``%%exercise`` code with the judge (hidden
    tests included, student code in the confined worker) and leave what each test cell shows in a file whose
    path the kernel gets in its environment. So the kernel runs no test, and needs no hidden one."""

    enabled = Bool(True)

    def preprocess(self, nb, resources):
        from grader.grading import grade  # torch and the judge: paid by autograde, not by every nbgrader command

        forget_judged()
        start = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory(prefix="nbgrader-judge-") as tmp:
                for name, body in sources_of_cells(nb.cells).items():
                    (Path(tmp) / f"{name}.py").write_text(body)
                doc = grade(tmp, hidden=True, tests_dir=TESTS_DIR)
        except Exception as exc:  # noqa: BLE001 - one bad notebook must not stop autograde
            points = results.load_points(TESTS_DIR)
            doc = results.ungradable(f"{type(exc).__name__}: {exc}"[:300], points=points, exercises=list(points))
        write_judged(judged_cells(doc, nb.cells))  # the kernel, started next by Execute, reads it
        # what autograde pays for the judge (bench/bench_nbgrader.py reads this line)
        self.log.info("%s: judged the notebook's code in %.2f s", JUDGE_LOG, time.perf_counter() - start)
        return nb, resources


class HiddenTestsExecute(Execute):
    """nbgrader's Execute, whose kernel starts through ``grader.platforms.nbgrader.kernel``: no hidden test in reach, or
    (where the kernel cannot be confined) a warning once, or with ``require_confinement`` no kernel at all."""

    require_confinement = Bool(
        False, help="Refuse to start a kernel that could read the hidden tests (no user namespaces here): "
                    "autograde then fails every notebook rather than grade it unconfined.").tag(config=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "kernel_manager_class" not in kwargs:
            self.kernel_manager_class = kernel_manager_class(self.require_confinement)

    def preprocess(self, nb, resources, *args, **kwargs):
        confined, why = confinement()
        if not confined and not self.require_confinement:
            warn_unconfined_once(self.log, why)
        return super().preprocess(nb, resources, *args, **kwargs)


class ForgetJudged(Preprocessor):
    """``autograde``, after the kernel is done: remove the notebook's judged test cells."""

    enabled = Bool(True)

    def preprocess(self, nb, resources):
        forget_judged()
        return nb, resources


def _default_preprocessors(converter) -> list:
    return list(converter.class_traits()["preprocessors"].default())


def assignment_preprocessors() -> list:
    """``nbgrader generate_assignment``'s preprocessors, with ClearSolutions replaced by TodoStubs."""
    return [TodoStubs if p is ClearSolutions else p for p in _default_preprocessors(GenerateAssignment)]


def autograde_preprocessors() -> list:
    """``nbgrader autograde``'s preprocessors (after sanitizing): JudgeBeforeKernel first, Execute's kernel started
    with the hidden tests out of its reach (HiddenTestsExecute), and ForgetJudged last."""
    defaults = list(Autograde.class_traits()["autograde_preprocessors"].default())
    return [JudgeBeforeKernel, *(HiddenTestsExecute if p is Execute else p for p in defaults),
            ForgetJudged]
