"""The setup (grader/install.py) and the lock (grader/lockfile.py): uv when it can be had, pip's settings
translated for it, the lock as every install's constraints, torch's CPU build online and offline, any Python.

Most tests read the commands the setup would run (``plan``, a fake ``run_step``); the few that install for real
are marked slow. PyTorch's index and uv's managed Pythons cannot be reached from our machines: the online branch
is checked by the command it runs, the offline one by running it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from grader import install, lockfile

REPO = Path(__file__).resolve().parent.parent
PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"


def pyenv_python(version: str) -> str | None:
    """The newest pyenv interpreter of ``version`` (3.8, 3.10...) on this machine, or None."""
    found = sorted(PYENV.glob(f"{version}.*/bin/python{version}"),
                   key=lambda p: [int(x) for x in p.parts[-3].split(".") if x.isdigit()])
    return str(found[-1]) if found else None


PIP_CONFIG_LIST = """\
global.find-links='/srv/wheels'
global.extra-index-url='file:///srv/a/simple https://mirror.example/simple'
global.constraint='/etc/pip-constraints.txt'
global.cert='/etc/ssl/ca.pem'
global.index-url='https://pypi.example/simple'
:env:.find-links='/srv/env-wheels /srv/more'
:env:.default-timeout='180'
"""


def fake_config(stdout: str):
    def run(cmd, **kwargs):
        assert cmd[1:] == ["-m", "pip", "config", "list"]
        return subprocess.CompletedProcess(cmd, 0, stdout, "")
    return run


def test_pip_settings_become_uv_options_with_pips_index_strategy():
    settings = install.pip_config("python", run=fake_config(PIP_CONFIG_LIST))
    assert settings["find-links"] == ["/srv/env-wheels", "/srv/more"]  # PIP_* wins over the files, as in pip
    options = install.uv_options(settings)
    pairs = list(zip(options[::2], options[1::2]))
    assert ("--find-links", "/srv/env-wheels") in pairs and ("--find-links", "/srv/more") in pairs
    assert ("--find-links", "/srv/wheels") not in pairs
    assert ("--index", "file:///srv/a/simple") in pairs and ("--index", "https://mirror.example/simple") in pairs
    assert ("--default-index", "https://pypi.example/simple") in pairs
    assert ("--constraint", "/etc/pip-constraints.txt") in pairs
    assert ("--index-strategy", "unsafe-best-match") in pairs
    assert install.uv_environment(settings) == {"SSL_CERT_FILE": "/etc/ssl/ca.pem", "UV_HTTP_TIMEOUT": "180"}


def test_no_pip_settings_no_uv_options():
    settings = install.pip_config("python", run=fake_config(""))
    assert settings == {} and install.uv_options(settings) == [] and install.uv_environment(settings) == {}


def test_torch_backend_only_where_pytorchs_index_answers():
    online, _ = install.torch_source(True)
    offline, sentence = install.torch_source(False)
    assert online == ["--torch-backend", "cpu"]
    assert offline == [] and "local wheel" in sentence


def test_uv_installs_the_project_under_the_lock_with_its_hashes_where_they_fit(tmp_path):
    settings = install.pip_config("python", run=fake_config(PIP_CONFIG_LIST))
    python = Path(sys.executable)  # the lock's Python on this project's machines: its hashes apply
    assert install.hashes_fit(python, lockfile.LOCK) == (install.lock_platform_matches() and sys.version_info[:2]
                                                          == install.lock_python(lockfile.LOCK))
    cmd, env, _ = install.plan(Path("/v/bin/uv"), python, ".[dev]", settings, lockfile.LOCK,
                               tmp_path, cpu_index_reachable=True)
    assert cmd[:6] == ["/v/bin/uv", "pip", "install", "--python", str(python), "-e"] and cmd[6] == ".[dev]"
    assert install.uv_requirement() in cmd and cmd[cmd.index("--torch-backend") + 1] == "cpu"
    constraints = Path(cmd[cmd.index("--constraint", cmd.index("--torch-backend")) + 1]).read_text()
    if install.hashes_fit(python, lockfile.LOCK):
        assert re.search(r"^numpy==\S+ \\\n    --hash=sha256:[0-9a-f]{64}", constraints, re.M)
    else:  # another Python or platform takes other files of the same versions
        assert "--hash" not in constraints and re.search(r"^numpy==\S+$", constraints, re.M)
    torch_line = next(line for line in constraints.splitlines() if line.startswith("torch=="))
    expected = "torch==2.13.0+cpu" if install.lock_platform_matches() else "torch==2.13.0"
    assert torch_line == expected
    assert env["SSL_CERT_FILE"] == "/etc/ssl/ca.pem"


def test_pip_gets_the_locks_versions_without_hashes(tmp_path):
    out = install.constraints_from_lock(lockfile.LOCK, tmp_path / "c.txt", hashes=False, local_torch=False)
    text = out.read_text()
    assert "--hash" not in text and "\\" not in text
    assert "torch==2.13.0" in text.splitlines()
    pinned = lockfile.pins(lockfile.LOCK)
    assert {re.sub(r"[-_.]+", "-", n).lower(): v for n, v in re.findall(r"^(\S+)==(\S+)$", text, re.M)} == {
        **pinned, "torch": "2.13.0"}
    assert install.lock_python(tmp_path / "missing.lock") == (0, 0)
    assert install.constraints_from_lock(tmp_path / "missing.lock", tmp_path / "d.txt", hashes=True,
                                         local_torch=True) is None


# ----------------------------------------------------------------------------------------------------------
# The lock
# ----------------------------------------------------------------------------------------------------------


def test_the_lock_agrees_with_pyproject():
    """Run `make lock` after changing pyproject.toml's dependencies."""
    assert lockfile.check() == []


def test_a_changed_pyproject_or_a_stale_pin_is_caught(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    text = (REPO / "pyproject.toml").read_text()
    pyproject.write_text(text.replace('"rich>=13",', '"rich>=13",\n    "no-such-package>=1",'))
    problems = lockfile.check(lockfile.LOCK, pyproject)
    assert any("another pyproject.toml" in p for p in problems) and any(p.startswith("no-such-package ") for p in problems)
    lock = tmp_path / "requirements.lock"
    lock.write_text(re.sub(r"^numpy==\S+", "numpy==1.0.0", lockfile.LOCK.read_text(), flags=re.M))
    assert lockfile.check(lock) == [
        "requirements.imports is missing or was made from another requirements.lock: run `make lock`",  # (no list there)
        "numpy: requirements.lock has 1.0.0, pyproject.toml asks for >=1.26"]
    (tmp_path / "requirements.imports").write_text((REPO / "requirements.imports").read_text())
    assert lockfile.check(lock)[0].startswith("requirements.imports is missing or was made from another")
    shutil.copy2(lockfile.LOCK, lock)
    assert lockfile.check(lock) == []


def test_every_file_is_hashed_but_torchs_and_the_python_is_named():
    text = lockfile.LOCK.read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 6)[-1])
    hashed = {e.split("==")[0]: "--hash=sha256:" in e for e in entries if "==" in e}
    assert hashed.pop("torch") is False and hashed and all(hashed.values())
    assert re.fullmatch(r"3\.\d+\.\d+", lockfile.header_value(lockfile.LOCK, "python"))
    assert lockfile.pins()["torch"] == "2.13.0+cpu"


def test_lock_is_compiled_from_the_tested_venv_for_its_python(tmp_path):
    settings = install.pip_config("python", run=fake_config(PIP_CONFIG_LIST))
    cmd = lockfile.compile_command(Path("uv"), Path(sys.executable), tmp_path / "frozen.txt", tmp_path / "o", settings)
    assert cmd[1:3] == ["pip", "compile"] and "--generate-hashes" in cmd and "--all-extras" in cmd
    assert cmd[cmd.index("--python-version") + 1] == ".".join(map(str, sys.version_info[:3]))
    assert cmd[cmd.index("--constraint") + 1] == str(tmp_path / "frozen.txt")
    assert "--find-links" in cmd and "--no-header" in cmd  # machine paths stay out of the committed lock
    assert lockfile._strip_hashes("torch==1+cpu \\\n    --hash=sha256:ab\nx==1 \\\n    --hash=sha256:cd\n") == (
        "torch==1+cpu\nx==1 \\\n    --hash=sha256:cd\n")


# ----------------------------------------------------------------------------------------------------------
# Which way the setup goes: uv, pip, another Python
# ----------------------------------------------------------------------------------------------------------


class Recorder:
    """A fake ``run_step``: records the commands, fails those that ``fail`` matches."""

    def __init__(self, fail=lambda cmd: False):
        self.commands, self.fail = [], fail

    def __call__(self, cmd, status, env=None):
        self.commands.append([str(c) for c in cmd])
        return (1, "") if self.fail(cmd) else (0, "")


def _run_main(monkeypatch, tmp_path, recorder, *, env_setup=None):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    monkeypatch.setattr(install, "run_step", recorder)
    monkeypatch.setattr(install, "python_version", lambda python: sys.version_info[:2])
    monkeypatch.setattr(install, "reachable", lambda url, timeout=5.0: False)
    monkeypatch.setattr(install, "pip_config", lambda python=None, run=None: {})
    monkeypatch.setattr(install, "choose_torch", lambda pin, args, python=None: ([], "torch: as usual."))
    monkeypatch.setattr(install, "_venv_torch", lambda python: "2.13.0+cpu")
    if env_setup:
        monkeypatch.setenv("GRADER_SETUP", env_setup)
    else:
        monkeypatch.delenv("GRADER_SETUP", raising=False)
    return install.main(["--venv", str(venv)]), venv


def test_uv_is_brought_by_pip_and_installs_the_project(monkeypatch, tmp_path, capsys):
    def fail(cmd):  # pip "installs" uv: the file appears
        if cmd[-1] == install.uv_requirement() and "pip" in cmd[:3]:
            Path(cmd[cmd.index("--python") + 1]).parent.joinpath("uv").write_text("")
        return False
    recorder = Recorder(fail)
    code, venv = _run_main(monkeypatch, tmp_path, recorder)
    assert code == 0
    get_uv, install_cmd, bytecode = recorder.commands[-3:]
    assert bytecode[:2] == [str(venv / "bin" / "python"), "-c"]  # the last step: the listed files compiled
    assert "py_compile" in bytecode[2] if install.hashes_fit(venv / "bin" / "python", lockfile.LOCK) else "torch" in bytecode
    assert get_uv[:4] == [sys.executable, "-m", "pip", "--python"] and get_uv[-1] == install.uv_requirement()
    assert install_cmd[:3] == [str(venv / "bin" / "uv"), "pip", "install"] and "--constraint" in install_cmd
    out = capsys.readouterr().out
    assert "with uv" in out and "pip (" not in out


def test_without_uv_the_pip_path_runs_and_says_so_once(monkeypatch, tmp_path, capsys):
    recorder = Recorder(fail=lambda cmd: cmd[-1] == install.uv_requirement())  # no index has uv, say
    code, venv = _run_main(monkeypatch, tmp_path, recorder)
    assert code == 0
    out = capsys.readouterr().out
    assert out.count("Installing with pip (uv could not be installed)") == 1
    last, bytecode = recorder.commands[-2:]
    assert bytecode[:2] == [str(venv / "bin" / "python"), "-c"]
    assert last[:6] == [str(venv / "bin" / "python"), "-m", "pip", "install", "--progress-bar", "off"]
    assert "-e" in last and "--constraint" in last and not any(c.endswith("/uv") for c in last)


def test_grader_setup_pip_skips_uv(monkeypatch, tmp_path, capsys):
    recorder = Recorder()
    code, _ = _run_main(monkeypatch, tmp_path, recorder, env_setup="pip")
    assert code == 0 and not any(c[-1].startswith("uv") for c in recorder.commands)
    assert capsys.readouterr().out.count("Installing with pip (GRADER_SETUP=pip)") == 1


PY38, PY310 = pyenv_python("3.8"), pyenv_python("3.10")


@pytest.mark.skipif(PY38 is None, reason="no Python 3.8 here (pyenv)")
def test_the_setup_script_runs_on_python_3_8():
    proc = subprocess.run([PY38, str(REPO / "grader" / "install.py"), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--venv" in proc.stdout, proc.stderr


@pytest.mark.skipif(PY310 is None, reason="no Python 3.10 here (pyenv)")
def test_python_3_10_without_uv_ends_in_one_line_that_says_what_to_install(tmp_path):
    env = {**os.environ, "GRADER_SETUP": "pip"}
    proc = subprocess.run([PY310, str(REPO / "grader" / "install.py"), "--venv", str(tmp_path / "venv")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("setup:")]
    assert len(lines) == 1 and "Python 3.11 or newer is needed" in lines[0] and "PYTHON=python3.11" in lines[0]
    assert not (tmp_path / "venv").exists()


def _uv() -> str | None:
    uv = install.venv_uv(Path(sys.prefix))
    return str(uv) if uv.exists() else shutil.which("uv")


def _local_torch_folders() -> list[str]:
    """The find-links folders of this machine's pip settings that hold torch's CPU wheel."""
    folders = install.pip_config(sys.executable).get("find-links", [])
    return [f for f in folders if list(Path(f).glob("torch-*+cpu-*.whl"))]


def test_without_an_index_uv_runs_offline(tmp_path, monkeypatch):
    args = (Path("uv"), Path(sys.executable), ".", {}, lockfile.LOCK, tmp_path, False)
    assert "--offline" in install.plan(*args, index_reachable=False)[0]
    assert "--offline" not in install.plan(*args, index_reachable=True)[0]
    monkeypatch.setattr(install, "reachable", lambda url, timeout=5.0: False)
    assert install.index_answers({"index-url": ["file:///srv/simple"]})
    assert not install.index_answers({}) and not install.index_answers({"index-url": ["https://x.example/simple"]})


@pytest.mark.skipif(_uv() is None or not _local_torch_folders(), reason="needs uv and a local torch CPU wheel")
def test_offline_the_local_wheel_gives_the_cpu_build(tmp_path):
    """Offline (no index answers: uv's --offline, no network at all), PyTorch's index unreachable: torch's CPU
    build still comes from the local wheel that pip's settings name, under the lock's constraint. The setup's
    own command, narrowed to torch alone (a dry run into a scratch target: nothing installed)."""
    settings = {"find-links": _local_torch_folders()}
    cmd, env, _ = install.plan(Path(_uv()), Path(sys.executable), ".", settings, lockfile.LOCK, tmp_path,
                               cpu_index_reachable=False, index_reachable=False)
    assert "--torch-backend" not in cmd and "--offline" in cmd
    options = cmd[cmd.index("pip", 2) + 1:]  # what follows the project and the tools it adds
    probe = [cmd[0], "pip", "install", "--dry-run", "--no-deps", "--python", sys.executable,
             "--target", str(tmp_path / "t"), *options, "torch"]
    proc = subprocess.run(probe, capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"\+ torch==2\.13\.0\+cpu", proc.stderr), proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(PY310 is None, reason="no Python 3.10 here (pyenv)")
def test_make_grade_from_python_3_10_ends_in_a_report_or_one_line(tmp_path):
    """A student whose python3 is 3.10: uv (from pip) makes the venv with a Python >= 3.11 it finds (or
    downloads), and the first `make grade` ends in the graded report; where no such Python can be had, in one
    line that says what to install. Never a traceback."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    for name in ("grader/install.py", "Makefile", "requirements.lock", "pyproject.toml"):  # uncommitted edits
        shutil.copy2(REPO / name, clone / name)
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}  # uv's own cache, as a student's second clone would
    proc = subprocess.run(["make", "grade", f"PYTHON={PY310}"], cwd=clone, capture_output=True, text=True,
                          env=env, timeout=900)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    if proc.returncode == 0:
        assert "Total: 0 / 60 points." in out
        assert subprocess.run([str(clone / ".venv/bin/python"), "-c", "import sys; assert sys.version_info >= (3, 11)"]
                              ).returncode == 0
    else:
        assert len([line for line in proc.stdout.splitlines() if line.startswith("setup:")]) == 1, out


@pytest.mark.slow
@pytest.mark.heavy  # a real install (a minute or two); its cheap form: test_without_uv_the_pip_path_runs_and_says_so_once
def test_where_pip_cannot_get_uv_the_pip_path_installs_the_cpu_build(tmp_path):
    """uv cannot be had (here: a pip constraint no uv meets, as an index without uv would): the setup says so
    once, pip installs the project with the lock's versions, and torch is the CPU build (a real install)."""
    blocked = tmp_path / "no-uv.txt"
    machine = install.pip_config(sys.executable).get("constraint", [])  # keep this machine's own constraints
    blocked.write_text("uv<0\n" + "".join(Path(c).read_text() + "\n" for c in machine if Path(c).is_file()))
    env = {**os.environ, "PIP_CONSTRAINT": str(blocked)}
    env.pop("GRADER_SETUP", None)
    venv = tmp_path / "venv"
    proc = subprocess.run([sys.executable, str(REPO / "grader" / "install.py"), "--venv", str(venv)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("Installing with pip (uv could not be installed)") == 1
    assert not install.venv_uv(venv).exists()
    check = "import torch, pytest, hypothesis; print(torch.__version__)"
    version = subprocess.run([str(install.venv_python(venv)), "-c", check], capture_output=True, text=True)
    assert version.stdout.strip() == "2.13.0+cpu", version.stderr
    assert "Installed in" in proc.stdout and "with pip: torch 2.13.0+cpu." in proc.stdout


def test_the_uv_that_the_setup_installs_builds_the_project_itself():
    """pyproject.toml's build backend is uv's own, and the setup asks pip for a uv whose version the backend's
    range holds: uv then builds the project's editable install directly, with no build environment (setuptools
    made one, and waited for torch's wheel to unpack first)."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["build-system"]["build-backend"] == "uv_build"
    (backend,) = (Requirement(r) for r in pyproject["build-system"]["requires"])
    wanted = Requirement(install.uv_requirement())
    assert wanted.name == "uv" and str(wanted.specifier) == str(backend.specifier) != ""
    uv = _uv()
    if uv is not None:  # the uv here is one the setup could have installed
        version = subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.split()[1]
        assert Version(version) in backend.specifier, (version, backend)
