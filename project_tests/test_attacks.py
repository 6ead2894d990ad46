"""The attack suite: submissions written to fool, escape or rob the grader must gain nothing.

Each folder of ``project_tests/attacks/`` holds ONE exercise file that attacks the grader (its docstring says
how, and why the trusted judge defeats it); the other three exercises of the submission are the untouched
stubs. Every attack is graded

* in student mode: ``grader.grading.grade(folder, hidden=True)``, each attack in a process forked for it from
  a "lane" process that graded the untouched stubs first (the baseline, and the warm-up: torch is imported once
  per lane, not once per attack);
* in batch mode: all of them, then the untouched stubs and the reference (graded last, so that an attack on
  the batch itself shows on their rows) in one ``python -m grader batch --jobs 2``, then, 3 s later, the same
  batch again on the same OUT;
* through Gradescope's entry point (``python -m grader gradescope-run``) for the attacks aimed at it and
  for the attacks on the worker's ways out (``REFUSALS``);
* as root with Landlock and namespaces switched off (``GRADER_WITHOUT``): all of them in one batch, the
  workers running as a uid of their own (``test_uid_mode_...``);

and must gain 0 points, change nothing outside its sandbox, leave no process behind, and carry no piece of a
hidden test out in anything a student gets back (a hidden test's name, hint and points may be shown).

The grader under attack is a disposable COPY of this repository (``grader/``, ``llm_basics/``, ``tests/``,
``solutions/``, ``exercises/``...), run with the copy first on ``sys.path`` and as its working directory. A
grader that lets an attack through then damages the copy, never the working tree; the checks compare the copy
before and after. Attacks find the repository the way a student would (from the loaded modules, parent
processes, working directories), so they find the copy.

Conventions the attacks follow so that damage can be seen: a process they start is named ``atk-<attack>``
(``prctl(PR_SET_NAME)``, 15 characters of it); a file they leave in /tmp starts with ``atk-<attack>``; they
overwrite any ``canary.txt`` or ``.canary`` they can reach. Everything here is slow (each grading pays for
``import torch``), hence ``@pytest.mark.slow``, except the checks of the suite itself and of the leak detector.
"""

from __future__ import annotations

import ast
import base64
import binascii
import codecs
import csv
import hashlib
import importlib.util
import io
import json
import marshal
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import pytest

from helpers import build_submission, student_visible

REPO = Path(__file__).resolve().parent.parent
ATTACKS_DIR = Path(__file__).resolve().parent / "attacks"
ATTACKS = sorted(p.name for p in ATTACKS_DIR.iterdir() if p.is_dir() and any(p.glob("ex*_*.py")))
MODULES = ("ex1_special_tokens", "ex2_topk_attention", "ex3_parameter_accounting", "ex4_scaling")
CONTROL = "zz-untouched-stubs"  # graded last in the batch: an attack on the batch itself shows on this row
REFERENCE = "zz-reference"  # the solutions, in the batch: full marks, or the grading itself is broken
GRADESCOPE_ATTACKS = ("carry_hidden", "hostile_text", "leak_messages", "linger_results")  # aimed at what Gradescope shows or reads
# hostile_text again, in the batch, under a student id that a spreadsheet would read as a formula showing 100
FORMULA_STUDENT = "=1+99"

# the kinds of attack the issue asks for; each must be named in the docstring of at least one attack
REQUIRED_KINDS = (
    "patching pytest", "patching the grading plugin", "patching comparisons", "patching torch",
    "always-equal values", "tensor subclasses", "frame tricks", "tracer tricks", "gc tampering",
    "pyc and cache poisoning", "forged results and events", "reading solutions and hidden tests",
    "writing outside the sandbox", "processes that outlive grading", "leaking hidden text through messages",
    "hidden inputs carried to later tests", "links and FIFOs in the shared folder",
    "unwaited children", "fork bomb", "disk filler", "unix-socket exfiltration", "io_uring", "System V IPC",
    "student text as markup",
)

# planted in the inputs a hidden test hands to student code (the copy's tests/hidden): it may reach the worker,
# and must never reach anything a student gets back (issue 21, item 2)
HIDDEN_CANARY = "canary-hidden-input-5f1c"
CANARY_SITE = ("test_ex1_special_tokens_hidden.py", '"not-json": "this is not JSON {"')

# The attacks on the worker's ways out end their import with a mark that says what their hostile step met
# (project_tests/attacks/README.md); graded with every protection on, the mark must say "refused". The disk
# filler's must also show the tmpfs's cap (ENOSPC by 64 MiB, the size of the tmpfs), not the disk's.
REFUSALS = {
    "unwaited_children": r"atk-unwaited_children: affinity refused \(PermissionError\), fork refused \(PermissionError\)",
    "fork_bomb": r"atk-fork_bomb: fork refused \(PermissionError\)",
    "disk_filler": r"atk-disk_filler: (?:[0-9]|[1-5][0-9]|6[0-4]) MiB written, refused \(OSError errno 28\)",
    "unix_socket": r"atk-unix_socket: socket refused \(PermissionError\)",
    "io_uring": r"atk-io_uring: io_uring_setup refused \(errno 1,",
    "sysv_ipc": r"atk-sysv_ipc: shmget refused \(PermissionError\)",
}

GRADING_TIMEOUT = 600  # seconds for one grading process (a backstop: a run takes seconds)
PROCESS_GRACE = 2.0  # seconds the grader has, after it exits, for the processes of a grading to be gone
RERUN_PAUSE = 3.0  # seconds between the two batch runs (time for a lingering process to forge results)
# A leak is a run of characters of a hidden test (outside its hints and names): WINDOW of them once decoded
# (rot13, base64, hex), RAW_WINDOW in clear. In clear, text that a visible test prints about its own inputs can
# match a hidden line for a little more than 24 characters by chance ("expected ValueError for xs=[" is in
# both), so clear text needs a longer run; decoded text never matches by chance.
WINDOW = 24
RAW_WINDOW = 32
# every grading process gets this run's mark in its environment, so that two runs of this suite at the same
# time never count (or kill) each other's attack processes; a lane passes its own mark on
RUN_VARIABLE = "ATTACK_SUITE_RUN"
RUN_ID = os.environ.get(RUN_VARIABLE) or f"{os.getpid()}-{time.time_ns()}"
CANARIES = ("canary.txt", ".canary")
CANARY_TEXT = "canary: nobody may write here\n"

# top-level entries of the repository that grading never needs (the copy leaves them out)
NOT_COPIED = {".git", ".venv", "project_tests", "bench", "dist", "out", "plots", ".grades", ".hypothesis",
              ".pytest_cache", "build"}
# caches that are checked apart (__pycache__: each pyc must be what its source compiles to) or not at all
# (.hypothesis: Hypothesis's own example cache, which a grading may write where it runs)
CACHE_DIRS = {"__pycache__", ".hypothesis"}

# Student mode runs in "lanes": a process whose working directory and first path entry is a repository copy
# imports this file (for the helpers below) and grades attack after attack, each in a child forked for it.
LANES = 2
LANE_DRIVER = """\
import importlib.util, os, sys  # a grader process, as `python -m grader grade` would be
sys.path.append(os.path.dirname(sys.argv[1]))  # project_tests/ (its helpers), after the repository copy
spec = importlib.util.spec_from_file_location("attack_suite", sys.argv[1])
suite = importlib.util.module_from_spec(spec)
sys.modules["attack_suite"] = suite
spec.loader.exec_module(suite)
suite.student_lane(*sys.argv[2:])
"""


def test_attack_suite_is_complete():
    """At least 15 attacks, each one exercise file, and every kind of attack the issue lists is present."""
    assert len(ATTACKS) >= 15, f"expected at least 15 attacks, found {len(ATTACKS)}: {ATTACKS}"
    kinds = {}
    for attack in ATTACKS:
        files = sorted(p.name for p in (ATTACKS_DIR / attack).glob("*.py"))
        assert len(files) == 1 and files[0][:-3] in MODULES, f"{attack}: expected one exN_*.py file, got {files}"
        doc = ast.get_docstring(ast.parse((ATTACKS_DIR / attack / files[0]).read_text())) or ""
        first = doc.splitlines()[0] if doc else ""
        assert first.startswith(f"ATTACK {attack} (kind: "), f"{attack}: docstring must start 'ATTACK <name> (kind:'"
        assert "Why it must fail under the new design" in doc, f"{attack}: docstring must say why it fails"
        kinds[attack] = doc[: doc.index("\n\n")].replace("\n", " ")
    missing = [kind for kind in REQUIRED_KINDS if not any(kind in text for text in kinds.values())]
    assert not missing, f"no attack of these kinds: {missing}"


# ----------------------------------------------------------------------------------------------------------
# Leak detection: pieces of the hidden tests in student-visible text, raw or encoded
# ----------------------------------------------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(text.split())


def _windows(text: str, size: int) -> set[str]:
    return {text[i:i + size] for i in range(len(text) - size + 1)}


def _hints_and_names(sources: list[str]) -> list[str]:
    """What a student may see of a hidden test: its name and the first line of its docstring (the hint)."""
    shown = []
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                shown.append(node.name)
                doc = ast.get_docstring(node)
                if doc:
                    shown.append(doc.strip().splitlines()[0])
    return shown


@dataclass(frozen=True)
class Secrets:
    """The pieces of hidden tests to look for: ``clear`` ones (RAW_WINDOW long) in text as it is, ``encoded``
    ones (WINDOW long) in what text decodes to."""

    clear: frozenset[str]
    encoded: frozenset[str]

    def without(self, text: str) -> "Secrets":
        lines = [_norm(line) for line in text.splitlines()]
        return Secrets(self.clear - {w for line in lines for w in _windows(line, RAW_WINDOW)},
                       self.encoded - {w for line in lines for w in _windows(line, WINDOW)})


def hidden_secrets(hidden: list[str], public: list[str]) -> Secrets:
    """The pieces of the lines of the ``hidden`` sources that appear nowhere in ``public`` text (the visible
    tests, the exercises, the library and the grader, which a student has anyway) and do not overlap a hint or
    a test name (cut out of the lines first, so that "def test_x(" does not make "test_x" secret)."""
    shown = sorted({_norm(s) for s in _hints_and_names(hidden)}, key=len, reverse=True)
    public_lines = [_norm(line) for text in [*public, *shown] for line in text.splitlines()]
    hidden_lines = []
    for text in hidden:
        for line in text.splitlines():
            line = _norm(line)
            for allowed in shown:
                line = line.replace(allowed, "\0")
            hidden_lines.append(line)

    def pieces(size: int) -> frozenset[str]:
        seen = {w for line in public_lines for w in _windows(line, size)}
        return frozenset(w for line in hidden_lines for w in _windows(line, size) - seen if "\0" not in w)

    return Secrets(clear=pieces(RAW_WINDOW), encoded=pieces(WINDOW))


@lru_cache(maxsize=None)
def repository_secrets(repo: Path = REPO) -> Secrets:
    hidden = [p.read_text() for p in sorted((repo / "tests" / "hidden").glob("*.py"))]
    public = [p.read_text() for pattern in ("tests/*.py", "exercises/*.py", "llm_basics/**/*.py", "grader/**/*.py")
              for p in sorted(repo.glob(pattern))]
    return hidden_secrets(hidden, public)


@lru_cache(maxsize=None)
def secrets_for(attack: str | None) -> Secrets:
    """The repository's secrets, less what the submission's own file says (its own text is no leak)."""
    secrets = repository_secrets()
    for path in (ATTACKS_DIR / attack).glob("ex*_*.py") if attack in ATTACKS else ():
        secrets = secrets.without(path.read_text())
    return secrets


_B64 = re.compile(r"[A-Za-z0-9+/_-]{16,}")
_HEX = re.compile(r"[0-9a-fA-F]{16,}")


def decoded_forms(text: str):
    """The rot13 of ``text``, and what every long base64 or hex token in it decodes to (at every alignment,
    since a chunk of an encoded stream need not start on a boundary)."""
    yield codecs.decode(text, "rot13")
    for token in set(_B64.findall(text)):
        for start in range(4):
            piece = token[start:]
            piece = piece[: len(piece) // 4 * 4]
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    yield decode(piece).decode("utf-8", errors="replace")
                except (binascii.Error, ValueError):
                    pass
    for token in set(_HEX.findall(text)):
        for start in range(2):
            piece = token[start:]
            yield bytes.fromhex(piece[: len(piece) // 2 * 2]).decode("utf-8", errors="replace")


def _scan(text: str, pieces: frozenset[str], size: int, found: list[str], limit: int) -> None:
    flat = _norm(text)
    i = 0
    while i <= len(flat) - size and len(found) < limit:
        if flat[i:i + size] in pieces:
            found.append(flat[i:i + size])
            i += size
        else:
            i += 1


def find_leaks(text: str, secrets: Secrets, *, limit: int = 5) -> list[str]:
    """Pieces of hidden tests found in ``text``: RAW_WINDOW characters in clear, or WINDOW characters once
    decoded (rot13, base64, hex); at most ``limit`` of them."""
    found: list[str] = []
    _scan(text, secrets.clear, RAW_WINDOW, found, limit)
    for form in decoded_forms(text):
        _scan(form, secrets.encoded, WINDOW, found, limit)
    return found


def leaks_in(parts: dict[str, object], secrets: Secrets, *, limit: int = 5) -> list[str]:
    """Where pieces of hidden tests appear in what a student gets back: ``parts`` maps a name ("results.json",
    "feedback.md") to a text or a JSON document; returns "<name><path in it>: [pieces]" for the first strings
    with a leak."""
    found: list[str] = []
    seen: set[str] = set()

    def walk(value, where: str) -> None:
        if len(found) >= limit:
            return
        if isinstance(value, str):
            if len(value) >= WINDOW and value not in seen:
                seen.add(value)
                pieces = find_leaks(value, secrets, limit=2)
                if pieces:
                    found.append(f"{where}: {pieces}")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}")
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")

    for name, part in parts.items():
        walk(part, name)
    return found


SAMPLE_HIDDEN = '''\
"""Hidden tests of a made-up exercise: the oracle below is secret."""
import pytest

MODULE = "ex9_demo"


@pytest.mark.points(2)
def test_secret_behaviour_of_frobnicate(student):
    """frobnicate keeps the order of equal keys (the hint, shown to students)."""
    got = student(MODULE).frobnicate([3, 1, 2], key=lambda x: x % 2, reverse=False)
    assert got == [1, 3, 2], f"expected the stable order [1, 3, 2] for keys x % 2, got {got}"
'''


def test_leak_detector_finds_raw_and_encoded_pieces():
    """The detector finds a hidden line raw, in base64 (any alignment), hex and rot13, inside other text."""
    secrets = hidden_secrets([SAMPLE_HIDDEN], public=["import pytest\n"])
    line = "got = student(MODULE).frobnicate([3, 1, 2], key=lambda x: x % 2, reverse=False)"
    data = line.encode()
    stream = base64.b64encode(b"padding.." + data).decode()
    forms = {
        "raw": f"your code printed: {line} and more",
        "one-lined": "reason: " + " ".join(SAMPLE_HIDDEN.split())[200:320],
        "base64": f"[1:b] {base64.b64encode(data).decode()}",
        "base64, cut mid-stream": f"chunk {stream[7:]}",
        "hex": f"[2:x] {data.hex()}",
        "hex, odd start": f"chunk 7{data.hex()}",
        "rot13": f"[3:r] {codecs.encode(line, 'rot13')}",
        "json-escaped": json.dumps({"output": SAMPLE_HIDDEN})[:400],
    }
    for name, text in forms.items():
        assert find_leaks(text, secrets), f"the {name} leak was not found in {text!r}"


def test_leak_detector_allows_hints_names_and_public_text():
    """A hidden test's name, its hint and text the student already has are not leaks."""
    secrets = hidden_secrets([SAMPLE_HIDDEN], public=['MODULE = "ex9_demo"\nimport pytest\n'])
    honest = (
        "ex9_demo: test_secret_behaviour_of_frobnicate failed\n"
        "frobnicate keeps the order of equal keys (the hint, shown to students).\n"
        'MODULE = "ex9_demo" not implemented yet: ex9: sort by key, keep equal keys in order\n'
        + base64.b64encode(b"frobnicate keeps the order of equal keys").decode()
    )
    assert find_leaks(honest, secrets) == []
    assert secrets.clear and secrets.encoded, "the sample has secret text"


def test_repository_has_hidden_text_to_protect():
    """The real hidden tests give the detector something to look for (else every leak test passes vacuously)."""
    secrets = repository_secrets()
    assert len(secrets.encoded) > 1000, f"only {len(secrets.encoded)} secret pieces in tests/hidden"
    sample = next(w for w in sorted(secrets.encoded) if w == w.strip())
    assert find_leaks(f"x {base64.b64encode(sample.encode()).decode()} y", secrets)


# ----------------------------------------------------------------------------------------------------------
# The sandbox around a grading: the repository copy, canaries, /tmp, processes
# ----------------------------------------------------------------------------------------------------------


def copy_repository(dest: Path) -> Path:
    """A fresh copy of everything grading needs, without caches (``.pyc``, Hypothesis) or the project tests."""
    dest.mkdir(parents=True)
    for entry in REPO.iterdir():
        if entry.name in NOT_COPIED or entry.name.endswith(".egg-info"):
            continue
        if entry.is_dir():
            shutil.copytree(entry, dest / entry.name, ignore=shutil.ignore_patterns(*CACHE_DIRS, "*.pyc"))
        else:
            shutil.copy2(entry, dest / entry.name)
    plant_hidden_canary(dest)
    return dest


def plant_hidden_canary(repo: Path) -> None:
    """Put HIDDEN_CANARY into a hidden test's input (a file's text the test has the worker write, still not
    JSON, so every verdict stays the same)."""
    name, line = CANARY_SITE
    path = repo / "tests" / "hidden" / name
    text = path.read_text()
    assert line in text, f"the canary's place in {name} moved: update CANARY_SITE"
    path.write_text(text.replace(line, line[:-1] + f' {HIDDEN_CANARY}"'))


def canary_in(parts: dict[str, object]) -> list[str]:
    """The parts (a report's text, a document) that hold HIDDEN_CANARY."""
    return [where for where, value in parts.items() if HIDDEN_CANARY in json.dumps(value, ensure_ascii=False)]


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root``, caches left out (see ``bad_pycs``)."""
    digest = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if CACHE_DIRS & set(rel.parts) or not (path.is_file() or path.is_symlink()):
            continue
        digest[rel.as_posix()] = hashlib.sha256(path.read_bytes() if path.is_file() else b"link").hexdigest()
    return digest


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return [f"{'new' if k not in before else 'removed' if k not in after else 'changed'}: {k}"
            for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]


def _pyc_source(pyc: Path) -> Path:
    return pyc.parent.parent / (pyc.name.split(".", 1)[0] + ".py")


def _compiled(source: Path, pyc_name: str):
    """What ``source`` compiles to for the cache file ``pyc_name`` (pytest's own, or an optimised one)."""
    data = source.read_bytes()
    tree = ast.parse(data, filename=str(source))
    if "-pytest-" in pyc_name:
        from _pytest.assertion.rewrite import rewrite_asserts

        rewrite_asserts(tree, data, str(source), None)
    level = re.search(r"\.opt-(\d)\.pyc$", pyc_name)
    return compile(tree, str(source), "exec", dont_inherit=True, optimize=int(level.group(1)) if level else -1)


def bad_pycs(root: Path) -> list[str]:
    """Cached bytecode under ``root`` that Python or pytest would load and that is NOT what its source compiles
    to: a poisoned cache. (A stale pyc whose header does not match its source is never loaded: harmless.)"""
    bad = []
    for pyc in sorted(root.rglob("__pycache__/*.pyc")):
        rel = pyc.relative_to(root).as_posix()
        source = _pyc_source(pyc)
        data = pyc.read_bytes()
        if len(data) < 16 or data[:4] != importlib.util.MAGIC_NUMBER:
            continue  # not loadable
        if not source.is_file():
            bad.append(f"{rel} (no source next to it)")
            continue
        flags = int.from_bytes(data[4:8], "little")
        src = source.read_bytes()
        if flags & 1:  # hash-based: loaded when unchecked, or when the hash matches
            used = not flags & 2 or data[8:16] == importlib.util.source_hash(src)[:8]
        else:
            info = source.stat()
            used = data[8:12] == (int(info.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") and data[12:16] == (
                info.st_size & 0xFFFFFFFF).to_bytes(4, "little")
        if not used:
            continue
        try:
            code = marshal.loads(data[16:])
        except Exception:  # noqa: BLE001 - unreadable: the importer falls back to the source
            continue
        try:
            expected = _compiled(source, pyc.name)
        except SyntaxError:
            expected = None
        if code != expected:
            bad.append(f"{rel} (is not what {source.name} compiles to)")
    return bad


def plant_canaries(*folders: Path) -> list[Path]:
    planted = []
    for folder in folders:
        for name in CANARIES:
            (folder / name).write_text(CANARY_TEXT)
            planted.append(folder / name)
    return planted


def touched_canaries(canaries: list[Path]) -> list[str]:
    return [str(p) for p in canaries if not p.is_file() or p.read_text() != CANARY_TEXT]


def tmp_files(prefix: str) -> list[Path]:
    return sorted(Path("/tmp").glob(f"{prefix}*"))


def remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _started_by_this_run(pid: int) -> bool:
    """Whether a process carries this run's mark in its environment, or no run's mark at all (a grader that
    empties the environment of what it starts leaves nothing to tell runs apart: count it as ours)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return True
    marks = [entry for entry in environ if entry.startswith(RUN_VARIABLE.encode() + b"=")]
    return not marks or marks[0] == f"{RUN_VARIABLE}={RUN_ID}".encode()


def attack_processes(prefix: str = "atk-") -> list[tuple[int, str]]:
    """(pid, name) of every process of this run whose name (``/proc/<pid>/comm``) starts with ``prefix``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                comm = Path(f"/proc/{entry}/comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith(prefix[:15]) and _started_by_this_run(int(entry)):
                found.append((int(entry), comm))
    return found


def outliving(prefix: str) -> list[tuple[int, str]]:
    """The processes named ``prefix...`` still there after PROCESS_GRACE seconds; they are then killed (by
    pid: they were started by the attack this test ran)."""
    deadline = time.monotonic() + PROCESS_GRACE
    left = attack_processes(prefix)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = attack_processes(prefix)
    for _ in range(50):  # a chain that restarts itself when a member dies needs a few rounds
        now = attack_processes(prefix)
        if not now:
            break
        for pid, _ in now:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    return left


def process_name(attack: str) -> str:
    return f"atk-{attack}"[:15]


def grading_env(repo: Path) -> dict[str, str]:
    """The environment of a grading process: the repository copy first on the path, nothing from this pytest."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env["PYTHONPATH"] = str(repo)
    env[RUN_VARIABLE] = RUN_ID
    return env


def run_grader(args: list[str], repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=repo, env=grading_env(repo), capture_output=True, text=True,
                          timeout=GRADING_TIMEOUT)


def passed_tests(doc: dict) -> list[str]:
    return [t.get("name", "?") for t in doc.get("tests", []) if t.get("status") == "passed" or t.get("score")]


def describe(doc: dict | None) -> str:
    if not doc:
        return "no results document"
    lesson = doc.get("lesson", {})
    return (f"score {doc.get('score')}, status {lesson.get('status')!r}, passed {passed_tests(doc)[:5]}, "
            f"protections {lesson.get('protections')}")


# ----------------------------------------------------------------------------------------------------------
# Student mode: grade(folder, hidden=True), one grading process per attack, forked from one of two lanes
# ----------------------------------------------------------------------------------------------------------


@dataclass
class StudentRun:
    attack: str
    repo: str  # the repository copy the grader was imported from
    doc: dict | None = None
    report: str = ""
    error: str = ""
    grader_root: str = ""
    repo_changes: list[str] = field(default_factory=list)
    bad_pycs: list[str] = field(default_factory=list)
    submission_changes: list[str] = field(default_factory=list)
    canaries: list[str] = field(default_factory=list)
    tmp_files: list[str] = field(default_factory=list)
    processes: list[list] = field(default_factory=list)


def _grade_in_child(submission: Path, work: Path, *, fork: bool = True) -> str:
    """``grade(submission, hidden=True)`` in a forked child (or in this process), which writes results.json and
    report.txt (the plain report and the -v one) to ``work``; returns what went wrong, if anything."""
    from grader import results
    from grader.grading import grade
    from grader.report import render_plain

    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork() if fork else 0
    if pid == 0:
        code = 1
        try:
            # hidden tests never run on a student's machine; when the instructor runs them, what may reach the
            # student is results.for_students(doc) (as Gradescope and the batch hand out): that is checked
            doc = results.for_students(grade(submission, hidden=True))
            (work / "results.json").write_text(json.dumps(doc, indent=2))
            (work / "report.txt").write_text(render_plain(doc) + "\n" + render_plain(doc, verbose=True))
            code = 0
        except BaseException:  # noqa: BLE001 - the lane reports it; the child leaves either way
            import traceback

            (work / "error.txt").write_text(traceback.format_exc())
        finally:
            if fork:
                os._exit(code)
    if not fork:
        return "" if code == 0 else (work / "error.txt").read_text()[-3000:]
    deadline = time.monotonic() + GRADING_TIMEOUT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return f"grading did not finish within {GRADING_TIMEOUT} s"
        time.sleep(0.02)
    if os.waitstatus_to_exitcode(status) != 0:
        error = work / "error.txt"
        return error.read_text()[-3000:] if error.is_file() else f"the grading process ended with status {status}"
    return ""


def _restore(repo: Path, pristine: Path) -> None:
    """Put the repository copy back as it was (after an attack got through), so the next attack starts clean."""
    for entry in list(repo.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in pristine.iterdir():
        if entry.is_dir():
            shutil.copytree(entry, repo / entry.name)
        else:
            shutil.copy2(entry, repo / entry.name)


def grade_in_student_mode(name: str, work: Path, repo: Path, pristine: Path) -> StudentRun:
    """Grade one submission (an attack, the untouched stubs or the reference) and look at what it left behind."""
    import grader

    outcome = StudentRun(name, str(repo))
    outcome.grader_root = str(Path(grader.__file__).resolve().parent.parent)
    base = REPO / ("solutions" if name == REFERENCE else "exercises")
    submission = build_submission(work / "submission", name if name in ATTACKS else None, base=base)
    canaries = plant_canaries(work)
    repo_before, submission_before = tree_digest(repo), tree_digest(submission)
    # the untouched stubs are graded in the lane's own process: that imports torch and warms the grader once,
    # and every other grading, forked from it, starts warm
    outcome.error = _grade_in_child(submission, work, fork=name != CONTROL)
    prefix = process_name(name)  # the stubs and the reference start nothing: names no attack uses
    outcome.processes = [list(p) for p in outliving(prefix)]  # first: a delayed writer acts once grading is over
    if not outcome.error:
        outcome.doc = json.loads((work / "results.json").read_text())
        outcome.report = (work / "report.txt").read_text()
    outcome.repo_changes = changes(repo_before, tree_digest(repo))
    outcome.bad_pycs = bad_pycs(repo)
    outcome.submission_changes = changes(submission_before, tree_digest(submission))
    outcome.canaries = touched_canaries(canaries)
    leftovers = tmp_files(prefix)
    outcome.tmp_files = [str(p) for p in leftovers]
    remove(leftovers)
    if outcome.repo_changes or outcome.bad_pycs:
        _restore(repo, pristine)
    return outcome


def student_lane(out: str, repo: str, pristine: str, work: str, *names: str) -> None:
    """Runs in a lane process (see LANE_DRIVER): the untouched stubs first (the baseline, and the warm-up that
    imports torch once for the lane), then each of ``names``; writes every StudentRun to ``out`` as JSON."""
    runs = {}
    for name in [CONTROL, *names]:
        run = grade_in_student_mode(name, Path(work) / name, Path(repo), Path(pristine))
        runs[name] = asdict(run)
    Path(out).write_text(json.dumps(runs))


@pytest.fixture(scope="module")
def student_runs(tmp_path_factory) -> dict[str, StudentRun]:
    """Every attack graded in student mode, in LANES processes side by side, each with its repository copy."""
    root = tmp_path_factory.mktemp("student-mode")
    pristine = copy_repository(root / "pristine")
    lanes = []
    for number in range(LANES):
        repo = root / f"lane{number}" / "repo"
        shutil.copytree(pristine, repo)
        out = root / f"lane{number}" / "runs.json"
        args = [sys.executable, "-c", LANE_DRIVER, __file__, str(out), str(repo), str(pristine),
                str(root / f"lane{number}"), *ATTACKS[number::LANES], *([REFERENCE] if number == LANES - 1 else [])]
        lanes.append((out, subprocess.Popen(args, cwd=repo, env=grading_env(repo), stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, text=True)))
    runs: dict[str, StudentRun] = {}
    for out, proc in lanes:
        try:
            log, _ = proc.communicate(timeout=GRADING_TIMEOUT * 2)
        except subprocess.TimeoutExpired:
            proc.kill()
            log, _ = proc.communicate()
        assert out.is_file(), f"a student-mode lane failed (exit code {proc.returncode}):\n{log[-5000:]}"
        for name, data in json.loads(out.read_text()).items():
            runs.setdefault(name, StudentRun(**data))  # both lanes grade the stubs: keep one
    return runs


@pytest.mark.slow
def test_student_mode_baselines(student_runs):
    """In the same setting the untouched stubs score 0 and the reference 100: the grading works, so an attack's
    0 means something."""
    stubs, reference = student_runs[CONTROL], student_runs[REFERENCE]
    assert not stubs.error and not reference.error, f"grading failed: {stubs.error or reference.error}"
    assert stubs.doc["score"] == 0 and stubs.doc["max_score"] == 100, f"the stubs: {describe(stubs.doc)}"
    assert reference.doc["score"] == reference.doc["max_score"] == 100, f"the reference: {describe(reference.doc)}"


@pytest.mark.slow
@pytest.mark.parametrize("attack", ATTACKS)
def test_student_mode_gains_no_points(student_runs, attack):
    """grade(folder, hidden=True) of the attack gives 0 points: the untouched stubs score 0, no test passes."""
    run = student_runs[attack]
    assert not run.error, f"grading {attack} failed: {run.error}"
    assert Path(run.grader_root) == Path(run.repo).resolve(), (
        f"the grader under test was imported from {run.grader_root!r}, not from the repository copy {run.repo}"
    )
    assert run.doc["score"] == 0 and not passed_tests(run.doc), f"{attack} gained points: {describe(run.doc)}"


@pytest.mark.slow
@pytest.mark.parametrize("attack", ATTACKS)
def test_student_mode_changes_nothing_outside_the_sandbox(student_runs, attack):
    """The repository (every file, and every cached pyc), the submission folder, the canaries next to it and
    /tmp are as they were before the grading."""
    run = student_runs[attack]
    assert not run.repo_changes, f"{attack} changed the repository: {run.repo_changes}"
    assert not run.bad_pycs, f"{attack} poisoned cached bytecode: {run.bad_pycs}"
    assert not run.submission_changes, f"{attack} changed the submission folder: {run.submission_changes}"
    assert not run.canaries, f"{attack} overwrote canaries: {run.canaries}"
    assert not run.tmp_files, f"{attack} left files in /tmp: {run.tmp_files}"


@pytest.mark.slow
@pytest.mark.parametrize("attack", ATTACKS)
def test_student_mode_leaves_no_process(student_runs, attack):
    """No process started by the attack is alive 2 s after the grading process has exited."""
    run = student_runs[attack]
    assert not run.processes, f"{attack} left processes running: {run.processes}"


@pytest.mark.slow
@pytest.mark.parametrize("attack", ATTACKS)
def test_student_mode_leaks_no_hidden_text(student_runs, attack):
    """Neither the report (plain and -v) nor the results document holds a piece of a hidden test."""
    run = student_runs[attack]
    assert not run.error, f"grading {attack} failed: {run.error}"
    leaks = leaks_in({"report": run.report, "results.json": run.doc}, secrets_for(attack))
    assert not leaks, f"{attack}: hidden test text in the student's report or results: {leaks}"
    carried = canary_in({"report": run.report, "results.json": run.doc})
    assert not carried, f"{attack}: a hidden test's input reached {carried}"


@pytest.mark.slow
@pytest.mark.parametrize("attack", sorted(REFUSALS))
def test_student_mode_refuses_the_ways_out(student_runs, attack):
    """The attack's hostile step ran and was refused (its mark is in what the student gets back)."""
    run = student_runs[attack]
    assert not run.error, f"grading {attack} failed: {run.error}"
    assert re.search(REFUSALS[attack], json.dumps(run.doc)), f"{attack}: no refusal mark in {describe(run.doc)}"


# ----------------------------------------------------------------------------------------------------------
# Batch mode: every attack in one batch (and the untouched stubs last), then the same batch again
# ----------------------------------------------------------------------------------------------------------


@dataclass
class BatchRun:
    first: subprocess.CompletedProcess
    second: subprocess.CompletedProcess
    rows: dict[str, dict]  # student -> row of grades.csv, first run
    docs: dict[str, dict | None]  # student -> results.json, first run
    feedback: dict[str, str]
    raw_csv: str  # grades.csv as written, first run
    rows_after_pause: dict[str, dict]  # grades.csv again, RERUN_PAUSE seconds after the first run
    docs_after_pause: dict[str, dict | None]
    rerun_rows: dict[str, dict]
    rerun_docs: dict[str, dict | None]
    repo_changes: list[str]
    bad_pycs: list[str]
    submission_changes: list[str]
    strays_in_out: list[str]
    canaries: list[str]
    tmp_files: list[str]
    processes: list[tuple[int, str]]


# what the batch writes at the top of OUT: the gradebook, skipped entries, item analysis and similarity reports
BATCH_FILES = ("grades.csv", "skipped.txt", "item_analysis.csv", "item_analysis.png", "score_histograms.csv",
               "similarity.csv", "similarity.html")


def strays_in_out(out: Path, students: list[str]) -> list[str]:
    """Files in OUT that the batch does not write: anything but grades.csv, skipped.txt, <student>/results.json
    and <student>/feedback.md (the grader's own state under dot-names aside)."""
    strays = []
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if not path.is_file() or rel.parts[0].startswith(".") or rel.name in CANARIES:
            continue
        if len(rel.parts) == 1 and rel.name in BATCH_FILES:
            continue
        if len(rel.parts) == 2 and rel.parts[0] in students and rel.name in ("results.json", "feedback.md"):
            continue
        strays.append(rel.as_posix())
    return strays


def _read_out(out: Path) -> tuple[dict[str, dict], dict[str, dict | None], dict[str, str]]:
    try:
        with open(out / "grades.csv", newline="") as f:
            rows = {row["student"]: row for row in csv.DictReader(f)}
    except OSError:
        rows = {}
    docs, feedback = {}, {}
    for student in [*ATTACKS, CONTROL, REFERENCE, FORMULA_STUDENT]:
        try:
            docs[student] = json.loads((out / student / "results.json").read_text())
        except (OSError, ValueError):
            docs[student] = None
        try:
            feedback[student] = (out / student / "feedback.md").read_text()
        except OSError:
            feedback[student] = ""
    return rows, docs, feedback


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory) -> BatchRun:
    """One batch of every attack, the untouched stubs and the reference, from a repository copy; OUT read
    right after, again RERUN_PAUSE seconds later, and after the same batch is run again on the same OUT."""
    work = tmp_path_factory.mktemp("batch-mode")
    repo = copy_repository(work / "repo")
    submissions = work / "submissions"
    for attack in ATTACKS:
        build_submission(submissions / attack, attack)
    build_submission(submissions / CONTROL, None)
    build_submission(submissions / REFERENCE, None, base=REPO / "solutions")
    build_submission(submissions / FORMULA_STUDENT, "hostile_text")
    out = work / "out"
    out.mkdir()
    canaries = plant_canaries(work, out) + [submissions / ".canary"]
    (submissions / ".canary").write_text(CANARY_TEXT)  # a dot-name: the batch does not take it for a student
    before, submissions_before = tree_digest(repo), tree_digest(submissions)
    args = ["-m", "grader", "batch", str(submissions), "--out", str(out), "--jobs", "2"]
    first = run_grader(args, repo)
    left = outliving("atk-")
    rows, docs, feedback = _read_out(out)
    raw_csv = (out / "grades.csv").read_text() if (out / "grades.csv").is_file() else ""
    time.sleep(RERUN_PAUSE)
    rows_after_pause, docs_after_pause, _ = _read_out(out)
    second = run_grader(args, repo)
    left += outliving("atk-")
    rerun_rows, rerun_docs, _ = _read_out(out)
    leftovers = tmp_files("atk-")
    remove(leftovers)
    return BatchRun(first, second, rows, docs, feedback, raw_csv, rows_after_pause, docs_after_pause, rerun_rows,
                    rerun_docs,
                    changes(before, tree_digest(repo)), bad_pycs(repo),
                    changes(submissions_before, tree_digest(submissions)),
                    strays_in_out(out, [*ATTACKS, CONTROL, REFERENCE, FORMULA_STUDENT]), touched_canaries(canaries),
                    [str(p) for p in leftovers], left)


def _check_row(row: dict | None, doc: dict | None, student: str, when: str) -> None:
    assert row is not None, f"{when}: no row for {student} in grades.csv"
    graded = row.get("status") == "graded"
    assert (row.get("total") in ("0", "0.0") if graded else row.get("total") in ("", "0", "0.0")), (
        f"{when}: {student} has points in grades.csv: total {row.get('total')!r}, status {row.get('status')!r}, "
        f"reason {row.get('reason', '')[:200]!r}"
    )
    for ex in ("ex1", "ex2", "ex3", "ex4"):
        assert row.get(ex) in ("", "0", "0.0", None), f"{when}: {student} has {row.get(ex)} points for {ex}"
    if doc is not None:
        assert doc.get("score") == 0 and not passed_tests(doc), f"{when}: {student}'s results.json: {describe(doc)}"


@pytest.mark.slow
@pytest.mark.parametrize("student", [*ATTACKS, CONTROL])
def test_batch_gives_no_points(batch_run, student):
    """In the gradebook and in results.json every attack, and the untouched stubs graded after them, have 0
    points (or a row that says why they were not graded, without points)."""
    assert batch_run.first.returncode in (0, 1), f"the batch failed: {batch_run.first.stderr[-3000:]}"
    _check_row(batch_run.rows.get(student), batch_run.docs.get(student), student, "first run")


@pytest.mark.slow
def test_batch_grades_the_reference_fully(batch_run):
    """The reference, graded in the same batch after every attack, gets full marks: the grading works (a batch
    that failed every test would give the attacks 0 for nothing)."""
    row, doc = batch_run.rows.get(REFERENCE), batch_run.docs.get(REFERENCE)
    assert row is not None and doc is not None, f"no result for the reference: {batch_run.first.stderr[-3000:]}"
    assert doc["score"] == doc["max_score"] == 100, f"the reference did not get full marks: {describe(doc)}"


@pytest.mark.slow
@pytest.mark.parametrize("student", [*ATTACKS, CONTROL])
def test_batch_results_stay_zero_after_the_batch(batch_run, student):
    """3 s after the batch, and after running the same batch again on the same OUT, every row is still 0: no
    lingering process rewrote results.json or grades.csv, and the re-run did not trust anything forged."""
    _check_row(batch_run.rows_after_pause.get(student), batch_run.docs_after_pause.get(student), student,
               "3 s after the batch")
    assert batch_run.second.returncode in (0, 1), f"the re-run failed: {batch_run.second.stderr[-3000:]}"
    _check_row(batch_run.rerun_rows.get(student), batch_run.rerun_docs.get(student), student, "re-run")


@pytest.mark.slow
def test_batch_changes_nothing_outside_the_sandbox(batch_run):
    """The repository the batch runs from (every file, every cached pyc), the submissions, the canaries next to
    them and in OUT, and /tmp are as they were, and OUT holds only what the batch writes."""
    assert not batch_run.repo_changes, f"the batch's repository changed: {batch_run.repo_changes}"
    assert not batch_run.bad_pycs, f"poisoned cached bytecode: {batch_run.bad_pycs}"
    assert not batch_run.submission_changes, f"the submissions changed: {batch_run.submission_changes}"
    assert not batch_run.strays_in_out, f"files in OUT that the batch did not write: {batch_run.strays_in_out}"
    assert not batch_run.canaries, f"canaries overwritten: {batch_run.canaries}"
    assert not batch_run.tmp_files, f"files left in /tmp: {batch_run.tmp_files}"


@pytest.mark.slow
def test_batch_leaves_no_process(batch_run):
    """No attack process is alive 2 s after either batch run has exited."""
    assert not batch_run.processes, f"processes left running: {batch_run.processes}"


@pytest.mark.slow
@pytest.mark.parametrize("student", [*ATTACKS, CONTROL])
def test_batch_leaks_no_hidden_text(batch_run, student):
    """results.json, feedback.md and the gradebook row of each submission hold no piece of a hidden test."""
    parts = {"results.json": batch_run.docs.get(student), "feedback.md": batch_run.feedback.get(student),
             "grades.csv": batch_run.rows.get(student), "results.json (re-run)": batch_run.rerun_docs.get(student)}
    leaks = leaks_in(parts, secrets_for(student))
    assert not leaks, f"{student}: hidden test text in what the student gets back: {leaks}"
    carried = canary_in(parts)
    assert not carried, f"{student}: a hidden test's input reached {carried}"


@pytest.mark.slow
@pytest.mark.parametrize("attack", sorted(REFUSALS))
def test_batch_refuses_the_ways_out(batch_run, attack):
    """In the batch too, the attack's hostile step ran and was refused."""
    doc = batch_run.docs.get(attack)
    assert doc is not None, f"no results.json for {attack}: {batch_run.first.stderr[-3000:]}"
    assert re.search(REFUSALS[attack], json.dumps(doc)), f"{attack}: no refusal mark in {describe(doc)}"


# ----------------------------------------------------------------------------------------------------------
# The same batch as root with Landlock and namespaces switched off (a container that forbids them): workers
# drop to a uid of their own, and the file modes and the syscall filter are what stands
# ----------------------------------------------------------------------------------------------------------

# a submission that leaves a mark saying whether the worker could list tests/hidden (ATK_REPO: the copy)
READ_HIDDEN_UID = "zz-read-hidden-uid"
READ_HIDDEN_SOURCE = '''\
import os
folder = os.path.join(os.environ.get("ATK_REPO", "."), "tests", "hidden")
try:
    mark = f"listed {len(os.listdir(folder))} hidden files"
    mark += f", read {sum(len(open(os.path.join(folder, n), 'rb').read()) for n in os.listdir(folder) if n.endswith('.py'))} bytes"
except OSError as exc:
    mark = f"hidden refused ({type(exc).__name__})"
raise RuntimeError(f"atk-read_hidden_uid: {mark} as uid {os.getuid()}")
'''


@dataclass
class UidBatchRun:
    proc: subprocess.CompletedProcess
    repo: Path
    rows: dict[str, dict]
    docs: dict[str, dict | None]
    feedback: dict[str, str]
    tmp_files: list[str]
    processes: list[tuple[int, str]]
    strays_in_out: list[str]
    host_modes_changed: dict
    repo_changes: list[str]
    submission_changes: list[str]


UID_MODE = pytest.mark.skipif(
    not (hasattr(os, "geteuid") and os.geteuid() == 0 and sys.platform == "linux"),
    reason="the uid drop happens only when the grader runs as root (Linux)")


# The cheap form `make test` runs: the ways out, and the attacks that reach for files, processes or the grader's
# own state (what a uid of its own and the file modes must stop); `make test-heavy` grades every attack.
UID_ATTACKS_CHEAP = (*sorted(REFUSALS), "exec_solution", "forged_events", "linger_results", "read_hidden",
                     "rewrite_tests", "write_outside", "pyc_library")


def uid_attacks() -> list[str]:
    from conftest import HEAVY

    return list(ATTACKS) if os.environ.get(HEAVY) else [a for a in ATTACKS if a in UID_ATTACKS_CHEAP]


@pytest.fixture(scope="module")
def uid_batch_run(tmp_path_factory) -> UidBatchRun:
    """One batch of the attacks (uid_attacks), the untouched stubs, the reference and READ_HIDDEN_UID, graded as root with
    GRADER_WITHOUT=landlock,namespaces; the host's modes checked (and put back) right after it."""
    from conftest import host_modes_before, host_modes_put_back

    from grader.worker import uid

    work = tmp_path_factory.mktemp("uid-batch")
    before = host_modes_before(work)
    # The grader seals the hidden tests and solutions of the copy it runs from; this checkout's own copies are
    # world-readable, and reachable from the worker (the venv lives in it, on sys.path): a uid of its own reads
    # whatever is world-readable (README), so this test seals them too while it grades (put back after).
    ours = set(uid.seal([REPO / "solutions", REPO / "tests" / "hidden"]))
    try:
        repo = copy_repository(work / "repo")
        submissions = work / "submissions"
        for attack in uid_attacks():
            build_submission(submissions / attack, attack)
        build_submission(submissions / CONTROL, None)
        build_submission(submissions / REFERENCE, None, base=REPO / "solutions")
        (build_submission(submissions / READ_HIDDEN_UID, None) / "ex1_special_tokens.py").write_text(READ_HIDDEN_SOURCE)
        out = work / "out"
        repo_before, submissions_before = tree_digest(repo), tree_digest(submissions)
        env = {**grading_env(repo), "GRADER_WITHOUT": "landlock,namespaces", "ATK_REPO": str(repo)}
        proc = subprocess.run([sys.executable, "-m", "grader", "batch", str(submissions), "--out", str(out),
                               "--jobs", "2", "--no-analysis"], cwd=repo, env=env, capture_output=True, text=True,
                              timeout=GRADING_TIMEOUT)
        left = outliving("atk-")
        rows, docs, feedback = _read_out(out)
        for name in (READ_HIDDEN_UID,):
            try:
                docs[name] = json.loads((out / name / "results.json").read_text())
            except (OSError, ValueError):
                docs[name] = None
        leftovers = tmp_files("atk-")
        remove(leftovers)
    finally:
        changed = {path: modes for path, modes in host_modes_put_back(before).items() if path not in ours}
    return UidBatchRun(proc, repo, rows, docs, feedback, [str(p) for p in leftovers], left,
                       strays_in_out(out, [*uid_attacks(), CONTROL, REFERENCE, READ_HIDDEN_UID]), changed,
                       changes(repo_before, tree_digest(repo)), changes(submissions_before, tree_digest(submissions)))


@pytest.mark.slow
@UID_MODE
def test_uid_mode_batch_gains_nothing_and_cannot_read_the_hidden_tests(uid_batch_run):
    """As root without Landlock or namespaces: the workers ran as their own uid under the syscall filter; every
    attack and the stubs score 0, the reference 100; the worker could not list tests/hidden (which this process,
    root, can: the positive control); nothing changed in the repository, the submissions or OUT, or was left
    running; every host mode the grader
    opened was put back; and no hidden text reached what the students get back. What stays open there, /tmp,
    is written only by the attack aimed at it."""
    run = uid_batch_run
    assert run.proc.returncode in (0, 1), f"the batch failed: {run.proc.stderr[-3000:]}"
    reference = run.docs.get(REFERENCE)
    assert reference and reference["score"] == 100, f"the reference: {describe(reference)}"
    prot = reference["lesson"]["protections"]
    assert prot["uid"] and prot["syscall_filter"] and not prot["filesystem"] and not prot["pid_namespace"], prot
    for student in [*uid_attacks(), CONTROL]:
        _check_row(run.rows.get(student), run.docs.get(student), student, "uid mode")
    marks = re.findall(r"atk-read_hidden_uid: [^\\\n\"]*", json.dumps(run.docs.get(READ_HIDDEN_UID)))
    assert marks and all("hidden refused (PermissionError) as uid" in m for m in marks), (
        f"the worker's view of tests/hidden: {marks or describe(run.docs.get(READ_HIDDEN_UID))}")
    assert os.listdir(run.repo / "tests" / "hidden"), "positive control: the hidden tests are there to list"
    assert oct((run.repo / "tests" / "hidden").stat().st_mode & 0o777) == oct(0o700), "tests/hidden not sealed"
    escapes = [a for a in sorted(REFUSALS) if a != "disk_filler"]  # no mount namespace here: no tmpfs cap
    unrefused = [a for a in escapes if not re.search(REFUSALS[a], json.dumps(run.docs.get(a)))]
    assert not unrefused, f"no refusal mark for {unrefused}"
    # the disk filler is stopped by the judge's watch instead (test_uid_mode_stops_the_disk_filler_at_the_cap)
    assert DISK_STOPPED.search(json.dumps(run.docs.get("disk_filler"), ensure_ascii=False)), describe(
        run.docs.get("disk_filler"))
    # without Landlock or a mount namespace, /tmp is writable by any uid, this one's too (README): write_outside
    # leaves its file there, and nothing else does (its other targets, the repository, the submissions and OUT,
    # are the instructor's and sealed)
    assert all(Path(p).name.startswith("atk-write_outside") for p in run.tmp_files), run.tmp_files
    assert not run.repo_changes, f"the batch's repository changed: {run.repo_changes}"
    assert not run.submission_changes, f"the submissions changed: {run.submission_changes}"
    assert not run.processes, f"processes left running: {run.processes}"
    assert not run.strays_in_out, f"files in OUT that the batch did not write: {run.strays_in_out}"
    assert not run.host_modes_changed, f"host modes left changed (put back now): {run.host_modes_changed}"
    leaks = {s: leaks_in({"results.json": run.docs.get(s), "feedback.md": run.feedback.get(s)}, secrets_for(s))
             for s in [*uid_attacks(), CONTROL]}
    assert not any(leaks.values()), {s: found for s, found in leaks.items() if found}


DISK_STOPPED = re.compile(r"the code wrote (\d+\.\d) MiB of files, past the cap of 64 MiB on everything one worker"
                          r" writes: stopped")


@pytest.mark.slow
@UID_MODE
def test_uid_mode_stops_the_disk_filler_at_the_cap(tmp_path):
    """As root without Landlock or namespaces there is no tmpfs to cap what a worker writes: the judge adds up
    what its uid has written while it runs (uid.disk_usage) and stops it past the cap. The positive control: the
    same attack, run as plain Python, writes its whole bound (384 MiB) and nothing refuses it."""
    control = tmp_path / "control"
    control.mkdir()
    attack = ATTACKS_DIR / "disk_filler" / "ex3_parameter_accounting.py"
    plain = subprocess.run([sys.executable, str(attack)], cwd=control, capture_output=True, text=True, timeout=120)
    assert "atk-disk_filler: 384 MiB written, not refused" in plain.stderr, plain.stderr[-2000:]
    submission = build_submission(tmp_path / "submission", "disk_filler")
    out = tmp_path / "result.json"
    env = {**grading_env(REPO), "GRADER_WITHOUT": "landlock,namespaces"}
    proc = subprocess.run([sys.executable, "-m", "grader", "grade", "--target", str(submission), "--exercise", "ex3",
                           "--json", str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=GRADING_TIMEOUT)
    doc = json.loads(out.read_text())
    prot = doc["lesson"]["protections"]
    assert prot["uid"] and prot["disk_watch"] and not prot["disk_cap"], prot
    stopped = {float(m) for t in doc["tests"] for m in DISK_STOPPED.findall(t.get("output", ""))}
    # stopped at the cap or past it (the attack ran; one decimal shows 64.0 for a few KiB over) and well before
    # its 384 MiB: at most a few files past the cap
    assert stopped and all(64 <= m < 384 for m in stopped), (stopped, proc.stdout[-2000:])
    assert doc["score"] == 0 and not list(submission.glob("fill-*")), describe(doc)


# ----------------------------------------------------------------------------------------------------------
# Gradescope: `python -m grader gradescope-run`, what run_autograder calls; its results.json is what students see
# ----------------------------------------------------------------------------------------------------------


@dataclass
class GradescopeRun:
    proc: subprocess.CompletedProcess
    results: Path
    left: list[tuple[int, str]]


@pytest.fixture(scope="module")
def gradescope_run(tmp_path_factory):
    """``gradescope_run(attack)``: the attack graded once through ``gradescope-run`` (cached: the tests share it)."""
    runs: dict[str, GradescopeRun] = {}

    def run(attack: str) -> GradescopeRun:
        if attack not in runs:
            tmp = tmp_path_factory.mktemp(f"gradescope-{attack}")
            repo = copy_repository(tmp / "source")
            submission = build_submission(tmp / "submission", attack)
            results = tmp / "results" / "results.json"
            results.parent.mkdir()
            proc = run_grader(["-m", "grader", "gradescope-run", "--submission", str(submission), "--results",
                               str(results)], repo)
            left = outliving(process_name(attack))
            remove(tmp_files(f"atk-{attack}"))
            runs[attack] = GradescopeRun(proc, results, left)
        return runs[attack]

    return run


@pytest.mark.slow
@pytest.mark.parametrize("attack", GRADESCOPE_ATTACKS)
def test_gradescope_run_gains_and_leaks_nothing(gradescope_run, attack):
    """Gradescope's results.json gives 0 points, holds no hidden text, and is not rewritten after the run."""
    run = gradescope_run(attack)
    proc, results, left = run.proc, run.results, run.left
    assert results.is_file(), f"no results.json: {proc.stderr[-3000:]}"
    doc = json.loads(results.read_text())
    assert doc["score"] == 0 and not passed_tests(doc), f"{attack} gained points on Gradescope: {describe(doc)}"
    # the hidden tests' record is there for staff, in boxes Gradescope never shows a student, and on stdout
    staff = [t for t in doc["tests"] if t["extra_data"].get("staff")]
    assert staff and all(t["visibility"] == "hidden" for t in staff), "the staff's boxes must be hidden"
    assert doc["stdout_visibility"] == "hidden", "stdout holds the instructor's record"
    seen = student_visible(doc)
    leaks = leaks_in({"results.json": seen}, secrets_for(attack))
    assert not leaks, f"{attack}: hidden test text in what a student sees of Gradescope's results.json: {leaks}"
    carried = canary_in({"results.json": seen, "stderr": proc.stderr})
    assert not carried, f"{attack}: a hidden test's input reached {carried}"
    assert not left, f"{attack} left processes running: {left}"


# ----------------------------------------------------------------------------------------------------------
# The hidden-input guard, end to end: its positive control
# ----------------------------------------------------------------------------------------------------------

# grades carry_hidden's ex1 with the hidden tests FIRST (the worst order: every visible test comes after them);
# with "off", the step that stops a worker which served a hidden test (grader.judge.student._keep_hidden_inputs_in) is
# switched off in this process only, before the judge session is forked from it; prints the student's copy
GUARD_DRIVER = """\
import json, sys
from pathlib import Path
from grader.judge import student, suite
from grader import results
from grader.grading import grade
suite.visible_first = lambda items: sorted(items, key=lambda item: not suite.is_hidden(item))
if sys.argv[2] == "off":
    student._keep_hidden_inputs_in = lambda client, hidden: None
doc = results.for_students(grade(Path(sys.argv[1]), exercises=["ex1"], hidden=True))
print(json.dumps(doc))
"""


@pytest.mark.slow
def test_hidden_inputs_reach_the_student_without_the_guard_and_not_with_it(tmp_path):
    """Positive control for item 2: carry_hidden does carry a hidden test's input (the canary) into the student's
    copy when no fresh worker follows a hidden test, and does not when one does, in the same (worst) order."""
    repo = copy_repository(tmp_path / "repo")
    submission = build_submission(tmp_path / "submission", "carry_hidden")
    docs = {}
    for guard in ("off", "on"):
        proc = subprocess.run([sys.executable, "-c", GUARD_DRIVER, str(submission), guard], cwd=repo,
                              env=grading_env(repo), capture_output=True, text=True, timeout=GRADING_TIMEOUT)
        assert proc.returncode == 0, f"grading with the guard {guard} failed:\n{proc.stderr[-3000:]}"
        docs[guard] = json.loads(proc.stdout.strip().splitlines()[-1])
    for guard, doc in docs.items():
        assert doc["score"] == 0, f"carry_hidden gained points with the guard {guard}: {describe(doc)}"
        hidden_tests = [t for t in doc["tests"] if t.get("visibility") != "visible"]
        assert hidden_tests, "no hidden test ran: the hostile step (keeping a hidden input) had nothing to keep"
    outputs = {guard: json.dumps(doc, ensure_ascii=False) for guard, doc in docs.items()}
    assert "atk-carry_hidden kept" in outputs["on"], "the attack's mark is missing: it never ran"
    assert HIDDEN_CANARY in outputs["off"], "positive control: without the guard the canary should reach the student"
    assert HIDDEN_CANARY not in outputs["on"], "a hidden test's input reached the student's copy with the guard on"


# ----------------------------------------------------------------------------------------------------------
# shared_links beside a victim graded at the same time
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
# without Landlock the uid drop (as root) would keep the worker out of the other sandboxes altogether (see
# test_uid_mode_batch_gains_nothing_and_cannot_read_the_hidden_tests): switched off too, so that the judge's
# refusal to follow what the worker planted is all that stands
@pytest.mark.parametrize("without", ["", "landlock,namespaces,setuid"], ids=["confined", "without-landlock"])
def test_shared_links_cannot_touch_a_victim_graded_beside_it(tmp_path, without):
    """A batch of two graded together (--jobs 2): shared_links links the names a visible test reads and a hidden
    test writes to the other submission's ex4 file. The victim (the reference) keeps its grade alone (every point),
    its files are unchanged, and nothing outside the sandboxes and OUT is written; with Landlock too, and without
    it (then the worker can list the sandboxes, and the judge's refusal to follow is all that stands)."""
    repo = copy_repository(tmp_path / "repo")
    submissions = tmp_path / "submissions"
    build_submission(submissions / "a-shared_links", "shared_links")
    victim = build_submission(submissions / "b-victim", None, base=REPO / "solutions")
    out = tmp_path / "out"
    out.mkdir()
    canaries = plant_canaries(tmp_path, out)
    before, submissions_before = tree_digest(repo), tree_digest(submissions)
    victim_ex4 = (victim / "ex4_scaling.py").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "grader", "batch", str(submissions), "--out", str(out), "--jobs", "2"],
                          cwd=repo, env={**grading_env(repo), "GRADER_WITHOUT": without}, capture_output=True, text=True,
                          timeout=GRADING_TIMEOUT)
    assert proc.returncode in (0, 1), f"the batch failed: {proc.stderr[-3000:]}"
    rows, _, _ = _read_out(out)
    attacker = json.loads((out / "a-shared_links" / "results.json").read_text())  # the instructor's full record
    # the mark that the hostile step ran, aimed at the victim's sandbox, and was refused
    record = json.dumps(attacker)
    assert "atk-shared_links links to" in record and "b-victim" in record, (
        "shared_links never aimed at the victim (graded alone, or not at the same time): the test shows nothing")
    assert "symbolic links" in record or "not a regular file" in record, "the read of the planted link was not refused"
    assert attacker["score"] == 0, f"shared_links gained points: {describe(attacker)}"
    # the reference graded alone earns every point (test_student_mode_baselines, test_batch_grades_the_reference_fully)
    alone = {ex: meta["visible"] + meta["hidden"] for ex, meta in json.loads((repo / "tests" / "points.json").read_text()).items()}
    row = rows.get("b-victim")
    assert row is not None and {ex: float(row[ex] or 0) for ex in alone} == alone, (
        f"the victim's grade beside shared_links differs from its grade alone {alone}: {row}")
    assert (victim / "ex4_scaling.py").read_bytes() == victim_ex4
    assert not changes(submissions_before, tree_digest(submissions)), "a submission folder changed"
    assert not changes(before, tree_digest(repo)), "the repository copy changed"
    assert not touched_canaries(canaries), f"written outside the sandbox and OUT: {touched_canaries(canaries)}"
    assert not strays_in_out(out, ["a-shared_links", "b-victim"]), "OUT holds files the batch does not write"
    assert not Path("/tmp/atk-shared_links-victim").exists()

# the attacks on the ways out, two submissions (each exercise file holds one attack): one run each
ESCAPE_SUBMISSIONS = (("unwaited_children", "fork_bomb", "disk_filler", "unix_socket"), ("io_uring", "sysv_ipc"))


@pytest.mark.slow
@pytest.mark.parametrize("attacks", ESCAPE_SUBMISSIONS, ids="+".join)
def test_gradescope_run_refuses_the_ways_out(tmp_path, attacks):
    """Through Gradescope's entry point, a submission of the attacks on the worker's ways out gains 0, every
    hostile step was refused, nothing is left in /tmp and no process outlives the run."""
    repo = copy_repository(tmp_path / "source")
    submission = build_submission(tmp_path / "submission", None)
    for attack in attacks:
        for path in (ATTACKS_DIR / attack).glob("ex*_*.py"):
            shutil.copy2(path, submission / path.name)
    results = tmp_path / "results" / "results.json"
    results.parent.mkdir()
    proc = run_grader(["-m", "grader", "gradescope-run", "--submission", str(submission), "--results",
                       str(results)], repo)
    left = [p for attack in attacks for p in outliving(process_name(attack))]
    leftovers = [p for attack in attacks for p in tmp_files(f"atk-{attack}")]
    remove(leftovers)
    assert results.is_file(), f"no results.json: {proc.stderr[-3000:]}"
    doc = json.loads(results.read_text())
    assert doc["score"] == 0 and not passed_tests(doc), f"{attacks} gained points on Gradescope: {describe(doc)}"
    text = json.dumps(doc)
    unrefused = [attack for attack in attacks if not re.search(REFUSALS[attack], text)]
    assert not unrefused, f"no refusal mark for {unrefused} in Gradescope's results.json: {text[:3000]}"
    assert not left, f"processes left running: {left}"
    assert not leftovers, f"files left in /tmp: {leftovers}"


# ----------------------------------------------------------------------------------------------------------
# hostile_text: student text that would render as markup, a terminal command or a formula, in every mode
# ----------------------------------------------------------------------------------------------------------

HOSTILE_TAG = "<img src=x onerror=alert(1)>"  # pieces of hostile_text's message (see its docstring)
HOSTILE_LINK = "javascript:alert(1)"
ESCAPE_CODE = "\x1b["  # the escape character itself, which starts every terminal escape code
ESCAPE_SHOWN = "\\x1b[2K"  # the same shown as text: what a reader sees in its place


def _markdown_html(text: str) -> str:
    mistune = pytest.importorskip("mistune", reason="mistune (nbconvert's Markdown renderer) is not installed")
    return mistune.html(text)


def _hostile_reason(doc: dict) -> str:
    """The raw reason hostile_text's ex3 tests failed with (the results document is data, not a rendering)."""
    reasons = [t["extra_data"]["reason"] for t in doc["tests"]
               if t["extra_data"]["exercise"] == "ex3" and HOSTILE_TAG in t["extra_data"].get("reason", "")]
    assert reasons, "the hostile message never reached a reason: the attack did not run"
    return reasons[0]


def test_old_renderings_of_hostile_text_were_live():
    """Positive control: rendered the way the reports did before grader.untrusted, the message is an image with
    an onerror handler, a link and a bold score in Markdown, an escape code in a terminal, a formula in a CSV."""
    reason = "line 1: importing it raised ValueError: " + HOSTILE_TAG + f" [full marks]({HOSTILE_LINK}) **Score: 100**"
    old_feedback = _markdown_html(f"- `test_x` (-1)\n  - {' '.join(reason.split())}\n")
    assert HOSTILE_TAG in old_feedback and "<strong>Score: 100</strong>" in old_feedback
    buffer = io.StringIO()
    csv.writer(buffer).writerow([FORMULA_STUDENT, "", "0"])
    assert buffer.getvalue().startswith(FORMULA_STUDENT), "a plain CSV writer writes the formula as it is"


@pytest.mark.slow
def test_student_mode_shows_hostile_text_as_text(student_runs):
    """The terminal report (plain and -v) shows the message with its escape codes as text: the attack's text
    arrived, and no escape character did."""
    run = student_runs["hostile_text"]
    assert not run.error, f"grading hostile_text failed: {run.error}"
    assert ESCAPE_CODE in _hostile_reason(run.doc), "positive control: the reason itself holds the escape codes"
    assert ESCAPE_SHOWN in run.report and HOSTILE_TAG in run.report, "the hostile text did not reach the report"
    assert "\x1b" not in run.report, "an escape code reached the terminal report"


@pytest.mark.slow
def test_batch_shows_hostile_text_as_text(batch_run):
    """feedback.md renders the message as text (no image, no link, no bold score), grades.csv holds no control
    character, and the student id that is a formula is written as text."""
    feedback = batch_run.feedback["hostile_text"]
    page = _markdown_html(feedback)
    assert "&lt;img src=x onerror=alert(1)&gt;" in page, "the hostile text did not arrive in feedback.md"
    assert "<img" not in page and "<a " not in page and "<strong>Score: 100" not in page, page[:2000]
    assert "\x1b" not in feedback and "\x1b" not in batch_run.raw_csv, "an escape code in feedback.md or grades.csv"
    row = batch_run.rows.get("hostile_text")
    assert row is not None and ESCAPE_SHOWN in row["reason"], f"the reason did not arrive: {row}"
    formula = batch_run.rows.get("'" + FORMULA_STUDENT)
    assert formula is not None, f"no row for {FORMULA_STUDENT!r} written as text: {sorted(batch_run.rows)}"
    assert formula["total"] == "0" and formula["status"] == "graded", formula
    assert not any(line.startswith(FORMULA_STUDENT) for line in batch_run.raw_csv.splitlines())


@pytest.mark.slow
def test_gradescope_shows_hostile_text_as_text(gradescope_run):
    """Gradescope is told that every output and name is plain text, and the message arrives without its escape
    codes."""
    doc = json.loads(gradescope_run("hostile_text").results.read_text())
    assert (doc["output_format"], doc["test_output_format"], doc["test_name_format"]) == ("text",) * 3
    assert all(box["output_format"] == box["name_format"] == "text" for box in doc["tests"])
    outputs = "\n".join(box["output"] for box in doc["tests"])
    assert HOSTILE_TAG in outputs and ESCAPE_SHOWN in outputs, "the hostile text did not arrive"
    assert "\x1b" not in json.dumps(doc, ensure_ascii=False), "an escape code in what Gradescope shows"


# Dask: the same judge session on a worker; what the task returns (plain events) is all that crosses. The hidden
# input carried to a later test, and hidden text in messages, must not reach the student's copy there either.
DASK_ATTACKS = ("carry_hidden", "leak_messages")


@pytest.mark.slow
def test_dask_batch_carries_no_hidden_input_to_the_student(tmp_path):
    """Graded on a one-worker LocalCluster, carry_hidden and leak_messages gain nothing, and neither their
    results.json and feedback.md nor their gradebook rows hold a hidden test's canary or text."""
    pytest.importorskip("distributed", reason="Dask is not installed (pip install -e '.[dask]')")
    repo = copy_repository(tmp_path / "repo")
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    for attack in DASK_ATTACKS:
        build_submission(submissions / attack, attack)
    run = run_grader(["-m", "grader", "batch", str(submissions), "--out", str(out), "--scheduler", "local:1",
                      "--no-analysis"], repo)
    assert run.returncode == 0, run.stderr[-3000:]
    with open(out / "grades.csv", newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    for attack in DASK_ATTACKS:
        doc = json.loads((out / attack / "results.json").read_text())
        assert rows[attack]["status"] == "graded" and float(doc["score"]) == 0, (attack, rows[attack])
        parts = {"results.json": doc, "feedback.md": (out / attack / "feedback.md").read_text(),
                 "grades.csv": rows[attack]}
        assert not canary_in(parts), f"{attack}: a hidden test's input reached {canary_in(parts)}"
        leaks = leaks_in(parts, secrets_for(attack))
        assert not leaks, f"{attack}: hidden test text in what the student gets back: {leaks}"
