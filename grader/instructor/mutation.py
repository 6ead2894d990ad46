"""``python -m grader mutation``: generated mutants of the reference solutions, graded, counted and triaged.

The hand-written mutants in ``project_tests/test_exN_variants.py`` are the mistakes someone thought of.
``grader.instructor.mutants`` makes mutants systematically, only inside the solution blocks (``# BEGIN SOLUTION`` ... ``# END
SOLUTION``) of ``solutions/exN_*.py``, with mutmut's operator set (``mutmut.mutation.mutators``: constants +1,
``<`` <-> ``<=``, ``+`` <-> ``-``, ``and`` <-> ``or``, ``in`` <-> ``not in``, ``not x`` -> ``x``, True <-> False,
an argument replaced by None or dropped, an assignment's value replaced by None, strings changed) plus a few of
our own that mutmut lacks: a statement removed (a dropped check, a forgotten step), two positional arguments
swapped, an integer constant -1, and an off-by-one on a slice bound.

Each mutant is one exercise file; the other exercises are left out of its submission, so the batch grader
(``grader.batch.batch_grade``: suites collected once, a judge forked per submission) grades that exercise
alone. A mutant is *killed* when it scores less than the reference on its exercise. A survivor must be
triaged in ``project_tests/mutation_triage.toml``:

* ``[[equivalent]]``: the mutant behaves like the reference for every input the docstring allows (``why``
  says why in one line; ``ids = [...]`` groups mutants that share the argument, such as a dropped error
  message); it does not count against the kill rate;
* ``[[unobservable]]``: the mutant differs from the reference only where no graded test can look (a GPU
  device, a generator argument, what runs between two readings of a fake clock); ``why`` says where. It is
  counted apart, like an equivalent mutant, and listed so that nobody mistakes it for a tested behaviour;
* ``[[killed]]``: a survivor of an earlier run that a new or sharper test now kills (``test`` names it); the
  run checks that it is still killed.

``make mutation`` (``python -m grader mutation``) prints, per exercise, the mutants generated, killed,
equivalent and surviving, and fails when a survivor is untriaged, a ``[[killed]]`` entry survives, an
``[[equivalent]]`` entry is killed (then it was not equivalent: drop the entry), or fewer than 99% of the
non-equivalent mutants of an exercise are killed. Untriaged survivors are printed as TOML stanzas to paste.

Mutant ids are stable across unrelated edits: ``exN-<hash>`` of the enclosing function, the changed source
line(s) before and after, and an occurrence number. Graded results are kept in ``out/mutation/`` and reused
while the mutant, the suites and the grading code are unchanged (the batch grader's own re-run rule).
"""

from __future__ import annotations

import argparse
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from grader import results
from grader.course import REPO_ROOT, SOLUTIONS, TESTS_DIR
from grader.instructor.mutants import Mutant, exercise_modules, generate

TRIAGE_FILE = REPO_ROOT / "project_tests" / "mutation_triage.toml"
DEFAULT_OUT = REPO_ROOT / "out" / "mutation"
TARGET_KILL_RATE = 0.99


@dataclass
class Verdict:
    mutant: Mutant
    score: float | None
    max_score: float
    status: str  # killed | survived | equivalent | killed (was a survivor)
    reason: str = ""


@dataclass
class Triage:
    equivalent: dict[str, dict] = field(default_factory=dict)
    unobservable: dict[str, dict] = field(default_factory=dict)
    killed: dict[str, dict] = field(default_factory=dict)

    KINDS = ("equivalent", "unobservable", "killed")

    def kind_of(self, mutant_id: str) -> str | None:
        return next((kind for kind in self.KINDS if mutant_id in getattr(self, kind)), None)


# ----------------------------------------------------------------------------------------------------------
# Triage file
# ----------------------------------------------------------------------------------------------------------


def load_triage(path: Path = TRIAGE_FILE) -> Triage:
    triage = Triage()
    if not path.is_file():
        return triage
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    for kind in Triage.KINDS:
        for entry in data.get(kind, []):
            ids = [entry["id"]] if "id" in entry else list(entry.get("ids", []))
            if not ids:
                raise ValueError(f"{path}: an [[{kind}]] entry has no id (or ids): {entry}")
            need = "test" if kind == "killed" else "why"
            if not str(entry.get(need, "")).strip():
                raise ValueError(f"{path}: [[{kind}]] {ids[0]} needs a '{need}'")
            for mutant_id in ids:
                if triage.kind_of(mutant_id):
                    raise ValueError(f"{path}: {mutant_id} is listed twice (under [[{triage.kind_of(mutant_id)}]])")
                getattr(triage, kind)[mutant_id] = entry
    return triage


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def stanza(m: Mutant, kind: str = "equivalent") -> str:
    """A triage entry for ``m`` to paste into the triage file (fill in why / test)."""
    lines = [
        f"[[{kind}]]",
        f"id = {_toml_str(m.id)}",
        f"where = {_toml_str(m.function)}",
        f"change = {_toml_str(m.change)}",
        ('why = ""' if kind == "equivalent" else 'test = ""'),
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# Grading
# ----------------------------------------------------------------------------------------------------------


def write_submissions(mutants: list[Mutant], folder: Path, *, reference: bool = True) -> None:
    """One folder per mutant holding only its exercise file, plus ``reference/`` with every solution."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for m in mutants:
        sub = folder / m.id
        sub.mkdir()
        (sub / f"{m.module}.py").write_text(m.source, encoding="utf-8")
    if reference:
        ref = folder / "reference"
        ref.mkdir()
        for module in sorted({m.module for m in mutants}):
            shutil.copy(SOLUTIONS / f"{module}.py", ref / f"{module}.py")


def grade_mutants(
    mutants: list[Mutant],
    *,
    out: Path = DEFAULT_OUT,
    jobs: int = 2,
    tests_dir: Path = TESTS_DIR,
    test_timeout: float = 5.0,
    force: bool = False,
    progress: str | None = "auto",
) -> dict[str, float | None]:
    """Grade every mutant with the batch grader; returns mutant id -> its exercise's score (None: not graded).

    The reference is graded in the same batch and must score full marks on every exercise, else ValueError."""
    from grader.batch import batch_grade

    out = Path(out)
    submissions = out / "submissions"
    write_submissions(mutants, submissions)
    rows = batch_grade(submissions, out / "graded", jobs=jobs, tests_dir=tests_dir, force=force,
                       test_timeout=test_timeout, timeout_per_submission=300.0, progress=progress)
    by_student = {row["student"]: row for row in rows}
    points = results.load_points(tests_dir)
    ref = by_student.get("reference", {})
    for ex in {m.exercise for m in mutants}:
        full = points[ex]["visible"] + points[ex]["hidden"]
        got = ref.get(ex, "")
        if got == "" or float(got) != full:
            raise ValueError(f"the reference scored {got or 'nothing'} on {ex}, expected {full}: "
                             f"{ref.get('reason', '')}")
    scores: dict[str, float | None] = {}
    for m in mutants:
        row = by_student.get(m.id, {})
        value = row.get(m.exercise, "")
        scores[m.id] = float(value) if row.get("status") == "graded" and value != "" else None
    return scores


def judge(mutants: list[Mutant], scores: dict[str, float | None], triage: Triage,
          tests_dir: Path = TESTS_DIR) -> list[Verdict]:
    points = results.load_points(tests_dir)
    verdicts = []
    for m in mutants:
        full = float(points[m.exercise]["visible"] + points[m.exercise]["hidden"])
        score = scores.get(m.id)
        killed = score is None or score < full  # not graded at all (a hang, a crash of the judge) loses points too
        kind = triage.kind_of(m.id)
        if kind in ("equivalent", "unobservable"):
            status = f"killed, but triaged {kind}" if killed else kind
        elif killed:
            status = "killed"
        else:
            status = "survived, but triaged killed" if m.id in triage.killed else "survived"
        verdicts.append(Verdict(m, score, full, status))
    return verdicts


@dataclass
class Summary:
    exercise: str
    generated: int = 0
    killed: int = 0
    equivalent: int = 0
    unobservable: int = 0
    survived: int = 0

    @property
    def rate(self) -> float:
        live = self.generated - self.equivalent - self.unobservable
        return self.killed / live if live else 1.0


def summarise(verdicts: list[Verdict]) -> dict[str, Summary]:
    out: dict[str, Summary] = {}
    for v in verdicts:
        s = out.setdefault(v.mutant.exercise, Summary(v.mutant.exercise))
        s.generated += 1
        if v.status in ("equivalent", "unobservable"):
            setattr(s, v.status, getattr(s, v.status) + 1)
        elif v.status.startswith("killed"):
            s.killed += 1
        else:
            s.survived += 1
    return dict(sorted(out.items()))


def problems(verdicts: list[Verdict], triage: Triage, *, complete: bool = True) -> list[str]:
    """What makes the run fail. ``complete``: every exercise's mutants were generated (so a triage entry that
    matches no mutant is stale)."""
    found = []
    for v in verdicts:
        m = v.mutant
        if v.status == "survived":
            found.append(f"untriaged survivor {m.id} in {m.function} (line {m.line}): {m.change}")
        elif v.status == "survived, but triaged killed":
            found.append(f"{m.id} is triaged as killed by {triage.killed[m.id]['test']} but survives: {m.change}")
        elif v.status.startswith("killed, but triaged"):
            kind = v.status.rsplit(" ", 1)[1]
            found.append(f"{m.id} is triaged as {kind} but a test kills it (drop the entry): {m.change}")
    if complete:
        ids = {v.mutant.id for v in verdicts}
        for kind in Triage.KINDS:
            for stale in sorted(set(getattr(triage, kind)) - ids):
                found.append(f"triage entry {stale} ([[{kind}]]) matches no mutant any more: drop it")
    for s in summarise(verdicts).values():
        if s.rate < TARGET_KILL_RATE:
            found.append(f"{s.exercise}: {s.rate:.1%} of the non-equivalent mutants are killed, "
                         f"below {TARGET_KILL_RATE:.0%}")
    return found


def format_summary(summaries: dict[str, Summary]) -> str:
    names = ("generated", "killed", "equivalent", "unobservable", "survived")
    lines = [f"{'exercise':<9}" + "".join(f"{n:>13}" for n in names) + f"{'killed %':>10}"]
    total = Summary("total")
    for s in [*summaries.values(), total]:
        if s is not total:
            for n in names:
                setattr(total, n, getattr(total, n) + getattr(s, n))
        lines.append(f"{s.exercise:<9}" + "".join(f"{getattr(s, n):>13}" for n in names) + f"{s.rate:>10.1%}")
    lines.append("(killed % = killed / (generated - equivalent - unobservable))")
    return "\n".join(lines)


def run(
    exercises: Iterable[str] | None = None,
    *,
    select: Callable[[Mutant], bool] | None = None,
    out: Path = DEFAULT_OUT,
    jobs: int = 2,
    tests_dir: Path = TESTS_DIR,
    triage_path: Path = TRIAGE_FILE,
    force: bool = False,
    progress: str | None = "auto",
) -> tuple[list[Verdict], list[str]]:
    """Generate, grade and judge the mutants of ``exercises`` (all by default); returns (verdicts, problems)."""
    modules = exercise_modules(exercises, tests_dir)
    mutants = [m for module in modules.values() for m in generate(module)]
    if select is not None:
        mutants = [m for m in mutants if select(m)]
    triage = load_triage(triage_path)
    scores = grade_mutants(mutants, out=out, jobs=jobs, tests_dir=tests_dir, force=force, progress=progress)
    verdicts = judge(mutants, scores, triage, tests_dir)
    complete = select is None and exercises is None
    return verdicts, problems(verdicts, triage, complete=complete)


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------


def cmd_mutation(args: argparse.Namespace) -> int:
    from grader.grading import normalise_exercise

    exercises = [normalise_exercise(e) for e in args.exercise] if args.exercise else None
    if args.list:
        for module in exercise_modules(exercises).values():
            for m in generate(module):
                print(f"{m.id}  {m.function}:{m.line}  [{m.operator}]  {m.change}")
        return 0
    verdicts, found = run(exercises, out=Path(args.out), jobs=args.jobs, force=args.force)
    print(format_summary(summarise(verdicts)))
    survivors = [v.mutant for v in verdicts if v.status == "survived"]
    if survivors and args.verbose:
        print(f"\n{len(survivors)} untriaged survivor(s); triage each in {TRIAGE_FILE.relative_to(REPO_ROOT)}:\n")
        for m in survivors:
            print(stanza(m) + "\n")
    for problem in found:
        print(f"FAIL {problem}")
    if not found:
        print("ok   every surviving mutant is triaged, and every exercise kills at least "
              f"{TARGET_KILL_RATE:.0%} of its non-equivalent mutants")
    return 1 if found else 0


def add_mutation_parser(sub) -> None:
    p = sub.add_parser("mutation", help="grade generated mutants of the reference solutions (instructors)")
    p.add_argument("--exercise", "-e", action="append", help="only this exercise (ex2, 2, ex2_topk_attention)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"working folder (default {DEFAULT_OUT.relative_to(REPO_ROOT)})")
    p.add_argument("--jobs", type=int, default=2, help="submissions graded at once (default 2)")
    p.add_argument("--force", action="store_true", help="grade every mutant again (default: reuse unchanged results)")
    p.add_argument("--list", action="store_true", help="only list the mutants, grade nothing")
    p.add_argument("-q", "--quiet", dest="verbose", action="store_false",
                   help="do not print the triage stanzas of untriaged survivors")
    p.set_defaults(func=cmd_mutation)
