"""Which torch the setup installs, where that is a question (grader/install.py; stdlib only, Python 3.8+).

Two answers live here: on the pip path, whether pip would pick a CUDA build and PyTorch's CPU index is needed
(``choose_torch``, from a pip dry run); and whether this machine has a wheel of the pinned torch at all
(``torch_wheel_note``: an Intel Mac has none). A sibling of install.py, imported by it both as
``grader.install_torch`` and, when install.py runs as a script before anything is installed, as ``install_torch``.
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CPU_WHEEL_MB = 192  # torch 2.13.0+cpu for CPython 3.11 on x86-64 Linux
CUDA_DOWNLOAD_GB = 2.7  # torch 2.13.0 from PyPI with its nvidia-*, cuda-* and triton packages (x86-64 Linux)
# what only a CUDA build of torch depends on
CUDA_PACKAGE = re.compile(r"^(nvidia-|cuda-|triton$)", re.I)


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
