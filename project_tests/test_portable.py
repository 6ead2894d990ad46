"""The portable path (issue 26): the grades where Linux facilities are missing equal the Linux path's."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader import facilities, grading, install, portable
from grader.judge.session import Limits

REPO = Path(__file__).resolve().parent.parent
LIMITS = {"timeout": 1.0, "wall": 30.0, "max_strikes": 0}  # 1 s of CPU: the two timeouts below cost 2 s


def half_done(folder: Path) -> Path:
    """ex1: the reference with a wrong decode (Hypothesis finds it), a pad that never ends when asked to pad to 3 on
    the left (one timeout: each costs a worker, and on the portable path its replacement's torch import) and a
    save that kills its process (a crash); ex2: a syntax error (that exercise only is lost)."""
    folder.mkdir()
    source = (REPO / "solutions" / "ex1_special_tokens.py").read_text()
    source = source.replace("    def decode(self, ids", "    def decode(self, ids, *_a, **_k):\n"
                            "        return self._decode(ids, *_a, **_k).replace('e', 'E')\n\n    def _decode(self, ids", 1)
    source = source.replace("    def pad(\n", "    def pad(self, *a, **k):\n"
                            "        while k.get('side') == 'left' and k.get('length') == 3:\n            pass\n"
                            "        return self._pad(*a, **k)\n\n    def _pad(\n", 1)
    source = source.replace("    def save(self, path", "    def save(self, path, *_a):\n        import os\n"
                            "        os._exit(3)\n\n    def _save(self, path", 1)
    (folder / "ex1_special_tokens.py").write_text(source)
    (folder / "ex2_topk_attention.py").write_text("def topk_attention(q, k, v, top_k\n    return q\n")
    return folder


def verdicts(doc: dict) -> dict:
    return {t["name"]: [t["status"], t["score"], t["extra_data"]["kind"], t["extra_data"]["reason"]]
            for t in doc["tests"]}


def sandboxed(command: list[str]) -> list[str]:
    """``command`` in a new mount namespace whose /proc is an empty tmpfs (and private, so nothing leaks out)."""
    script = 'mount --make-rprivate / && mount -t tmpfs none /proc && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", script, "sh", *command]


@pytest.mark.slow
def test_portable_loop_gives_the_linux_verdicts(tmp_path):
    """grade (a half-done submission), watch with two saves (the stub, then the reference), plots and check, with
    pidfd_open, Landlock and unshare answering ENOSYS, an empty /proc and the spawn start method: the same verdicts.

    Each grading on the portable path starts a judge session and workers that import torch, so the sandbox runs
    each path of the loop once: the half-done submission holds the reference's passing tests beside a Hypothesis
    failure, timeouts, a crash and a syntax error; watch's saves give the stub's and the reference's verdicts
    test by test; check grades the whole reference and the stubs, hidden tests included."""
    here = facilities.present()
    if not (here.fork and here.pidfd and here.proc and shutil.which("unshare")) or os.geteuid() != 0:
        pytest.skip("needs the Linux path here and root for a mount namespace")
    targets = {"half_done": str(half_done(tmp_path / "half"))}
    spec = {"targets": targets, "exercises": ["ex1", "ex2"], "limits": LIMITS, "check": True,
            "stub_ex1": str(REPO / "exercises" / "ex1_special_tokens.py"),
            "reference_ex1": str(REPO / "solutions" / "ex1_special_tokens.py")}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(facilities.ENV, None)
    run = subprocess.run(sandboxed([sys.executable, str(REPO / "project_tests" / "portable_loop.py"),
                                    json.dumps(spec)]), capture_output=True, text=True, env=env, timeout=600)
    found = re.search(r"^PORTABLE-RESULT (.*)$", run.stdout, re.M)
    assert found, run.stdout[-3000:] + run.stderr[-3000:]
    got = json.loads(found.group(1))

    # the hostile steps ran and were refused: no pidfd, no Landlock, no namespaces, nothing in /proc
    assert got["refused"] == {"proc_entries": [], "pidfd_open": "ENOSYS", "unshare": "ENOSYS", "landlock_abi": 0}
    seen = got["facilities"]
    assert seen["start_method"] == "spawn"
    assert not any(seen[name] for name in ("pidfd", "proc", "namespaces", "landlock_abi"))
    assert "pidfd" not in seen["switched_off"] and "proc" not in seen["switched_off"]  # truly absent
    assert got["protections"] and not any(got["protections"].values())  # every protection named, all off

    # the Linux path, here: the same verdicts, test by test
    limits = Limits(**LIMITS)
    linux = verdicts(grading.grade(targets["half_done"], exercises=["ex1", "ex2"], hidden=True, limits=limits))
    assert got["grade"]["half_done"] == linux
    kinds = {v[2] for v in linux.values()}
    assert {"passed", "failed", "timeout", "crash"} <= kinds, kinds  # each outcome was met on both paths
    # watch's two saves, from one open session: the stub's verdicts, then the reference's
    stub, reference = (verdicts(grading.grade(Path(spec[key]).parent, exercises=["ex1"], limits=limits))
                       for key in ("stub_ex1", "reference_ex1"))
    assert got["watch"] == [stub, reference]
    assert not any(v[1] for v in stub.values()) and all(v[0] == "passed" for v in reference.values())
    assert all(Path(path).suffix == ".png" for _, path in got["plots"]), got["plots"]
    assert got["check"] == [True, True]  # the whole reference scores full marks, the stubs 0 (hidden included)


@pytest.mark.skipif(sys.platform != "linux", reason="the process CPU clock is read on Linux")
def test_cpu_meter_reads_every_thread_to_the_nanosecond_not_in_ticks():
    """On Linux the meter reads the process's CPU clock: a few milliseconds a thread computes show as what the
    process itself measured, not rounded to the 10 ms ticks of /proc/<pid>/stat (the control: that fallback)."""
    code = ("import sys, threading, time\n"
            "def spin():\n"
            "    t = time.thread_time()\n"
            "    while time.thread_time() - t < 0.013: pass\n"
            "for _ in range(3):\n"
            "    sys.stdin.readline()\n"
            "    worker = threading.Thread(target=spin); worker.start(); worker.join()\n"
            "    print(repr(time.process_time()), flush=True)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        meter, ticks = portable.CpuMeter(child.pid, proc=True), portable.CpuMeter(child.pid, proc=True)
        ticks._clock = None  # the fallback
        assert meter._clock is not None, "the CPU clock of a child process could not be read"
        for _ in range(3):
            child.stdin.write("go\n")
            child.stdin.flush()
            own = float(child.stdout.readline())
            precise, rounded = meter.seconds(), ticks.seconds()
            # the child reads its clock a moment before the meter does (its print and a wait for input in between:
            # 0.1 ms on a quiet machine, 2.6 ms seen on a busy one), and never a whole tick before
            assert own <= precise < own + 0.008, (own, precise)
            assert abs(precise * 100 - round(precise * 100)) > 1e-7, precise  # not rounded to ticks
            assert abs(rounded * 100 - round(rounded * 100)) < 1e-9, rounded  # the control: whole ticks only
    finally:
        child.kill()
        child.wait()


def test_cpu_meter_reads_the_same_time_from_proc_and_psutil():
    """The portable CPU source (psutil) agrees with /proc on this machine, for a process that computes."""
    child = subprocess.Popen([sys.executable, "-c", "import time\nt=time.process_time()\n"
                              "while time.process_time() - t < 0.3: pass\nimport sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        proc, other = portable.CpuMeter(child.pid, proc=True), portable.CpuMeter(child.pid, proc=False)
        assert proc.available and other.available and other._fd is None
        deadline = __import__("time").monotonic() + 20
        while proc.seconds() < 0.3 and __import__("time").monotonic() < deadline:
            __import__("time").sleep(0.05)
        a, b = proc.seconds(), other.seconds()
        assert a >= 0.3 and abs(a - b) < 0.05, (a, b)
    finally:
        child.kill()
        child.wait()


# The modules a student's loop (grade, watch, plots, check) runs on every platform. A Linux-only call in them
# must sit behind ``if sys.platform != "linux": ...`` (or "win32"), which the type checker understands, on a
# path chosen by grader.facilities; typeshed's platform rules then say what exists on macOS and Windows.
PORTABLE_MODULES = ["grader/portable.py", "grader/processes.py", "grader/judge/session.py", "grader/facilities.py",
                    "grader/worker/spawned.py", "grader/judge/serve.py", "grader/worker/client.py",
                    "grader/watch.py", "grader/grading.py", "grader/plots.py", "grader/instructor/check.py",
                    # and the batch, which grades one submission at a time there
                    "grader/batch/lifecycle.py", "grader/batch/scheduler.py", "grader/batch/cli.py"]
CONTROL = '''import os, signal, sys

def unguarded() -> None:
    os.pidfd_open(os.getpid())  # Linux only
    os.kill(1, signal.SIGKILL)  # no SIGKILL on Windows

def guarded() -> None:
    if sys.platform != "linux":
        return
    os.pidfd_open(os.getpid())
'''


@pytest.mark.slow
def test_no_platform_specific_call_without_its_fallback(tmp_path):
    """mypy with ``--platform darwin`` and ``win32`` finds no attribute missing there in the portable modules; the
    control file's unguarded calls are found (so the check can fail) and its guarded one is not.

    The platform is part of every module's cache key in mypy, so the two runs share nothing: they run side by
    side, each with no cache written (every run here starts cold, a cache would only cost its writing)."""
    pytest.importorskip("mypy")
    control = tmp_path / "control_unguarded.py"
    control.write_text(CONTROL)
    runs = {platform: subprocess.Popen(
        [sys.executable, "-m", "mypy", "--platform", platform, "--follow-imports=skip", "--ignore-missing-imports",
         "--no-error-summary", "--cache-dir", os.devnull, *PORTABLE_MODULES, str(control)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for platform in ("darwin", "win32")}
    for platform, run in runs.items():
        stdout, stderr = run.communicate(timeout=600)
        assert run.returncode in (0, 1) and stdout, stderr  # 1: type errors found (the control's, at least)
        missing = [line for line in stdout.splitlines() if "Module has no attribute" in line]
        ours = [line for line in missing if "control_unguarded" not in line]
        assert not ours, platform + "\n" + "\n".join(ours)
        control_lines = sorted(int(line.split(":")[1]) for line in missing if "control_unguarded" in line)
        assert control_lines == ([4] if platform == "darwin" else [4, 5]), stdout  # never line 10 (guarded)


def test_workflow_for_published_repositories_is_well_formed():
    """The GitHub Actions workflow parses, runs on Linux, macOS (Apple silicon) and Windows, builds the release,
    and grades both the stubs and the reference with ``python -m grader`` (no make: Windows has none)."""
    yaml = pytest.importorskip("yaml")
    flow = yaml.safe_load((REPO / ".github" / "workflows" / "student-platforms.yml").read_text())
    assert flow["name"] and (flow.get("on") or flow.get(True))  # PyYAML reads the key `on` as True
    job = flow["jobs"]["grade"]
    assert set(job["strategy"]["matrix"]["os"]) == {"ubuntu-latest", "macos-14", "windows-latest"}
    assert job["runs-on"] == "${{ matrix.os }}" and job["timeout-minutes"] <= 60
    runs = [step.get("run", "") for step in job["steps"]]
    assert all(isinstance(step, dict) and ("uses" in step) != ("run" in step) for step in job["steps"])
    script = "\n".join(runs)
    assert "make " not in script
    for needed in ("grader release --out dist/student", "grader.install", "grader grade --json stubs.json",
                   "grader grade --target ../../solutions", "torch==2.13.0"):
        assert needed in script, needed
    pin = re.search(r'"torch==([\d.]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert f"torch=={pin}" in script  # the workflow installs the pinned torch


def test_torch_wheel_note_names_intel_macs_only():
    """The setup stops with a sentence on an Intel Mac (no wheel of the pinned torch) and says nothing elsewhere."""
    assert "Intel Mac" in install.torch_wheel_note("Darwin", "x86_64")
    for system, machine in [("Darwin", "arm64"), ("Linux", "x86_64"), ("Linux", "aarch64"), ("Windows", "AMD64")]:
        assert install.torch_wheel_note(system, machine) is None


def test_a_spare_worker_does_not_start_in_the_submission_folder(tmp_path):
    """A spare worker outlives the submission it was started beside, whose folder is removed when it is done: it
    starts in the project root (an interpreter whose folder is gone failed in ``import torch``, and the next
    submission lost its first test)."""
    psutil = pytest.importorskip("psutil")
    folder = tmp_path / "submission-work"
    folder.mkdir()
    popen, sock, _ = portable.spawn_worker(str(folder))
    try:
        assert Path(psutil.Process(popen.pid).cwd()) == REPO
    finally:
        popen.kill()
        popen.wait()
        sock.close()
    with pytest.raises(FileNotFoundError):
        portable.spawn_worker(str(tmp_path / "gone"))
