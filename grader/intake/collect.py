"""Take the exercise files out of one submission, safely, and lay out a fresh grading sandbox for them.

A submission is a folder (a clone of the student release, or just the exercise files), an archive (``.zip``,
``.tar.gz``, ``.tgz``), or several loose files and folders of one student in an LMS download (``parts``, see
``grader.intake.entries``). ``grader.intake.archives`` reads it as a list of files, never extracting anything to disk and
opening the archives found inside it; only the expected exercise files are taken, into memory. Nothing else in
the submission (``conftest.py``, ``pytest.ini``, ``sitecustomize.py``, ``.pth`` files, edited tests) ever
reaches the grading run.

Search rule, for each exercise file ``<name>.py`` (names from ``tests/points.json``):

1. candidates are the files called ``<name>.py`` at depth <= 3 (``x.py`` is depth 1, ``exercises/x.py`` depth 2,
   ``repo-main/exercises/x.py`` depth 3), outside hidden folders, ``__MACOSX``, ``__pycache__`` and
   ``site-packages``; inside an archive of the submission, depth counts from the archive's own root;
2. candidates outside the archives of the submission win over those inside them; then, if some candidates sit in
   a folder called ``exercises``, only those count;
3. exactly one candidate left: it is taken. None: the exercise is *missing*. More than one: it is *ambiguous*
   (scored 0, the reason lists the paths) -- the grader never guesses which file the student meant.
4. a missing exercise's reason says what was found instead, and is never taken: a near match (same name in
   another case, a name that starts with the module name such as ``<name> (1).py`` or ``<name>.py.txt``, or
   ``exN_*.py``: rename it), the right file too deep (move it up), or an archive that could not be opened.

A taken file larger than ``Caps.max_file_bytes``, or one Python cannot decode (not UTF-8 and no PEP 263
coding line), is not graded: that exercise scores 0 with the reason, the other exercises are graded.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from grader.untrusted import one_line
from grader.intake.archives import (ARCHIVE_SUFFIXES, MAX_DEPTH, SCAN_DEPTH, SKIPPED_DIRS, Caps, Member, Part,
                             SubmissionError, Tree, archive_suffix, read_entry, read_parts, searchable)

__all__ = ["ARCHIVE_SUFFIXES", "MAX_DEPTH", "SKIPPED_DIRS", "Caps", "Part", "Submission", "SubmissionError",
           "archive_suffix", "build_sandbox", "collect", "entry_kind", "student_id"]

TESTS_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")
LISTED = 3  # paths named in one reason
# what a reason or a file's place may take in the gradebook, the results and the terminal: the names in them are
# the submission's (a 33 KB archive of four 8-million-character names made a 33 MB gradebook cell)
REASON_CHARS, WHERE_CHARS = 500, 200


@dataclass
class Submission:
    """What was taken from one submission entry."""

    student: str
    entry: Path
    files: dict[str, bytes] = field(default_factory=dict)  # "ex1_special_tokens.py" -> content (gradable)
    sources: dict[str, str] = field(default_factory=dict)  # file name -> where it was found in the entry
    problems: dict[str, str] = field(default_factory=dict)  # exercise id -> why it is not graded (scores 0)
    error: str | None = None  # the whole submission is ungradable, and why

    @property
    def found_any(self) -> bool:
        return bool(self.sources)

    def summary(self) -> str:
        """The "Files graded / Not graded" block shown under the score (Gradescope output, batch results.json)."""
        lines = ["", "Files graded:"]
        lines += [f"  {name} (found at {where})" for name, where in sorted(self.sources.items()) if name in self.files]
        if self.problems:
            lines += ["Not graded (these exercises score 0):"]
            lines += [f"  {ex}: {problem}" for ex, problem in sorted(self.problems.items())]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# Entries and student ids
# ----------------------------------------------------------------------------------------------------------


def student_id(entry: Path) -> str:
    """Folder name, or archive name without its suffix; any other file keeps its full name."""
    suffix = None if entry.is_dir() else archive_suffix(entry.name)
    return entry.name[: -len(suffix)] if suffix else entry.name


def entry_kind(entry: Path) -> str:
    """'folder', 'zip', 'tar' or 'unsupported' (symlinked entries are unsupported: never followed)."""
    if entry.is_symlink():
        return "unsupported"
    if entry.is_dir():
        return "folder"
    if entry.is_file():
        suffix = archive_suffix(entry.name)
        if suffix == ".zip":
            return "zip"
        if suffix in (".tar.gz", ".tgz"):
            return "tar"
    return "unsupported"


# ----------------------------------------------------------------------------------------------------------
# The search rule
# ----------------------------------------------------------------------------------------------------------


def _listed(members: list[Member]) -> str:
    more = f" (and {len(members) - LISTED} more)" if len(members) > LISTED else ""
    return ", ".join(f'"{m.label}"' for m in members[:LISTED]) + more


def _choose(pool: list[Member]) -> tuple[Member | None, str | None]:
    """Apply the search rule to the candidates of one file name: (chosen, problem)."""
    preferred = [m for m in pool if m.path.parent.name == "exercises"]
    pool = sorted(preferred or pool, key=lambda m: m.label)
    if len(pool) == 1:
        return pool[0], None
    if not pool:
        return None, None
    listed = ", ".join(m.label for m in pool[:5])
    return None, f"ambiguous: {len(pool)} files with this name ({listed}); keep only one"


def _near_matches(module: str, tree: Tree) -> list[Member]:
    """Files that look like a misnamed ``<module>.py``: same name in another case, a name that starts with the
    module name (``<module> (1).py``, ``<module>.py.txt``), or the ``exN_`` prefix with a ``.py`` suffix."""
    target = f"{module}.py".lower()
    prefix = module.split("_", 1)[0].lower() + "_"
    found = []
    for m in tree.members:
        lower = m.path.name.lower()
        if m.path.name == f"{module}.py" or lower.endswith(".pyc") or not searchable(m.path.parts):
            continue
        if lower == target or lower.startswith(module.lower()) or (lower.startswith(prefix) and lower.endswith(".py")):
            found.append(m)
    return sorted(found, key=lambda m: m.label)


def _too_deep(name: str, tree: Tree) -> list[Member]:
    """The right file, below the search depth (named in the reason, never taken)."""
    return sorted((m for m in tree.members if m.path.name == name and not searchable(m.path.parts)
                   and searchable(m.path.parts, SCAN_DEPTH)), key=lambda m: (len(m.path.parts), m.label))


def _finding(module: str, tree: Tree) -> str | None:
    """What was found instead of ``<module>.py``, if anything: a misnamed file, or the file too deep."""
    name = f"{module}.py"
    near = _near_matches(module, tree)
    if near:
        return f"found {_listed(near)}, not taken: rename {'it' if len(near) == 1 else 'one'} to {name}"
    deep = _too_deep(name, tree)
    if deep:
        folders = len(deep[0].path.parts) - 1
        return (f"found {_listed(deep)}, {folders} folders deep, not taken: the grader looks at most "
                f"{MAX_DEPTH - 1} folders deep (as in repo/exercises/{name}): move it up")
    return None


def _missing(module: str, tree: Tree) -> str:
    """Why ``<module>.py`` is missing, naming what was found instead (never taken: the rule stays exact)."""
    finding = _finding(module, tree)
    if finding:
        return f"missing: {finding}"
    if tree.unopened:
        return f"missing: no {module}.py found; not opened: {'; '.join(tree.unopened[:LISTED])}"
    return f"missing: no {module}.py in the submission"


def _nothing_found(tree: Tree, wanted: dict[str, str]) -> str:
    """The reason for a submission with no exercise file at all: what it holds instead, exactly."""
    expected = ", ".join(f"{m}.py" for m in wanted.values())
    deep = {ex: found for ex, m in wanted.items() if (found := _too_deep(f"{m}.py", tree))}
    folders = {str(found[0].label).rsplit("/", 1)[0] for found in deep.values()}
    details = []
    if len(deep) > 1 and len(folders) == 1 and not any(_near_matches(m, tree) for m in wanted.values()):
        names = ", ".join(f"{wanted[ex]}.py" for ex in deep)  # all in one folder that is too deep: say it once
        levels = len(next(iter(deep.values()))[0].path.parts) - 1
        details.append(f'found {names} in "{folders.pop()}/", {levels} folders deep, not taken: the grader looks '
                       f"at most {MAX_DEPTH - 1} folders deep (as in repo/exercises/): move them up")
    else:
        details = [f"{ex}: {f}" for ex, module in wanted.items() if (f := _finding(module, tree))]
    if tree.unopened:
        details.append("not opened: " + "; ".join(tree.unopened[:LISTED]))
    if not details:
        shown = [m for m in tree.members if searchable(m.path.parts, SCAN_DEPTH)]
        details.append(f"it holds {_listed(shown)}" if shown else "it is empty")
    return f"no exercise files found (expected {expected}): " + "; ".join(details)


def _check_content(name: str, data: bytes, caps: Caps) -> str | None:
    if len(data) > caps.max_file_bytes:
        return f"{name} is too large ({len(data):,} bytes, limit {caps.max_file_bytes:,})"
    try:  # what Python itself would do: UTF-8 unless a PEP 263 coding line says otherwise
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        data.decode(encoding)
    except (UnicodeDecodeError, SyntaxError, LookupError) as exc:
        if not isinstance(exc, UnicodeDecodeError):  # detect_encoding found bad bytes or a bad coding line
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as utf8_exc:
                exc = utf8_exc
        if isinstance(exc, UnicodeDecodeError):
            bad = data[exc.start : exc.start + 1].hex()
            return f"{name} is not valid {exc.encoding.upper()} (byte 0x{bad} at offset {exc.start}): save it as UTF-8"
        return f"{name} cannot be decoded: {exc}"
    return None


def _take(tree: Tree, ex: str, module: str, caps: Caps, sub: Submission) -> None:
    """Apply the search rule for one exercise and take its file into ``sub`` (or say why not)."""
    name = f"{module}.py"
    exact = [m for m in tree.members if m.path.name == name and searchable(m.path.parts)]
    chosen, problem = _choose([m for m in exact if m.level == 0] or exact)  # outside archives first
    if chosen is None:
        sub.problems[ex] = problem or _missing(module, tree)
        return
    sub.sources[name] = chosen.label
    if chosen.refused:
        sub.problems[ex] = f"{chosen.label} is {chosen.refused}"
        return
    if chosen.size > caps.max_file_bytes:
        sub.problems[ex] = f"{name} is too large ({chosen.size:,} bytes, limit {caps.max_file_bytes:,})"
        return
    data = chosen.read(caps.max_file_bytes + 1)
    problem = _check_content(name, data, caps)
    if problem:
        sub.problems[ex] = problem
    else:
        sub.files[name] = data


def collect(entry: Path, wanted: dict[str, str], caps: Caps = Caps(), *, parts: list[Part] | None = None,
            student: str | None = None) -> Submission:
    """Take the files for ``wanted`` (exercise id -> module name) from one entry of the submissions folder, or
    from ``parts`` (one student's files in an LMS download; ``entry`` is then only where they are)."""
    sub = Submission(student=student or student_id(entry), entry=entry)
    try:
        with contextlib.ExitStack() as stack:
            if parts is not None:
                tree = read_parts(parts, caps, stack)
            elif (kind := entry_kind(entry)) != "unsupported":
                tree = read_entry(entry, caps, stack, kind)
            else:
                raise SubmissionError("not a folder or a supported archive (.zip, .tar.gz, .tgz)")
            for ex, module in wanted.items():
                _take(tree, ex, module, caps, sub)
    except SubmissionError as exc:
        sub.error = str(exc)
        sub.files.clear()
        return _as_data(sub)
    if not sub.found_any:
        sub.error = _nothing_found(tree, wanted)
    return _as_data(sub)


def _as_data(sub: Submission) -> Submission:
    """The submission's text (its reasons, and where each file was found: names the student chose) on one line,
    with control characters and bytes that are not UTF-8 shown as escapes, and cut short (grader.untrusted)."""
    sub.error = one_line(sub.error, REASON_CHARS) if sub.error is not None else None
    sub.problems = {ex: one_line(problem, REASON_CHARS) for ex, problem in sub.problems.items()}
    sub.sources = {name: one_line(where, WHERE_CHARS) for name, where in sub.sources.items()}
    return sub


# ----------------------------------------------------------------------------------------------------------
# The sandbox
# ----------------------------------------------------------------------------------------------------------


def build_sandbox(root: Path, files: dict[str, bytes], tests_dir: Path) -> tuple[Path, Path]:
    """``root/exercises`` with the taken files and ``root/tests``, a fresh copy of the graded suites."""
    exercises = root / "exercises"
    exercises.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (exercises / name).write_bytes(data)
    tests = root / "tests"
    shutil.copytree(tests_dir, tests, ignore=TESTS_IGNORE, symlinks=False)
    return exercises, tests
