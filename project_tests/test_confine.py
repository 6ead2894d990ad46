"""grader.worker.confine, tried in forked children the way the worker uses it.

Landlock keeps a confined child inside its read and write folders, off TCP and off other processes' signals,
while torch (imported before the fork, as in the zygote) keeps working. The PID namespace's PID 1 takes every
process it started with it when it exits. Each child reports back as JSON over a pipe and ends with
``os._exit``; the parent kills anything still running after a deadline, so a failing test leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import select
import signal
import socket
import threading
import time
import traceback
from pathlib import Path

import pytest
import torch

from grader.worker import confine

REPO = Path(__file__).resolve().parent.parent
DEADLINE = 5.0  # seconds; every child here finishes in well under 0.1 s
PR_SET_NAME = 15


def _read_all(fd: int, timeout: float) -> bytes | None:
    """Everything written to the pipe until EOF, or None if the writer is still silent at the deadline."""
    chunks, end = [], time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _reap(pid: int) -> None:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def run_forked(body, *args) -> dict:
    """body(*args) -> dict, run in a forked child; its dict, or {"error": ...} if it raised or hung."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            try:
                out = body(*args)
            except BaseException:  # noqa: BLE001 - report it; never fall back into pytest in the child
                out = {"error": traceback.format_exc()}
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        data = _read_all(r, DEADLINE)
    finally:
        os.close(r)
        _reap(pid)
    out = json.loads(data) if data else {"error": "the child hung or died without a report"}
    assert "error" not in out, out["error"]
    return out


def attempt(action) -> dict:
    """{"ok": repr(result)} or {"error": exception class name, "errno": ...}: plain data for the pipe."""
    try:
        return {"ok": repr(action())}
    except OSError as e:
        return {"error": type(e).__name__, "errno": e.errno}


def processes_named(name: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == name:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def tcp_connect(port: int) -> None:
    # a plain connect to a numeric address: create_connection() would import the idna codec first, which a
    # process dropped to uid 65534 cannot read when Python lives under /root
    with socket.socket() as sock:
        sock.settimeout(1)
        sock.connect(("127.0.0.1", port))


# ------------------------------------------------------------------------------------------------ Landlock
def _confined_child(root: str, port: int) -> dict:
    root = Path(root)
    out = {"signal_before": attempt(lambda: os.kill(os.getppid(), 0))}
    read = [*confine.default_read_paths(exclude=[REPO, root]), root / "readable"]
    out["prot"] = confine.restrict(read=read, write=[root / "writable", root / "readable" / "log.txt"])
    out["read_forbidden"] = attempt(lambda: (root / "forbidden" / "secret.txt").read_text())
    out["list_forbidden"] = attempt(lambda: os.listdir(root / "forbidden"))
    out["read_graded_tests"] = attempt(lambda: (REPO / "tests" / "points.json").read_text())
    out["list_hidden_tests"] = attempt(lambda: os.listdir(REPO / "tests" / "hidden"))
    out["list_solutions"] = attempt(lambda: os.listdir(REPO / "solutions"))
    out["read_readable"] = attempt(lambda: (root / "readable" / "notes.txt").read_text())
    out["write_readable"] = attempt(lambda: (root / "readable" / "new.txt").write_text("x"))
    out["write_writable"] = attempt(lambda: (root / "writable" / "new.txt").write_text("x"))
    out["write_single_file"] = attempt(lambda: (root / "readable" / "log.txt").write_text("x"))
    out["torch"] = attempt(lambda: (torch.ones(3) @ torch.ones(3)).item())
    out["torch_module"] = attempt(lambda: torch.nn.Linear(4, 2)(torch.ones(1, 4)).shape[-1])
    out["connect"] = attempt(lambda: tcp_connect(port))
    out["signal_parent"] = attempt(lambda: os.kill(os.getppid(), 0))
    out["signal_self"] = attempt(lambda: os.kill(os.getpid(), 0))
    pid = os.fork()
    if pid == 0:  # no path carries EXECUTE: not even /bin/true may run
        try:
            os.execv("/bin/true", ["true"])
        finally:
            os._exit(13)
    out["exec_status"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return out


@pytest.fixture(scope="module")
def confined(tmp_path_factory) -> dict:
    """One confined child's answers: read=[readable], write=[writable, readable/log.txt]; `forbidden` and the
    repo are neither."""
    root = tmp_path_factory.mktemp("confine")
    for name in ("forbidden", "readable", "writable"):
        (root / name).mkdir()
    (root / "forbidden" / "secret.txt").write_text("secret")
    (root / "readable" / "notes.txt").write_text("notes")
    (root / "readable" / "log.txt").write_text("")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        out = run_forked(_confined_child, str(root), server.getsockname()[1])
    if not out["prot"]["filesystem"]:
        pytest.skip(f"Landlock is not available on this kernel (ABI {out['prot']['landlock_abi']})")
    return out


def test_restrict_reports_what_is_active(confined):
    prot = confined["prot"]
    assert prot["landlock_abi"] >= 1 and prot["no_new_privs"] and prot["single_thread"]
    assert prot["network"] == (prot["landlock_abi"] >= 4) and prot["signals"] == (prot["landlock_abi"] >= 6)


def test_restrict_denies_reading_outside_the_grants(confined):
    for key in ("read_forbidden", "list_forbidden", "read_graded_tests", "list_hidden_tests", "list_solutions"):
        assert confined[key].get("error") == "PermissionError", (key, confined[key])


def test_restrict_allows_reading_read_paths(confined):
    assert confined["read_readable"] == {"ok": repr("notes")}


def test_restrict_denies_writing_read_paths(confined):
    assert confined["write_readable"].get("error") == "PermissionError"


def test_restrict_allows_writing_write_paths(confined):
    assert confined["write_writable"] == {"ok": "1"}
    # a file as a write path: only file rights go in its rule (a directory right there is EINVAL)
    assert confined["write_single_file"] == {"ok": "1"}


def test_restrict_denies_exec(confined):
    assert confined["exec_status"] == 13


def test_restrict_keeps_torch_working(confined):
    assert confined["torch"] == {"ok": "3.0"} and confined["torch_module"] == {"ok": "2"}


def test_restrict_denies_tcp_connect(confined):
    if not confined["prot"]["network"]:
        pytest.skip(f"Landlock ABI {confined['prot']['landlock_abi']} has no network rights (needs 4)")
    assert confined["connect"].get("error") == "PermissionError"


def test_restrict_denies_signals_outside_the_sandbox(confined):
    if not confined["prot"]["signals"]:
        pytest.skip(f"Landlock ABI {confined['prot']['landlock_abi']} has no signal scoping (needs 6)")
    assert confined["signal_before"] == {"ok": "None"}  # the same call was allowed before restrict()
    assert confined["signal_parent"] == {"error": "PermissionError", "errno": 1}
    assert confined["signal_self"] == {"ok": "None"}


def _older_abi_child(abi: int, root: str, port: int) -> dict:
    confine.landlock_abi = lambda: abi  # this kernel's newer ABI accepts an older ruleset (a shorter struct)
    root = Path(root)
    prot = confine.restrict(read=confine.default_read_paths(exclude=[REPO, root]), write=[root / "writable"])
    return {"prot": prot, "read_forbidden": attempt(lambda: (root / "forbidden" / "secret.txt").read_text()),
            "write_writable": attempt(lambda: (root / "writable" / f"{abi}.txt").write_text("x")),
            "connect": attempt(lambda: tcp_connect(port)), "signal_parent": attempt(lambda: os.kill(os.getppid(), 0))}


@pytest.mark.parametrize("abi", [1, 2, 3, 4, 5, 6])
def test_restrict_builds_the_ruleset_of_an_older_abi(abi, confined, tmp_path):
    """Each ABI's ruleset (the fs rights it knows, a struct of 8, 16 or 24 bytes) is accepted and enforced."""
    if abi > confined["prot"]["landlock_abi"]:
        pytest.skip(f"this kernel's Landlock ABI is {confined['prot']['landlock_abi']}")
    for name in ("forbidden", "writable"):
        (tmp_path / name).mkdir()
    (tmp_path / "forbidden" / "secret.txt").write_text("secret")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        out = run_forked(_older_abi_child, abi, str(tmp_path), server.getsockname()[1])
    prot = out["prot"]
    assert prot["landlock_abi"] == abi and prot["filesystem"] and prot["network"] == (abi >= 4)
    assert out["read_forbidden"].get("error") == "PermissionError" and out["write_writable"] == {"ok": "1"}
    assert ("error" in out["connect"]) == (abi >= 4)
    assert ("error" in out["signal_parent"]) == (abi >= 6)


def _threaded_child() -> dict:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        try:
            confine.restrict(strict=True)
            strict = "returned"
        except confine.ConfinementError:
            strict = "raised"
        return {"strict": strict, "lenient": confine.restrict()}
    finally:
        stop.set()
        thread.join()


def test_restrict_strict_refuses_a_multithreaded_process():
    out = run_forked(_threaded_child)
    assert out["strict"] == "raised" and out["lenient"]["single_thread"] is False


def test_default_read_paths_never_grant_an_excluded_folder():
    paths = confine.default_read_paths(exclude=[REPO])
    assert paths and len(set(paths)) == len(paths)
    for p in map(Path, paths):
        assert p.exists() and str(p) == os.path.realpath(p)
        assert not REPO.is_relative_to(p), p  # neither the repo root nor a folder above it
    assert "/usr" in paths and "/usr" not in confine.default_read_paths(exclude=["/usr/lib"])


# ---------------------------------------------------------------------------------------------- namespaces
def _namespaced_child(drop_to_nobody: bool, port: int, name: str) -> dict:
    if drop_to_nobody:  # the unprivileged case, reached from root
        os.setgid(65534)
        os.setuid(65534)
    out = {"ns": confine.enter_namespaces(), "uid": os.getuid(), "gid": os.getgid()}
    out["uid_map"] = Path("/proc/self/uid_map").read_text().split()
    out["gid_map"] = Path("/proc/self/gid_map").read_text().split()
    if not out["ns"]["pid_namespace"]:
        return out
    report_r, report_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # PID 1 of the new namespace
        try:
            os.close(report_r)
            os.close(go_w)
            ready_r, ready_w = os.pipe()
            if os.fork() == 0:  # a sleeper that PID 1 leaves behind
                try:
                    os.closerange(3, ready_w)  # hold no pipe end of the test's: an EOF must not wait for us
                    os.closerange(ready_w + 1, 256)
                    ctypes.CDLL(None).prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()), 0, 0, 0)
                    os.write(ready_w, os.readlink("/proc/self").encode())  # /proc is the outer one: outer pid
                    time.sleep(DEADLINE)  # bounded, in case the namespace fails to kill it
                finally:
                    os._exit(0)
            try:
                inner = {"pid": os.getpid(), "sleeper_outer_pid": int(os.read(ready_r, 32)),
                         "connect": attempt(lambda: tcp_connect(port))}
            except BaseException:  # noqa: BLE001 - W passes it on
                inner = {"error": "in PID 1: " + traceback.format_exc()}
            os.write(report_w, json.dumps(inner).encode())
            os.close(report_w)
            select.select([go_r], [], [], DEADLINE)  # until W has seen the sleeper alive
        finally:
            os._exit(0)
    os.close(report_w)
    os.close(go_r)
    try:
        out.update(json.loads(_read_all(report_r, DEADLINE) or b'{"pid": null}'))
        sleeper = out.get("sleeper_outer_pid")
        out["sleeper_alive_before"] = sleeper is not None and sleeper in processes_named(name)
    finally:
        os.close(go_w)  # PID 1 exits now, without waiting for its child
        os.waitpid(pid, 0)
    out["sleeper_alive_after"] = bool(processes_named(name))
    return out


@pytest.fixture(scope="module", params=["as-is", "nobody"])
def namespaced(request) -> dict:
    if request.param == "nobody" and os.geteuid() != 0:
        pytest.skip("dropping to uid 65534 needs root; this run is already unprivileged")
    name = "cf-" + secrets.token_hex(6)  # 15 characters: the longest comm the kernel keeps
    try:
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            out = run_forked(_namespaced_child, request.param == "nobody", server.getsockname()[1], name)
        out["left_behind"] = processes_named(name)
    finally:
        for pid in processes_named(name):  # only our sleeper carries this name
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    out["expected_uid"] = 65534 if request.param == "nobody" else os.geteuid()
    return out


def test_enter_namespaces_grandchild_is_pid_one(namespaced):
    if not namespaced["ns"]["pid_namespace"]:
        pytest.skip(f"no PID namespace on this kernel/configuration: {namespaced['ns']}")
    assert namespaced["pid"] == 1


def test_enter_namespaces_maps_ids_to_themselves(namespaced):
    if not namespaced["ns"]["user_namespace"]:
        pytest.skip(f"no user namespace on this kernel/configuration: {namespaced['ns']}")
    uid = namespaced["expected_uid"]
    # an unmapped uid would also read as 65534 (the overflow id): the map itself is what proves it
    assert namespaced["uid_map"] == [str(uid), str(uid), "1"] and namespaced["uid"] == uid
    assert namespaced["gid_map"][:2] == [str(namespaced["gid"])] * 2


def test_enter_namespaces_nothing_outlives_pid_one(namespaced):
    if not namespaced["ns"]["pid_namespace"]:
        pytest.skip(f"no PID namespace on this kernel/configuration: {namespaced['ns']}")
    assert namespaced["sleeper_alive_before"]  # the scan does see the sleeper while PID 1 lives
    assert not namespaced["sleeper_alive_after"] and namespaced["left_behind"] == []


def test_enter_namespaces_isolates_the_network(namespaced):
    if not (namespaced["ns"]["network_namespace"] and namespaced["ns"]["pid_namespace"]):
        pytest.skip(f"no network (or PID) namespace on this kernel/configuration: {namespaced['ns']}")
    assert "error" in namespaced["connect"]
