"""``python -m grader.install``: install the project into this Python environment (``make setup``; the first
``make grade`` runs it), saying what it does while it does it.

Which torch: the project pins ``torch==X`` in ``pyproject.toml``. On Linux, plain PyPI resolves that pin to the
CUDA build: a 527 MB wheel plus ``nvidia-*``, ``cuda-*`` and ``triton`` packages, 2.7 GB to download in all for
torch 2.13.0 and Python 3.11, none of which this CPU-only lesson uses. The CPU build is 192 MB. So before
installing, ask pip what it WOULD install (``pip install --dry-run --report``, torch alone, no dependencies:
about 2 s with a local wheel, 9 s against PyPI) and only when that is a CUDA build add PyTorch's CPU wheel index
(``--extra-index-url``; the CPU wheel's version, ``X+cpu``, then wins over PyPI's ``X``). Where pip already
finds a CPU build (a local wheel or ``--find-links``, a package cache, a mirror), or on macOS and Windows (where
PyPI's torch has no CUDA), nothing is added; when the dry run cannot run (offline, an old pip), pip installs as
it would have anyway. Nothing here needs more than the standard library: it runs before anything is installed.

Progress: pip's output goes through one status line on a terminal (the step pip is on, the size of a download
so far, the time), and a few lines in a log otherwise; all of it is printed when pip fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
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


def torch_pin(pyproject: Path = REPO_ROOT / "pyproject.toml") -> str:
    """The torch requirement of the project (``torch==2.13.0``), read from pyproject.toml."""
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    return next(d.split(";")[0].strip() for d in deps if re.match(r"^torch\s*[=<>~!]", d))


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def pin_satisfied(pin: str, version: str | None) -> bool:
    """Does an installed ``version`` (``2.13.0+cpu``) meet an exact pin (``torch==2.13.0``)?"""
    return version is not None and "==" in pin and version.split("+")[0] == pin.split("==", 1)[1].strip()


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


def dry_run(pin: str, pip_args: list[str], run=subprocess.run) -> dict | None:
    """pip's report of what ``pip install PIN`` would install (torch alone), or None when pip cannot say."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet",
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


def choose_torch(pin: str, pip_args: list[str], run=subprocess.run) -> tuple[list[str], str]:
    """(extra pip arguments, a sentence for the student) for installing ``pin``."""
    report = dry_run(pin, pip_args, run=run)
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
# Running pip with a status line
# ----------------------------------------------------------------------------------------------------------

STEP = re.compile(r"^\s*(Collecting|Downloading|Obtaining|Installing|Building|Preparing|Processing|Using cached|"
                  r"Successfully|Getting requirements|Checking if)\b")
DOWNLOAD = re.compile(r"^\s*Downloading (\S+) \(([\d.]+ [kMG]?B)\)")


class Status:
    """One line, rewritten in place on a terminal: the step pip is on, bytes downloaded so far, the time."""

    FRAMES = "|/-\\"

    def __init__(self, stream, label: str, tmpdir: Path | None = None, step: str = "starting pip") -> None:
        self.stream, self.label, self.tmpdir = stream, label, tmpdir
        self.tty = stream.isatty()
        self.step, self.width, self.start = step, 0, time.monotonic()
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

    def line(self, text: str) -> None:
        """A line of pip's output: the step it is on now."""
        text = text.strip()
        if not STEP.match(text):
            return
        self.step = text
        logged = DOWNLOAD.match(text) or text.startswith(("Installing collected", "Successfully installed"))
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
        if not sizes or not DOWNLOAD.match(self.step):
            return ""
        return f", {max(sizes)[1] / 1e6:.1f} MB so far"

    def _spin(self) -> None:
        frame = 0
        while not self._stop.wait(0.2):
            elapsed = time.monotonic() - self.start
            if self.tty:
                text = f"  {self.FRAMES[frame % 4]} {self.label} [{elapsed:4.0f} s] {self.step}{self._downloaded()}"
                text = text[: max(40, _columns() - 1)]
                self.stream.write("\r" + text.ljust(self.width))
                self.stream.flush()
                self.width = len(text)
                frame += 1
            elif time.monotonic() - self.last_log > 20:  # a log gets a line now and then, so a wait is never mute
                self.stream.write(f"  ... {elapsed:.0f} s: {self.step[:120]}\n")
                self.stream.flush()
                self.last_log = time.monotonic()


def _columns() -> int:
    return shutil.get_terminal_size((100, 24)).columns or 100


def pip_install(args: list[str], label: str, stream=None) -> tuple[int, str]:
    """Run ``pip install ARGS`` with a status line; returns (exit code, pip's output)."""
    stream = stream or sys.stdout
    with tempfile.TemporaryDirectory(prefix="setup-") as tmp:
        env = {**os.environ, "TMPDIR": tmp, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        cmd = [sys.executable, "-m", "pip", "install", "--progress-bar", "off", *args]
        out: list[str] = []
        with Status(stream, label, Path(tmp)) as status:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                    cwd=REPO_ROOT)
            for line in proc.stdout:
                if NOISE.search(line):
                    continue
                out.append(line)
                status.line(line)
            code = proc.wait()
    return code, "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.install", description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default="", help="optional dependency groups to add (dev, bench)")
    args, pip_args = parser.parse_known_args(argv)
    started = time.monotonic()
    pin = torch_pin()
    extra: list[str] = []
    from grader.portable import torch_wheel_note  # standard library only: importable before anything is installed

    no_wheel = None if pin_satisfied(pin, installed_version("torch")) else torch_wheel_note()
    if no_wheel:  # say why here, rather than let pip fail deep in its resolver
        print(f"setup stopped: {no_wheel}", flush=True)
        return 2
    if pin_satisfied(pin, installed_version("torch")):
        print(f"torch {installed_version('torch')} is already installed.", flush=True)
    else:
        print(f"Which torch: asking pip what `pip install {pin}` would download (a dry run)...", flush=True)
        with Status(sys.stdout, "asking pip", step=f"pip install --dry-run {pin}"):
            extra, sentence = choose_torch(pin, pip_args)
        print(f"  {sentence}", flush=True)
    project = f".[{args.extras}]" if args.extras else "."
    print(f"Installing the project and its dependencies into {Path(sys.prefix).name}/ ({MEASURED})...", flush=True)
    code, output = pip_install(["-e", project, *extra, *pip_args], "installing", sys.stdout)
    if code != 0:
        sys.stdout.write(output)
        print(f"setup failed: pip exited with code {code} (its output is above).", flush=True)
        return code
    version = installed_version("torch") or "?"
    note = ""
    if extra and "+cpu" not in version:
        note = " (PyTorch's CPU wheel index could not be used, so pip took the default build)"
    print(f"Installed in {time.monotonic() - started:.0f} s: torch {version}{note}.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
