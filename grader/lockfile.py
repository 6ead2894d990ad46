"""``requirements.lock``: the versions and file hashes of the tested environment, for every install.

``make lock`` (``python -m grader.lockfile``) writes it with ``uv pip compile``: every dependency of
pyproject.toml, extras included, pinned to the version installed in the venv the tests ran in, with the hashes of
its files (below). Every install uses it as its constraints (grader/install.py,
Gradescope's setup.sh, the nbgrader course's setup), so all of them get the versions the instructor tested, and
an install of a subset (a student's, without the extras) gets the same versions as the whole.

Its header says which pyproject.toml it was made from (a digest of the dependencies) and for which Python: the
Gradescope image makes its venv with that Python. ``check`` (and a project test) fails when they disagree.

The hashes are those of the files that the index a version came from lists (for a version taken from a mirror
that holds only the lock machine's wheels, those alone; the mirror's files are PyPI's: checked for numpy 2.4.6),
and at least the files the lock's machine takes (Linux x86-64, the lock's Python): the Gradescope image and CI check them;
an install on another platform or Python takes other files of the same versions, so it gets the versions only
(grader/install.py: ``hashes_fit``).

torch is pinned (``torch==X+cpu``, the build the tests ran with) but carries no hash: the wheel on our machines
comes from a local folder, and PyTorch's index, which serves it to everyone else, cannot be reached from here to
check that it is the same file; a hash we cannot check would make every install outside our machines fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from grader import install, install_bytecode

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCK = REPO_ROOT / "requirements.lock"
PLATFORM = "x86_64-manylinux_2_28"  # torch's CPU wheel for Linux x86-64 is tagged manylinux_2_28
UNHASHED = ("torch",)
HEADER = """\
# requirements.lock: made by `make lock` (python -m grader.lockfile) from the tested venv; do not edit.
# Every install uses it as constraints (grader/install.py, Gradescope's setup.sh, the nbgrader setup).
# python: {python}
# pyproject: {digest}
# torch has no hash: our wheel is a local file, and PyTorch's index (which serves it) cannot be reached from
# the machines that make this lock to check it is the same file (grader/lockfile.py).
"""


def _pyproject(pyproject: Path) -> dict:
    import tomllib  # the lock is made and checked in the project's venv (Python >= 3.11)

    return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]


def requirements(pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """Every requirement of the project: its dependencies and every extra's."""
    project = _pyproject(pyproject)
    extras = project.get("optional-dependencies", {})
    return list(project["dependencies"]) + [r for name in sorted(extras) for r in extras[name]]


def digest(pyproject: Path = REPO_ROOT / "pyproject.toml") -> str:
    """What of pyproject.toml the lock depends on (requirements, extras, requires-python), as a sha256."""
    project = _pyproject(pyproject)
    data = {k: project.get(k) for k in ("dependencies", "optional-dependencies", "requires-python")}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def header_value(lock: Path, key: str) -> str | None:
    found = re.search(rf"^# {key}: (\S+)$", lock.read_text(encoding="utf-8"), re.M)
    return found.group(1) if found else None


def pins(lock: Path = LOCK) -> dict[str, str]:
    """{normalised name: version} of every package the lock pins."""
    found = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", lock.read_text(encoding="utf-8"), re.M)
    return {_norm(name): version for name, version in found}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check(lock: Path = LOCK, pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """What is wrong between pyproject.toml and the lock (empty when they agree)."""
    from packaging.requirements import Requirement

    if not lock.is_file():
        return [f"{lock.name} is missing: run `make lock`"]
    problems = []
    if header_value(lock, "pyproject") != digest(pyproject):
        problems.append(f"{lock.name} was made from another pyproject.toml (its dependencies changed): run `make lock`")
    listing = lock.parent / install_bytecode.LIST.name
    if install_bytecode.listed("", lock, listing) is None:
        problems.append(f"{listing.name} is missing or was made from another {lock.name}: run `make lock`")
    pinned = pins(lock)
    for text in requirements(pyproject):
        req = Requirement(text)
        version = pinned.get(_norm(req.name))
        if version is None:
            problems.append(f"{req.name} is required by pyproject.toml but not in {lock.name}")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}: {lock.name} has {version}, pyproject.toml asks for {req.specifier}")
    return problems


def _strip_hashes(text: str, names: tuple = UNHASHED) -> str:
    """Drop the ``--hash`` lines of ``names`` (see the module's docstring for why torch has none)."""
    out, skipping = [], False
    for line in text.splitlines():
        pinned = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if pinned:
            skipping = _norm(pinned.group(1)) in names
            out.append(f"{pinned.group(1)}=={pinned.group(2)}" if skipping else line)
        elif not (skipping and line.strip().startswith("--hash=")):
            out.append(line)
    return "\n".join(out) + "\n"


def compile_command(uv: Path, python: Path, frozen: Path, out: Path, settings: dict) -> list[str]:
    """``uv pip compile`` of every requirement, pinned to the tested venv's versions (``frozen``)."""
    return [str(uv), "pip", "compile", str(REPO_ROOT / "pyproject.toml"), "--all-extras", "--generate-hashes",
            "--python-version", _full_version(python), "--python-platform", PLATFORM, "--no-header", "--no-annotate",
            "--constraint", str(frozen), *install.uv_options(settings), "--output-file", str(out), "--quiet"]


def _full_version(python: Path) -> str:
    return subprocess.run([str(python), "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=True).stdout.strip()


def find_uv() -> Path:
    """uv in this venv (make setup puts it there), else on PATH."""
    uv = install.venv_uv(Path(sys.prefix))
    if not uv.exists():
        uv = Path(shutil.which("uv") or uv)
    if not uv.exists():
        raise SystemExit("make lock needs uv: `make setup` installs it into the venv")
    return uv


def make_lock(python: Path = Path(sys.executable), lock: Path = LOCK) -> None:
    """Write ``lock`` from the venv of ``python`` (the tested one)."""
    uv = find_uv()
    settings = install.pip_config(str(python))
    with tempfile.TemporaryDirectory() as tmp:
        frozen, out = Path(tmp) / "frozen.txt", Path(tmp) / "lock.txt"
        freeze = subprocess.run([str(uv), "pip", "freeze", "--python", str(python), "--exclude-editable"],
                                capture_output=True, text=True, check=True).stdout
        frozen.write_text(freeze, encoding="utf-8")
        cmd = compile_command(uv, python, frozen, out, settings)
        subprocess.run(cmd, check=True, env={**os.environ, **install.uv_environment(settings)})
        body = _strip_hashes(out.read_text(encoding="utf-8"))
    head = HEADER.format(python=_full_version(python), digest=digest())
    lock.write_text(head + body, encoding="utf-8")
    # what the setup compiles where this lock fits the machine (grader/install_bytecode.py)
    (lock.parent / install_bytecode.LIST.name).write_text(install_bytecode.record(python, lock), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        problems = check()
        for problem in problems:
            print(problem)
        return 1 if problems else 0
    make_lock()
    print(f"wrote {LOCK.name}: {len(pins())} packages for Python {header_value(LOCK, 'python')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
