"""grader.install, the pip path (where uv cannot be had): PyTorch's CPU index is added only where pip would otherwise
download the CUDA build."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from grader import install

LINUX = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "python_version": "3.11",
         "python_full_version": "3.11.7", "os_name": "posix", "implementation_name": "cpython",
         "platform_python_implementation": "CPython", "platform_release": "", "platform_version": "",
         "implementation_version": "3.11.7"}
MACOS = {**LINUX, "sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64"}
# torch 2.13.0's Requires-Dist on PyPI (the CUDA build), as pip's report gives it
PYPI_REQUIRES = [
    "filelock", "typing-extensions>=4.10.0", "setuptools>=77.0.3", "sympy>=1.13.3", "networkx>=2.5.1", "jinja2",
    "fsspec>=0.8.5",
    'cuda-toolkit[cublas,cudart,cufft]==13.0.3; platform_system == "Linux"',
    'nvidia-cudnn-cu13==9.20.0.48; platform_system == "Linux"',
    'triton==3.7.1; platform_system == "Linux" and python_version < "3.15"',
    'optree>=0.13.0; extra == "optree"',
]


def item(version: str, requires: list[str], url: str = "https://files.example/torch.whl") -> dict:
    return {"metadata": {"name": "torch", "version": version, "requires_dist": requires},
            "download_info": {"url": url}}


def test_the_cuda_build_is_told_apart_from_the_cpu_build():
    assert install.is_cuda_build(item("2.13.0", PYPI_REQUIRES), LINUX)
    assert not install.is_cuda_build(item("2.13.0", PYPI_REQUIRES), MACOS)  # its CUDA requirements are Linux-only
    assert not install.is_cuda_build(item("2.13.0+cpu", PYPI_REQUIRES[:7]), LINUX)
    assert not install.is_cuda_build(item("2.13.0", PYPI_REQUIRES[:7] + [PYPI_REQUIRES[-1]]), LINUX)


def fake_pip(report: dict | None, calls: list):
    """A stand-in for subprocess.run that writes ``report`` where pip's --report would (None: pip fails)."""
    def run(cmd, **kwargs):
        calls.append(cmd)
        if report is not None:
            Path(cmd[cmd.index("--report") + 1]).write_text(json.dumps(report))
        return subprocess.CompletedProcess(cmd, 0 if report is not None else 1, "", "")
    return run


def test_the_cpu_index_is_added_only_for_a_cuda_build():
    calls: list = []
    cuda = {"install": [item("2.13.0", PYPI_REQUIRES)], "environment": LINUX}
    extra, sentence = install.choose_torch("torch==2.13.0", ["--find-links", "wheels"], run=fake_pip(cuda, calls))
    assert extra == ["--extra-index-url", install.CPU_INDEX]
    assert "CUDA" in sentence and "CPU build" in sentence
    # the dry run asks about torch alone, with the student's own pip options, and installs nothing
    cmd = calls[0]
    assert {"--dry-run", "--no-deps", "--report"} <= set(cmd) and cmd[-1] == "torch==2.13.0"
    assert cmd[cmd.index("--find-links") + 1] == "wheels"

    local = {"install": [item("2.13.0+cpu", PYPI_REQUIRES[:7], "file:///opt/wheels/torch.whl")], "environment": LINUX}
    extra, sentence = install.choose_torch("torch==2.13.0", [], run=fake_pip(local, []))
    assert extra == [] and "CPU build from a local file" in sentence

    # offline, or a pip too old for --dry-run: install as before, without any index of ours
    extra, sentence = install.choose_torch("torch==2.13.0", [], run=fake_pip(None, []))
    assert extra == [] and "as usual" in sentence


def test_the_pin_comes_from_pyproject_and_a_local_build_meets_it():
    pin = install.torch_pin()
    assert pin.startswith("torch==")
    version = pin.split("==")[1]
    assert install.pin_satisfied(pin, f"{version}+cpu") and install.pin_satisfied(pin, version)
    assert not install.pin_satisfied(pin, "2.0.0") and not install.pin_satisfied(pin, None)


def test_pip_runs_with_a_status_line_and_its_output_is_kept(tmp_path, capsys):
    # a real pip run that needs no network: install nothing, just print pip's help for `install`
    with install.Status(sys.stdout, "checking") as status:
        code, output = install.run_step([sys.executable, "-m", "pip", "install", "--help"], status)
    assert code == 0 and "Usage" in output


def test_a_log_repeats_no_tool_line_while_the_tool_says_nothing_new():
    """Without a terminal the status writes a line every 20 s; a tool line that has not changed since the last one
    is not written again (pip's "Successfully uninstalled setuptools" twice read as a loop): the step is."""
    import io

    class Ticks:  # each wait returns at once, as if 21 s had passed; the third ends the loop
        def __init__(self, status):
            self.status, self.calls = status, 0

        def wait(self, _seconds):
            self.calls += 1
            self.status.last_log -= 21
            return self.calls > 3

    out = io.StringIO()
    status = install.Status(out, "setting up")
    status._step, status.detail = "pip install -e .", "Successfully uninstalled setuptools-65.5.0"
    status._stop = Ticks(status)
    status._spin()
    lines = out.getvalue().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "Successfully uninstalled setuptools-65.5.0", "still on: pip install -e .", "still on: pip install -e ."]
