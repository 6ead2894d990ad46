"""Take the exercise files out of one submission, safely, and lay out a fresh grading sandbox for them.

A submission is a folder (a clone of the student release, or just the exercise files) or an archive
(``.zip``, ``.tar.gz``, ``.tgz``). Only the expected exercise files are taken, into memory; nothing else in
the submission (``conftest.py``, ``pytest.ini``, ``sitecustomize.py``, ``.pth`` files, edited tests) ever
reaches the grading run, and an archive is never extracted to disk.

Search rule, for each exercise file ``<name>.py`` (names from ``tests/points.json``):

1. candidates are the files called ``<name>.py`` at depth <= 3 (``x.py`` is depth 1, ``exercises/x.py`` depth 2,
   ``repo-main/exercises/x.py`` depth 3), outside hidden folders, ``__MACOSX``, ``__pycache__`` and
   ``site-packages``;
2. if some candidates sit in a folder called ``exercises``, only those count;
3. exactly one candidate left: it is taken. None: the exercise is *missing*. More than one: it is *ambiguous*
   (scored 0, the reason lists the paths) -- the grader never guesses which file the student meant.
4. a missing exercise's reason names near matches (same name in another case, a name that starts with the module
   name such as ``<name> (1).py`` or ``<name>.py.txt``, or ``exN_*.py``) and asks for a rename: they are never taken.

Archives are checked before anything is read: member count, total declared uncompressed size, and every
member's path and type. A member with an absolute path or ``..``, a symlink, a hard link or a device makes the
whole submission ungradable (the reason names the member), as does a corrupt or over-large archive.

A taken file larger than ``Caps.max_file_bytes``, or one Python cannot decode (not UTF-8 and no PEP 263
coding line), is not graded: that exercise scores 0 with the reason, the other exercises are graded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import tarfile
import tokenize
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
MAX_DEPTH = 3
SKIPPED_DIRS = {"__MACOSX", "__pycache__", "site-packages", "node_modules"}
TESTS_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")


@dataclass(frozen=True)
class Caps:
    """Limits on what a submission may hold."""

    max_file_bytes: int = 1_000_000  # one exercise file
    max_archive_bytes: int = 50 * 1024 * 1024  # total declared uncompressed size of an archive
    max_archive_file_bytes: int = 200 * 1024 * 1024  # the archive file itself, compressed
    max_members: int = 10_000


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


class SubmissionError(Exception):
    """The submission as a whole cannot be graded; the message is the reason shown in the gradebook."""


# ----------------------------------------------------------------------------------------------------------
# Entries and student ids
# ----------------------------------------------------------------------------------------------------------


def archive_suffix(name: str) -> str | None:
    lower = name.lower()
    return next((s for s in ARCHIVE_SUFFIXES if lower.endswith(s) and len(lower) > len(s)), None)


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
# Taking the exercise files
# ----------------------------------------------------------------------------------------------------------


def _searchable(parts: tuple[str, ...]) -> bool:
    if not parts or len(parts) > MAX_DEPTH:
        return False
    return not any(p.startswith(".") or p in SKIPPED_DIRS for p in parts[:-1])


def _choose(paths: list[PurePosixPath]) -> tuple[PurePosixPath | None, str | None]:
    """Apply the search rule to the candidates of one file name: (chosen, problem)."""
    preferred = [p for p in paths if p.parent.name == "exercises"]
    pool = sorted(preferred or paths)
    if len(pool) == 1:
        return pool[0], None
    if not pool:
        return None, None
    listed = ", ".join(str(p) for p in pool[:5])
    return None, f"ambiguous: {len(pool)} files with this name ({listed}); keep only one"


def _near_matches(module: str, paths) -> list[PurePosixPath]:
    """Files that look like a misnamed ``<module>.py``: same name in another case, a name that starts with the
    module name (``<module> (1).py``, ``<module>.py.txt``), or the ``exN_`` prefix with a ``.py`` suffix."""
    target = f"{module}.py".lower()
    prefix = module.split("_", 1)[0].lower() + "_"
    found = []
    for path in paths:
        lower = path.name.lower()
        if path.name == f"{module}.py" or lower.endswith(".pyc") or not _searchable(path.parts):
            continue
        if lower == target or lower.startswith(module.lower()) or (lower.startswith(prefix) and lower.endswith(".py")):
            found.append(path)
    return sorted(found)


def _missing(module: str, paths) -> str:
    """Why ``<module>.py`` is missing, naming near matches (never taken: the rule stays exact)."""
    name = f"{module}.py"
    near = _near_matches(module, paths)
    if not near:
        return f"missing: no {name} in the submission"
    listed = ", ".join(f'"{p}"' for p in near[:3]) + (f" (and {len(near) - 3} more)" if len(near) > 3 else "")
    return f"missing: found {listed}, not taken: rename {'it' if len(near) == 1 else 'one'} to {name}"


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


def collect(entry: Path, wanted: dict[str, str], caps: Caps = Caps()) -> Submission:
    """Take the files for ``wanted`` (exercise id -> module name) from one entry of the submissions folder."""
    sub = Submission(student=student_id(entry), entry=entry)
    kind = entry_kind(entry)
    try:
        if kind == "folder":
            _collect_folder(entry, wanted, caps, sub)
        elif kind == "zip":
            _collect_zip(entry, wanted, caps, sub)
        elif kind == "tar":
            _collect_tar(entry, wanted, caps, sub)
        else:
            raise SubmissionError("not a folder or a supported archive (.zip, .tar.gz, .tgz)")
    except SubmissionError as exc:
        sub.error = str(exc)
        sub.files.clear()
        return sub
    if not sub.found_any:
        sub.error = "no exercise files found (expected " + ", ".join(f"{m}.py" for m in wanted.values()) + ")"
    return sub


def _take(sub: Submission, ex: str, name: str, where: str, data: bytes, caps: Caps) -> None:
    sub.sources[name] = where
    problem = _check_content(name, data, caps)
    if problem:
        sub.problems[ex] = problem
    else:
        sub.files[name] = data


def _collect_folder(root: Path, wanted: dict[str, str], caps: Caps, sub: Submission) -> None:
    names = {f"{module}.py" for module in wanted.values()}
    found: dict[str, list[PurePosixPath]] = {n: [] for n in names}
    others: list[PurePosixPath] = []  # every other file within reach, for near matches
    stack = [(root, ())]
    while stack:
        folder, parts = stack.pop()
        try:
            children = list(os.scandir(folder))
        except OSError:
            continue
        for child in children:
            here = (*parts, child.name)
            if child.is_dir(follow_symlinks=False):
                if len(here) < MAX_DEPTH and _searchable((*here, "x")):
                    stack.append((Path(child.path), here))
            elif child.name in names and _searchable(here):
                found[child.name].append(PurePosixPath(*here))
            elif _searchable(here) and len(others) < 10_000:
                others.append(PurePosixPath(*here))
    for ex, module in wanted.items():
        name = f"{module}.py"
        chosen, problem = _choose(found[name])
        if chosen is None:
            sub.problems[ex] = problem or _missing(module, others)
            continue
        path = root.joinpath(*chosen.parts)
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            sub.sources[name] = str(chosen)
            sub.problems[ex] = f"{chosen} is a symlink or special file (refused)"
            continue
        if info.st_size > caps.max_file_bytes:
            sub.sources[name] = str(chosen)
            sub.problems[ex] = f"{name} is too large ({info.st_size:,} bytes, limit {caps.max_file_bytes:,})"
            continue
        with open(path, "rb") as f:
            data = f.read(caps.max_file_bytes + 1)
        _take(sub, ex, name, str(chosen), data, caps)


def _member_path(raw: str) -> PurePosixPath:
    """Check one archive member's name; refuse absolute paths and '..'."""
    name = raw.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise SubmissionError(f"unsafe archive member {raw!r}: absolute path (refused)")
    path = PurePosixPath(name)
    if ".." in path.parts:
        raise SubmissionError(f"unsafe archive member {raw!r}: path leaves the archive (refused)")
    return path


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


def _check_archive_file(path: Path, caps: Caps) -> None:
    size = path.stat().st_size
    if size > caps.max_archive_file_bytes:
        raise SubmissionError(f"archive too large ({_mb(size)}, limit {_mb(caps.max_archive_file_bytes)})")


def _select(members: dict[PurePosixPath, object], wanted: dict[str, str], sub: Submission):
    """Yield (ex, file name, path, member) for each exercise whose file the search rule picks."""
    for ex, module in wanted.items():
        name = f"{module}.py"
        paths = [p for p in members if p.name == name and _searchable(p.parts)]
        chosen, problem = _choose(paths)
        if chosen is None:
            sub.problems[ex] = problem or _missing(module, members)
            continue
        yield ex, name, chosen, members[chosen]


def _collect_zip(path: Path, wanted: dict[str, str], caps: Caps, sub: Submission) -> None:
    _check_archive_file(path, caps)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > caps.max_members:
                raise SubmissionError(f"archive has too many members ({len(infos):,}, limit {caps.max_members:,})")
            total = sum(i.file_size for i in infos)
            if total > caps.max_archive_bytes:
                raise SubmissionError(
                    f"archive too large when unpacked ({_mb(total)}, limit {_mb(caps.max_archive_bytes)})"
                )
            members: dict[PurePosixPath, zipfile.ZipInfo] = {}
            for info in infos:
                member = _member_path(info.filename)
                kind = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
                if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):  # 0: no type recorded, a plain file
                    what = "symlink" if kind == stat.S_IFLNK else "device or special file"
                    raise SubmissionError(f"unsafe archive member {info.filename!r}: {what} (refused)")
                if not info.is_dir():
                    members[member] = info
            for ex, name, chosen, info in _select(members, wanted, sub):
                if info.flag_bits & 0x1:
                    raise SubmissionError(f"archive member {info.filename!r} is encrypted")
                if info.file_size > caps.max_file_bytes:
                    sub.sources[name] = str(chosen)
                    sub.problems[ex] = f"{name} is too large ({info.file_size:,} bytes, limit {caps.max_file_bytes:,})"
                    continue
                with zf.open(info) as f:
                    data = f.read(caps.max_file_bytes + 1)
                _take(sub, ex, name, str(chosen), data, caps)
    except SubmissionError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, RuntimeError,
            NotImplementedError) as exc:
        raise SubmissionError(f"corrupt archive ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # zlib.error, lzma errors...: any failure to read is a corrupt archive
        raise SubmissionError(f"corrupt archive ({type(exc).__name__}: {exc})") from None


def _collect_tar(path: Path, wanted: dict[str, str], caps: Caps, sub: Submission) -> None:
    _check_archive_file(path, caps)
    try:
        with tarfile.open(path, "r:*") as tf:
            members: dict[PurePosixPath, tarfile.TarInfo] = {}
            count = total = 0
            # Headers are read one at a time, so a bomb is refused at the header that crosses a limit,
            # before its data is ever decompressed.
            while (info := tf.next()) is not None:
                count += 1
                total += max(info.size, 0)
                if count > caps.max_members:
                    raise SubmissionError(f"archive has too many members (more than {caps.max_members:,})")
                if total > caps.max_archive_bytes:
                    raise SubmissionError(
                        f"archive too large when unpacked (more than {_mb(caps.max_archive_bytes)})"
                    )
                member = _member_path(info.name)
                if info.issym() or info.islnk():
                    what = "symlink" if info.issym() else "hard link"
                    raise SubmissionError(f"unsafe archive member {info.name!r}: {what} (refused)")
                if not (info.isreg() or info.isdir()):
                    raise SubmissionError(f"unsafe archive member {info.name!r}: device or special file (refused)")
                if info.isreg():
                    members[member] = info
            for ex, name, chosen, info in _select(members, wanted, sub):
                if info.size > caps.max_file_bytes:
                    sub.sources[name] = str(chosen)
                    sub.problems[ex] = f"{name} is too large ({info.size:,} bytes, limit {caps.max_file_bytes:,})"
                    continue
                f = tf.extractfile(info)
                data = f.read(caps.max_file_bytes + 1) if f else b""
                _take(sub, ex, name, str(chosen), data, caps)
    except SubmissionError:
        raise
    except Exception as exc:  # tarfile.ReadError, EOFError, zlib.error, gzip.BadGzipFile, OSError...
        raise SubmissionError(f"corrupt archive ({type(exc).__name__}: {exc})") from None


# ----------------------------------------------------------------------------------------------------------
# Hashes and the sandbox
# ----------------------------------------------------------------------------------------------------------


def tests_digest(tests_dir: Path) -> str:
    """A hash of every file of the graded suites (visible and hidden), so a changed test re-grades everyone."""
    h = hashlib.sha256()
    for path in sorted(p for p in tests_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(tests_dir)
        if "__pycache__" in rel.parts or rel.suffix == ".pyc" or rel.parts[0] in (".pytest_cache", ".hypothesis"):
            continue
        h.update(str(rel.as_posix()).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


CODE_ROOT = Path(__file__).resolve().parent.parent  # the repository: llm_basics/ and grader/
CODE_PATTERNS = ("llm_basics/**/*.py", "grader/**/*.py", "grader/**/*.ini", "grader/**/*.json")


def code_digest(root: Path | None = None) -> str:
    """A hash of the grading code (``llm_basics/*.py``, ``grader/*.py``, ``*.ini``, ``*.json``), so that a fix
    to the library or the grader re-grades everyone."""
    root = Path(root or CODE_ROOT)
    h = hashlib.sha256()
    paths = sorted({p for pattern in CODE_PATTERNS for p in root.glob(pattern) if p.is_file()})
    for path in paths:
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def submission_hash(sub: Submission, *, tests: str, settings: dict, code: str | None = None) -> str:
    """A hash of what is graded: the taken files, what was refused and why, the tests, the grading code
    (``code_digest()`` unless given) and the limits."""
    h = hashlib.sha256()
    for name in sorted(sub.files):
        h.update(b"file\0" + name.encode() + b"\0" + hashlib.sha256(sub.files[name]).digest())
    h.update(json.dumps(sub.problems, sort_keys=True).encode())
    h.update(tests.encode())
    h.update(b"code\0" + (code if code is not None else code_digest()).encode())
    h.update(json.dumps(settings, sort_keys=True).encode())
    return "sha256:" + h.hexdigest()


def build_sandbox(root: Path, files: dict[str, bytes], tests_dir: Path) -> tuple[Path, Path]:
    """``root/exercises`` with the taken files and ``root/tests``, a fresh copy of the graded suites."""
    exercises = root / "exercises"
    exercises.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (exercises / name).write_bytes(data)
    tests = root / "tests"
    shutil.copytree(tests_dir, tests, ignore=TESTS_IGNORE, symlinks=False)
    return exercises, tests


# Names that exercise code has no honest use for: they reach into the grader, pytest or the process. A match is
# not proof of anything; the batch grader writes it into the gradebook so that a person reads the submission.
SUSPICIOUS = {
    "the grader": re.compile(r"\bgrader\b|_pytest|\bpytest\b|pluggy"),
    "sys.modules": re.compile(r"sys\.modules"),
    "/proc": re.compile(r"/proc/"),
    "raw file descriptors": re.compile(r"os\.(write|dup2?|fdopen)\b"),
    "other frames": re.compile(r"sys\._getframe|inspect\.(stack|currentframe)|gc\.get_(objects|referrers)"),
    "the test files": re.compile(r"\btests[/\\]|\btest_ex\d|points\.json"),
    "ctypes": re.compile(r"\bctypes\b"),
}


def suspicious(files: dict[str, bytes]) -> list[str]:
    """``["ex2_topk_attention.py: sys.modules, /proc"]`` for files that mention what exercise code never needs."""
    found = []
    for name, data in sorted(files.items()):
        text = data.decode("utf-8", errors="replace")
        hits = [label for label, pattern in SUSPICIOUS.items() if pattern.search(text)]
        if hits:
            found.append(f"{name}: {', '.join(hits)}")
    return found
