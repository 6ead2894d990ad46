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

Progress: the tools' output goes through one status line on a terminal (the step, the time), and a few lines in a
log otherwise; all of it is printed when a step fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCK = REPO_ROOT / "requirements.lock"
PYPI = "https://pypi.org/simple"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CPU_WHEEL_MB = 192  # torch 2.13.0+cpu for CPython 3.11 on x86-64 Linux
CUDA_DOWNLOAD_GB = 2.7  # torch 2.13.0 from PyPI with its nvidia-*, cuda-* and triton packages (x86-64 Linux)
# measured on this project's machines (2 cores, torch wheel on local disk; bench/bench_setup.py)
MEASURED = ("measured on 2 cores with the torch wheel on local disk: 53 s at load average 3-6, 3-6 minutes when"
            " other work keeps both cores busy; a download adds its time")
# what only a CUDA build of torch depends on
CUDA_PACKAGE = re.compile(r"^(nvidia-|cuda-|triton$)", re.I)
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


# ----------------------------------------------------------------------------------------------------------
# The pip path (where uv cannot be had): which torch would pip install? uv's --torch-backend does this
# ----------------------------------------------------------------------------------------------------------


def _active(requirement: str, environment: dict) -> bool:
    """Does a ``Requires-Dist`` line apply here (its marker, evaluated with pip's own parser)?"""
    if ";" not in requirement:
        return True
    marker = requirement.split(";", 1)[1].strip()
    if "extra ==" in marker or "extra==" in marker:
        return False
    try:
        from pip._vendor.packaging.markers import Marker
    except ImportError:  # a pip without it: on Linux, take CUDA requirements as they come
        return sys.platform.startswith("linux")
    try:
        return Marker(marker).evaluate({**environment, "extra": ""})
    except Exception:  # noqa: BLE001 - a marker we cannot read: assume it applies
        return True


def is_cuda_build(item: dict, environment: dict) -> bool:
    """Is the torch that pip's report would install a CUDA build (one that pulls ``nvidia-*`` packages here)?"""
    meta = item.get("metadata", {})
    if "+cpu" in meta.get("version", ""):
        return False
    for requirement in meta.get("requires_dist", []) or []:
        name = re.split(r"[\s;\[<>=!~(]", requirement.strip(), maxsplit=1)[0]
        if CUDA_PACKAGE.match(name) and _active(requirement, environment):
            return True
    return False


def dry_run(pin: str, pip_args: list[str], run=subprocess.run, python: str = sys.executable) -> dict | None:
    """pip's report of what ``pip install PIN`` would install (torch alone), or None when pip cannot say."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [python, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet",
               "--retries", "1", "--report", str(report), *pip_args, pin]
        try:
            proc = run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError):
            return None
        if proc.returncode != 0 or not report.is_file():
            return None
        try:
            return json.loads(report.read_text())
        except ValueError:
            return None


def choose_torch(pin: str, pip_args: list[str], run=subprocess.run,
                 python: str = sys.executable) -> tuple[list[str], str]:
    """(extra pip arguments, a sentence for the student) for installing ``pin``."""
    report = dry_run(pin, pip_args, run=run, python=python)
    if report is None:
        return [], f"{pin}: pip could not say in advance which build it would pick; installing as usual."
    item = next((i for i in report.get("install", []) if i.get("metadata", {}).get("name", "").lower() == "torch"),
                None)
    if item is None:
        return [], f"{pin}: installing as usual."
    version = item["metadata"].get("version", "?")
    where = "a local file" if item.get("download_info", {}).get("url", "").startswith("file:") else "your package index"
    if not is_cuda_build(item, report.get("environment", {})):
        build = "CPU build" if "+cpu" in version else "build"
        return [], f"torch {version} ({build} from {where})."
    return (["--extra-index-url", CPU_INDEX],
            f"pip would pick torch's CUDA build ({CUDA_DOWNLOAD_GB} GB to download with its nvidia-* packages); this"
            f" lesson runs on the CPU, so the CPU build ({CPU_WHEEL_MB} MB) comes from PyTorch's CPU wheel index"
            f" instead ({CPU_INDEX}).")


# ----------------------------------------------------------------------------------------------------------
# One status line for the whole install
# ----------------------------------------------------------------------------------------------------------

STEP = re.compile(r"^\s*(Resolved|Prepared|Installed|Uninstalled|Audited|Using Python|Using CPython|Creating|Collecting|Downloading|Obtaining|Installing|Building|Preparing|Processing|Using cached|"
                  r"Successfully|Getting requirements|Checking if)\b")
DOWNLOAD = re.compile(r"^\s*Downloading (\S+) \(([\d.]+ [kMG]?B)\)")


class Status:
    """One line for the whole install, rewritten in place on a terminal: the install's step (``step``), the line
    its tool printed last (``detail``), bytes downloaded so far, the time."""

    FRAMES = "|/-\\"

    def __init__(self, stream, label: str, tmpdir: Path | None = None, step: str = "starting") -> None:
        self.stream, self.label, self.tmpdir = stream, label, tmpdir
        self.tty = stream.isatty()
        self._step, self.detail, self.width, self.start = step, "", 0, time.monotonic()
        self.last_log = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def __enter__(self) -> "Status":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self.tty:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()

    @property
    def step(self) -> str:
        return self._step

    @step.setter
    def step(self, text: str) -> None:
        """A new step of the whole install; a log gets it as a line, a terminal on the status line."""
        self._step, self.detail = text, ""
        if not self.tty:
            self.write(f"  {text[:150]}")
            self.last_log = time.monotonic()

    def write(self, text: str) -> None:
        """A line that stays (above the status line on a terminal)."""
        if self.tty:
            self.stream.write("\r" + " " * self.width + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()

    def line(self, text: str) -> None:
        """A line of pip's output: the step it is on now."""
        text = text.strip()
        if not STEP.match(text):
            return
        self.detail = text
        logged = DOWNLOAD.match(text) or text.startswith(("Installing collected", "Successfully installed",
                                                          "Resolved", "Installed", "Using Python"))
        if not self.tty and logged:
            self.stream.write(f"  {text[:150]}\n")
            self.stream.flush()
            self.last_log = time.monotonic()

    def _downloaded(self) -> str:
        """Bytes of the file pip is downloading now (pip writes it into its temporary folder as it comes)."""
        if self.tmpdir is None:
            return ""
        try:
            sizes = [(p.stat().st_mtime, p.stat().st_size) for p in self.tmpdir.glob("pip-*/*") if p.is_file()]
        except OSError:
            return ""
        if not sizes or not DOWNLOAD.match(self.detail):
            return ""
        return f", {max(sizes)[1] / 1e6:.1f} MB so far"

    def _spin(self) -> None:
        frame = 0
        while not self._stop.wait(0.2):
            elapsed = time.monotonic() - self.start
            if self.tty:
                now = f"{self._step}: {self.detail}" if self.detail else self._step  # the install's step, the tool's
                text = f"  {self.FRAMES[frame % 4]} {self.label} [{elapsed:4.0f} s] {now}{self._downloaded()}"
                text = text[: max(40, _columns() - 1)]
                self.stream.write("\r" + text.ljust(self.width))
                self.stream.flush()
                self.width = len(text)
                frame += 1
            elif time.monotonic() - self.last_log > 20:  # a log gets a line now and then, so a wait is never mute
                self.stream.write(f"  ... {elapsed:.0f} s: {(self.detail or self._step)[:120]}\n")
                self.stream.flush()
                self.last_log = time.monotonic()


def _columns() -> int:
    return shutil.get_terminal_size((100, 24)).columns or 100


# ----------------------------------------------------------------------------------------------------------
# pip's configuration, translated for uv
# ----------------------------------------------------------------------------------------------------------

# pip setting -> uv option; several values in one pip setting are separated by whitespace
UV_FLAGS = {"find-links": "--find-links", "index-url": "--default-index", "extra-index-url": "--index",
            "constraint": "--constraint"}


def pip_config(python: str = sys.executable, run=subprocess.run) -> dict:
    """pip's settings as ``pip config list`` prints them (``global.find-links='/x'``, ``:env:.constraint=...``):
    {setting: [values]}, the environment's ``PIP_*`` winning over the files, as in pip."""
    try:
        proc = run([python, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return {}
    settings: dict = {}
    for scope in ("global", "install", ":env:"):  # later scopes win, as they do in pip
        for line in proc.stdout.splitlines():
            found = re.match(r"^(\S+?)\.([\w-]+)='(.*)'$", line.strip())
            if found and found.group(1) == scope:
                settings[found.group(2)] = found.group(3).split()
    return settings


def uv_options(settings: dict) -> list:
    """uv's options for pip's settings; the index strategy is pip's own (see the module's docstring)."""
    options = []
    for key, flag in UV_FLAGS.items():
        for value in settings.get(key, []):
            options += [flag, value]
    if settings.get("no-index") in (["1"], ["true"], ["yes"], ["on"]):
        options.append("--no-index")
    if any(k in settings for k in ("find-links", "extra-index-url")):
        options += ["--index-strategy", "unsafe-best-match"]
    return options


def uv_environment(settings: dict) -> dict:
    """Environment variables for uv from pip's settings uv has no option for (a CA bundle, a timeout)."""
    env = {}
    if settings.get("cert"):
        env["SSL_CERT_FILE"] = settings["cert"][0]
    if settings.get("timeout") or settings.get("default-timeout"):
        env["UV_HTTP_TIMEOUT"] = (settings.get("timeout") or settings["default-timeout"])[0]
    return env


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
    return [], ("PyTorch's index does not answer here: torch's CPU build comes from a local wheel, a --find-links"
                " folder or uv's cache.")


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


def pip_get_uv(python: Path, into: Path | None = None) -> list:
    """The command that installs uv with ``python``'s pip (pip's own configuration applies), into ``into``'s
    environment when given (``pip --python``, pip 22.3 and later)."""
    target = ["--python", str(into)] if into is not None else []
    return [str(python), "-m", "pip", *target, "install", "--quiet", "--disable-pip-version-check", "uv"]


def uv_venv_command(uv: Path, venv: Path, need: tuple) -> list:
    """uv makes the venv with a suitable Python: one it finds on the machine, or a managed one it downloads."""
    return [str(uv), "venv", "--allow-existing", "--python", f">={need[0]}.{need[1]}", str(venv)]


def uv_install_command(uv: Path, python: Path, project: str, options: list, constraints: Path | None) -> list:
    """``uv pip install -e PROJECT uv pip`` into ``python``'s environment, under the lock's constraints; uv
    itself too, so that later installs (``make test``'s extras) take the fast way, and pip, which a venv made
    without it would otherwise lack."""
    cmd = [str(uv), "pip", "install", "--python", str(python), "-e", project, "uv", "pip", *options]
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


def install_with_uv(uv: Path, python: Path, project: str, extra_args: list, status: "Status", scratch: Path) -> int:
    status.step = "reading pip's settings for uv; do the package index and PyTorch's CPU index answer?"
    settings = pip_config(sys.executable) or pip_config(str(python))  # the venv may have no pip yet
    cmd, env, sentence = plan(uv, python, project, settings, LOCK, scratch, reachable(CPU_INDEX + "/torch/"),
                              index_answers(settings))
    status.write(f"  {sentence}")
    status.step = f"uv pip install -e {project} (under requirements.lock{'' if '--offline' not in cmd else ', offline'})"
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


TORCH_WHEEL_PLATFORMS = "Linux (x86-64, aarch64), macOS on Apple silicon (arm64), Windows (x86-64)"


def torch_wheel_note(system: str | None = None, machine: str | None = None) -> str | None:
    """What to tell a student whose machine has no wheel of the pinned torch (None where it has one).

    PyTorch stopped publishing macOS x86-64 wheels after 2.2, so an Intel Mac cannot install torch==2.13.0 with
    pip: it fails deep in the resolver with "no matching distribution". The setup prints this instead."""
    system = system or platform.system()
    machine = (machine or platform.machine()).lower()
    if system == "Darwin" and machine in ("x86_64", "amd64", "i386"):
        return ("This is an Intel Mac: PyTorch publishes no wheels of torch 2.13.0 for it (none for Intel Macs since "
                "torch 2.2), so pip cannot install it here. Grade on another machine, in a Linux container or VM "
                "(Docker Desktop: `docker run -it -v $PWD:/work python:3.12 bash`, then `make setup` inside), "
                "or in a GitHub Codespace.")
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
    with tempfile.TemporaryDirectory(prefix="setup-") as tmp, Status(sys.stdout, "setting up") as status:
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
            code = install_with_uv(uv, python, project, pip_args, status, Path(tmp))
    if code != 0:
        print(f"setup failed: the installer exited with code {code} (its output is above).", flush=True)
        return code
    print(f"Installed in {time.monotonic() - started:.0f} s with {'pip' if uv is None else 'uv'}:"
          f" torch {_venv_torch(python) or '?'}.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
