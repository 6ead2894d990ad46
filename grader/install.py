"""``python grader/install.py --venv .venv`` (``make setup``; the first ``make grade`` runs it): make the venv and
install the project into it, saying what it does while it does it. It runs on Python 3.8 and later with the
standard library only: it runs before anything is installed, and with whatever ``python3`` a student has.

The steps (``main``), all on one status line:
1. **A Python the project runs on** (``requires-python`` in pyproject.toml). Where this Python is older, uv (below)
   finds a newer one on the machine or installs a managed one (``uv venv --python``); where neither works, one
   line says what to install.
2. **uv**, from pip into the new venv (``pip install uv``): it installs the project in seconds where pip takes a
   minute (bench/bench_setup.py). Where uv cannot be had, or ``GRADER_SETUP=pip``, pip installs as before, and
   one line says so.
3. **pip's configuration, for uv**: uv does not read pip's. ``pip config list`` (files and ``PIP_*``
   variables) is read at run time and translated (``uv_options``): find-links, index-url, extra-index-url,
   constraint, cert, timeout. Index strategy: ``unsafe-best-match``, pip's own rule (every index is one pool,
   the best version wins), because the machine's owner wrote that configuration for pip.
4. **One lock file** (``requirements.lock``, made by ``make lock``: grader/lockfile.py) is every install's
   constraint: the versions and file hashes of the tested environment.
5. **Which torch**: the lock pins the CPU build (``torch==2.13.0+cpu``) on Linux x86-64. Where PyTorch's CPU index
   answers, uv's ``--torch-backend cpu`` takes torch from it; where it does not (offline, or a machine that
   reaches only a mirror), a local wheel, a ``--find-links`` folder or uv's cache provides it (``--torch-backend
   cpu`` alone fails offline: it looks the index up); where no package index answers, uv runs ``--offline``. On
   the pip path, a pip dry run decides whether PyTorch's CPU index is needed (``choose_torch``), as before uv.
6. **Bytecode, once** (grader/install_bytecode.py): the files grading imports are compiled (in parallel, from the
   list ``make lock`` wrote beside the lock, where the lock fits the machine; else by importing the packages with
   bytecode writing on), so that no grading process compiles torch again where ``PYTHONDONTWRITEBYTECODE`` is set.

Progress: the tools' output goes through one status line on a terminal (the step, the time), and a few lines in a
log otherwise; all of it is printed when a step fails.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# The small steps live in siblings that import both ways: as grader.* when this module is imported (the tests,
# `python -m grader.install`), and by their own names when it runs as a script (`python grader/install.py`),
# before anything is installed: there is no grader package to import then, but this file's folder is
# sys.path[0]. Never the other way round: an installed grader of another commit must not answer for this one.
if __package__:
    from grader import install_bytecode
    from grader.install_pip_settings import UV_FLAGS, pip_config, uv_environment, uv_options  # noqa: F401
    from grader.install_status import Status
    from grader.install_torch import (  # noqa: F401 - the tests and the Gradescope setup read these here
        CPU_INDEX, CPU_WHEEL_MB, CUDA_DOWNLOAD_GB, CUDA_PACKAGE, TORCH_WHEEL_PLATFORMS, choose_torch, dry_run,
        is_cuda_build, torch_wheel_note,
    )
else:
    import install_bytecode  # type: ignore[no-redef]
    from install_pip_settings import UV_FLAGS, pip_config, uv_environment, uv_options  # type: ignore[no-redef]  # noqa: F401
    from install_status import Status  # type: ignore[no-redef]
    from install_torch import (  # type: ignore[no-redef]  # noqa: F401
        CPU_INDEX, CPU_WHEEL_MB, CUDA_DOWNLOAD_GB, CUDA_PACKAGE, TORCH_WHEEL_PLATFORMS, choose_torch, dry_run,
        is_cuda_build, torch_wheel_note,
    )

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCK = REPO_ROOT / "requirements.lock"
PYPI = "https://pypi.org/simple"
# measured on this project's machines (2 cores, torch wheel on local disk; bench/bench_setup.py)
MEASURED = "about a minute on 2 cores; a download of torch adds its time"
# pip's noise about unreachable local index folders on some machines: not worth a student's attention
NOISE = re.compile(r"is ignored: it is neither a file nor a directory")


def _pyproject_text(pyproject: Path) -> str:
    return pyproject.read_text(encoding="utf-8")


def torch_pin(pyproject: Path = REPO_ROOT / "pyproject.toml") -> str:
    """The torch requirement of the project (``torch==2.13.0``), read from pyproject.toml (without tomllib,
    which Python 3.10 and older lack: this script must run on them to say what to do)."""
    found = re.search(r'"(torch\s*==\s*[^";]+)', _pyproject_text(pyproject))
    if not found:
        raise SystemExit("setup: pyproject.toml must pin torch (torch==X.Y.Z): a range resolves to a CUDA build")
    return found.group(1).replace(" ", "")


def requires_python(pyproject: Path = REPO_ROOT / "pyproject.toml") -> tuple:
    """The oldest Python the project runs on, from ``requires-python = ">=3.11"`` ((3, 11))."""
    found = re.search(r'^requires-python\s*=\s*">=\s*(\d+)\.(\d+)', _pyproject_text(pyproject), re.M)
    return (int(found.group(1)), int(found.group(2))) if found else (3, 8)


def pin_satisfied(pin: str, version: str | None) -> bool:
    """Does an installed ``version`` (``2.13.0+cpu``) meet an exact pin (``torch==2.13.0``)?"""
    return version is not None and "==" in pin and version.split("+")[0] == pin.split("==", 1)[1].strip()


# The pip path's choice of torch: grader/install_torch.py; the status line: grader/install_status.py


# pip's configuration, translated for uv: grader/install_pip_settings.py

# ----------------------------------------------------------------------------------------------------------
# The lock, and where torch comes from
# ----------------------------------------------------------------------------------------------------------


def lock_platform_matches() -> bool:
    """Was the lock made for this kind of machine? Its torch is the Linux x86-64 CPU build (``+cpu``)."""
    import platform

    return sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")


def lock_python(lock: Path) -> tuple:
    """(major, minor) of the Python the lock was made for (its ``# python: 3.11.7`` line), or (0, 0)."""
    found = re.search(r"^# python: (\d+)\.(\d+)", lock.read_text(encoding="utf-8"), re.M) if lock.is_file() else None
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def hashes_fit(python: Path, lock: Path) -> bool:
    """Do the lock's hashes name the files this install will take? They are those of the lock's machine (Linux
    x86-64, its Python): elsewhere (macOS, Python 3.12...) other files of the same versions are taken."""
    return lock_platform_matches() and python_version(python) == lock_python(lock)


def constraints_from_lock(lock: Path, out: Path, *, hashes: bool, local_torch: bool) -> Path | None:
    """Write the lock as a constraints file for this install into ``out``; None without a lock.

    ``hashes=False`` for pip: one hash makes pip check every requirement, and torch has none (see lockfile.py).
    ``local_torch=False`` where the lock's ``+cpu`` build does not exist (macOS, Windows, ARM): the version stays."""
    if not lock.is_file():
        return None
    lines = []
    for line in lock.read_text(encoding="utf-8").splitlines():
        if not hashes and line.strip().startswith("--hash="):
            continue
        if not hashes:
            line = line.rstrip(" \\")
        if not local_torch and line.startswith("torch=="):
            line = line.split("+")[0]
        lines.append(line)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def reachable(url: str, timeout: float = 5.0) -> bool:
    """Does ``url`` answer (a HEAD request)? Used to choose between the online and the offline way to torch."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except Exception:  # noqa: BLE001 - offline, a proxy, a TLS failure: all mean "not from here"
        return False


def torch_source(cpu_index_reachable: bool) -> tuple:
    """(uv options, a sentence for the student) for torch's CPU build."""
    if cpu_index_reachable:
        return ["--torch-backend", "cpu"], f"torch's CPU build from PyTorch's index ({CPU_INDEX}, uv's --torch-backend)."
    return [], ("torch: the CPU build, from a local wheel, a --find-links folder or uv's cache (PyTorch's own index"
                " does not answer from here, which is fine when one of those has it).")


# ----------------------------------------------------------------------------------------------------------
# The steps: the venv (and its Python), uv, the install with uv or with pip
# ----------------------------------------------------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def venv_uv(venv: Path) -> Path:
    return venv / ("Scripts/uv.exe" if os.name == "nt" else "bin/uv")


def python_version(python: Path) -> tuple:
    """(major, minor) of an interpreter, or (0, 0) when it does not run."""
    try:
        out = subprocess.run([str(python), "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
                             capture_output=True, text=True, timeout=60).stdout.split()
        return int(out[0]), int(out[1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return 0, 0


def uv_requirement(pyproject: Path = REPO_ROOT / "pyproject.toml") -> str:
    """The uv to install: one that builds the project itself (``uv>=0.13.0,<0.14`` for a build system that requires
    ``uv_build>=0.13.0,<0.14``), so that the project's editable install needs no build environment; plain ``uv``
    when pyproject.toml names another build backend."""
    found = re.search(r'^requires\s*=\s*\["uv_build([^"]*)"\]', _pyproject_text(pyproject), re.M)
    return "uv" + (found.group(1).replace(" ", "") if found else "")


def pip_get_uv(python: Path, into: Path | None = None) -> list:
    """The command that installs uv with ``python``'s pip (pip's own configuration applies), into ``into``'s
    environment when given (``pip --python``, pip 22.3 and later)."""
    target = ["--python", str(into)] if into is not None else []
    return [str(python), "-m", "pip", *target, "install", "--quiet", "--disable-pip-version-check", uv_requirement()]


def uv_venv_command(uv: Path, venv: Path, need: tuple) -> list:
    """uv makes the venv with a suitable Python: one it finds on the machine, or a managed one it downloads."""
    return [str(uv), "venv", "--allow-existing", "--python", f">={need[0]}.{need[1]}", str(venv)]


def uv_install_command(uv: Path, python: Path, project: str, options: list, constraints: Path | None) -> list:
    """``uv pip install -e PROJECT uv pip`` into ``python``'s environment, under the lock's constraints; uv
    itself too, so that later installs (``make test``'s extras) take the fast way, and pip, which a venv made
    without it would otherwise lack."""
    cmd = [str(uv), "pip", "install", "--python", str(python), "-e", project, uv_requirement(), "pip", *options]
    return cmd + (["--constraint", str(constraints)] if constraints else [])


def run_step(cmd: list, status: "Status", env: dict | None = None) -> tuple:
    """Run one command with its output going through the status line; (exit code, its output)."""
    out = []
    full_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "UV_NO_PROGRESS": "1", **(env or {})}
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env,
                                cwd=REPO_ROOT)
    except OSError as exc:
        return 127, f"{cmd[0]}: {exc}\n"
    for line in proc.stdout:
        if not NOISE.search(line):
            out.append(line)
            status.line(line)
    return proc.wait(), "".join(out)


class SetupFailed(Exception):
    """The setup cannot go on; the message is the one line the student reads."""


def need_line(need: tuple) -> str:
    return (f"setup: Python {need[0]}.{need[1]} or newer is needed (this is {sys.version.split()[0]}), and uv could not"
            f" get one: install Python {need[0]}.{need[1]} (python.org, or your system's python{need[0]}.{need[1]}"
            f" package) and run `make grade PYTHON=python{need[0]}.{need[1]}`.")


def make_venv(venv: Path, need: tuple, status: "Status", scratch: Path) -> tuple:
    """(the venv's python, uv or None). With a suitable Python here, ``python -m venv`` and pip brings uv into it;
    with an older one, uv comes into a scratch venv first and makes the venv with a suitable Python."""
    if sys.version_info[:2] >= need:
        stale = venv_python(venv).exists() and python_version(venv_python(venv)) < need
        if stale or not venv_python(venv).exists():
            new_venv(venv, status, clear=stale)
        uv = get_uv(venv_python(venv), status)
        if uv is None:
            ensure_pip(venv_python(venv), status)
        return venv_python(venv), uv
    status.step = f"Python {sys.version.split()[0]} is older than {need[0]}.{need[1]}: getting uv to find a newer one"
    boot = scratch / "boot"
    uv = get_uv(venv_python(boot), status) if new_venv(boot, status, quiet=True) else None
    if uv is None:
        raise SetupFailed(need_line(need))
    status.step = f"uv venv --python >={need[0]}.{need[1]} (a Python on this machine, or a managed one)"
    code, _ = run_step(uv_venv_command(uv, venv, need), status)
    if code != 0 or python_version(venv_python(venv)) < need:
        raise SetupFailed(need_line(need))
    return venv_python(venv), uv


def new_venv(venv: Path, status: "Status", *, clear: bool = False, quiet: bool = False) -> bool:
    """``python -m venv --without-pip``: a venv in a fraction of a second (seeding pip costs seconds, and the
    pip that brings uv need not live in the venv: ``pip --python`` installs into another environment)."""
    if not quiet:
        why = " --clear: its Python was too old" if clear else ""
        status.step = f"creating {venv.name}/ (python -m venv{why})"
    cmd = [sys.executable, "-m", "venv", "--without-pip", *(["--clear"] if clear else []), str(venv)]
    code, output = run_step(cmd, status)
    if code != 0 and not quiet:
        raise SetupFailed(output + "setup: `python -m venv` failed (on Debian/Ubuntu: apt install python3-venv)")
    return code == 0


def ensure_pip(python: Path, status: "Status") -> bool:
    """pip inside the venv (``ensurepip``), for the pip path and for a venv made without it."""
    if run_step([str(python), "-m", "pip", "--version"], status)[0] == 0:
        return True
    status.step = "python -m ensurepip (pip into the venv)"
    return run_step([str(python), "-m", "ensurepip", "--upgrade", "--default-pip"], status)[0] == 0


def get_uv(python: Path, status: "Status") -> Path | None:
    """uv in ``python``'s venv: already there, or installed now by pip (this Python's pip with ``--python``, else
    the venv's own pip); None when it cannot be had or ``GRADER_SETUP=pip`` asks for pip."""
    if os.environ.get("GRADER_SETUP") == "pip":
        return None
    uv = venv_uv(python.parent.parent)
    if uv.exists():
        return uv
    status.step = "pip install uv (the installer that takes seconds where pip takes a minute)"
    if run_step(pip_get_uv(Path(sys.executable), into=python), status)[0] != 0 and ensure_pip(python, status):
        run_step(pip_get_uv(python), status)
    return uv if uv.exists() else None


def plan(uv: Path, python: Path, project: str, settings: dict, lock: Path, scratch: Path,
         cpu_index_reachable: bool, index_reachable: bool = True) -> tuple:
    """(the uv install command, its environment, the sentence about torch). Where even the package index does not
    answer, uv runs ``--offline``: its cache and local files (find-links folders, file:// indexes) only, where
    it would otherwise fail on the first index it cannot reach (pip skips such an index with a warning)."""
    backend, sentence = torch_source(cpu_index_reachable)
    offline = [] if index_reachable else ["--offline"]
    constraints = constraints_from_lock(lock, scratch / "constraints.txt", hashes=hashes_fit(python, lock),
                                        local_torch=lock_platform_matches())
    cmd = uv_install_command(uv, python, project, [*uv_options(settings), *backend, *offline], constraints)
    return cmd, uv_environment(settings), sentence


def index_answers(settings: dict) -> bool:
    """Does the package index (pip's index-url, else PyPI) answer? A local (file://) one always does."""
    index = (settings.get("index-url") or [PYPI])[0]
    return not index.startswith(("http://", "https://")) or reachable(index.rstrip("/") + "/pip/")


def probe() -> tuple:
    """(pip's settings, does PyTorch's CPU index answer, does the package index answer): what the uv install needs
    to know, found while pip brings uv (a second of pip's start and two HTTP requests, off the critical path)."""
    settings = pip_config(sys.executable)
    return settings, reachable(CPU_INDEX + "/torch/"), index_answers(settings)


def install_with_uv(uv: Path, python: Path, project: str, extra_args: list, status: "Status", scratch: Path,
                    probed=None) -> int:
    """``probed``: a future of ``probe()`` started earlier; None: probe now."""
    status.step = "reading pip's settings (uv does not) and whether the package indexes answer"
    settings, cpu_answers, index_answers_ = probed.result() if probed is not None else probe()
    if not settings:  # this Python has no pip, or no settings: the venv's pip may have some
        settings = pip_config(str(python))
        index_answers_ = index_answers(settings)
    cmd, env, sentence = plan(uv, python, project, settings, LOCK, scratch, cpu_answers, index_answers_)
    status.write(f"  {sentence}")
    status.step = (f"uv pip install -e {project} (under requirements.lock{'' if '--offline' not in cmd else ', offline'};"
                   " unpacking torch, 700 MB, takes most of it)")
    code, output = run_step(cmd + extra_args, status, env)
    if code != 0:
        status.write(output.rstrip())
    return code


def install_with_pip(python: Path, project: str, pip_args: list, status: "Status", scratch: Path) -> int:
    """Today's path without uv: a pip dry run decides whether PyTorch's CPU index is needed (choose_torch)."""
    pin = torch_pin()
    extra: list = []
    if not pin_satisfied(pin, _venv_torch(python)):
        status.step = f"asking pip which torch `pip install {pin}` would download (a dry run)"
        extra, sentence = choose_torch(pin, pip_args, python=str(python))
        status.write(f"  {sentence}")
    constraints = constraints_from_lock(LOCK, scratch / "constraints.txt", hashes=False, local_torch=False)
    if constraints:
        extra += ["--constraint", str(constraints)]
    status.step, status.tmpdir = f"pip install -e {project} ({MEASURED})", scratch
    cmd = [str(python), "-m", "pip", "install", "--progress-bar", "off", "-e", project, *extra, *pip_args]
    code, output = run_step(cmd, status, {"TMPDIR": str(scratch)})
    if code != 0:
        status.write(output.rstrip())
    return code


def _venv_torch(python: Path) -> str | None:
    try:
        return subprocess.run([str(python), "-c", "from importlib import metadata; print(metadata.version('torch'))"],
                              capture_output=True, text=True, timeout=60).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python grader/install.py", description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=Path(sys.prefix),
                        help="the venv to make and install into (default: this Python's environment)")
    parser.add_argument("--extras", default="", help="optional dependency groups to add (dev, dask, bench)")
    args, pip_args = parser.parse_known_args(argv)
    started = time.monotonic()
    need = requires_python()
    no_wheel = torch_wheel_note()
    if no_wheel:  # say why here, rather than let the installer fail deep in its resolver
        print(f"setup stopped: {no_wheel}", flush=True)
        return 2
    project = f".[{args.extras}]" if args.extras else "."
    with tempfile.TemporaryDirectory(prefix="setup-") as tmp, Status(sys.stdout, "setting up") as status, \
            ThreadPoolExecutor(max_workers=1) as probing:
        probed = probing.submit(probe) if os.environ.get("GRADER_SETUP") != "pip" else None
        try:
            python, uv = make_venv(args.venv.absolute(), need, status, Path(tmp))
        except SetupFailed as failed:
            status.write(str(failed))
            return 1
        if uv is None:
            why = "GRADER_SETUP=pip" if os.environ.get("GRADER_SETUP") == "pip" else "uv could not be installed"
            status.write(f"Installing with pip ({why}): slower than uv, about a minute.")
            code = install_with_pip(python, project, pip_args, status, Path(tmp))
        else:
            code = install_with_uv(uv, python, project, pip_args, status, Path(tmp), probed)
        if code == 0:
            files = install_bytecode.listed(args.extras, LOCK) if hashes_fit(python, LOCK) else None
            how = f"compiling the {len(files)} files it loads" if files else "importing it"
            status.step = f"writing the bytecode of what grading imports, once ({how}: grader/install_bytecode.py)"
            cmd, env = install_bytecode.command(python, args.extras, files=files, scratch=Path(tmp))
            run_step(cmd, status, env)  # only time is at stake: a failure here leaves the first imports to do it
    if code != 0:
        print(f"setup failed: the installer exited with code {code} (its output is above).", flush=True)
        return code
    print(f"Installed in {time.monotonic() - started:.0f} s with {'pip' if uv is None else 'uv'}:"
          f" torch {_venv_torch(python) or '?'}.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
