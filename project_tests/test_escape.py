"""The worker's ways out, closed by grader.worker.seccomp and the worker's tmpfs (issue 21, item 3).

Each attack of ``project_tests/attacks/`` aimed at the syscall filter (unwaited_children, fork_bomb,
unix_socket, io_uring) is run here as the worker would run it, in a forked child that is PID 1 of its own PID
namespace (everything it starts dies with it), once WITHOUT the filter (the positive control: the hostile step
succeeds) and once WITH it (refused). Each attack ends by raising ``RuntimeError("atk-<name>: <what
happened>")``: that mark says the hostile step ran. The full gradings (student, batch, Gradescope) are in
test_attacks.py; here one grading as root with Landlock and namespaces switched off shows the uid drop.
"""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from grader import facilities
from grader.worker import confine, seccomp, uid

REPO = Path(__file__).resolve().parent.parent
ATTACKS = Path(__file__).resolve().parent / "attacks"
DEADLINE = 30.0

pytestmark = pytest.mark.skipif(not facilities.present().seccomp or not facilities.present().namespaces,
                                reason="needs seccomp and namespaces (Linux)")


def _attack_file(name: str) -> Path:
    return next((ATTACKS / name).glob("ex*_*.py"))


def run_attack(name: str, *, filtered: bool, cwd: Path) -> str:
    """The attack's mark (its RuntimeError message), run in PID 1 of a fresh PID namespace, filtered or not."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the launcher's part: namespaces, then the worker as PID 1
        try:
            os.close(r)
            confine.enter_namespaces()
            inner = os.fork()
            if inner == 0:
                try:
                    os.chdir(cwd)
                    if filtered and not seccomp.install():
                        raise OSError("the filter could not be installed")
                    source = _attack_file(name).read_text()
                    try:
                        exec(compile(source, name, "exec"), {"__name__": f"attack_{name}"})
                        mark = "no mark"
                    except RuntimeError as exc:
                        mark = str(exc)
                    os.write(w, mark.encode())
                finally:
                    os._exit(0)
            os.waitpid(inner, 0)  # PID 1 is gone: the kernel has killed what it started
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 4096):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


@pytest.mark.parametrize("name, control, refused", [
    ("fork_bomb", "processes started", "fork refused (PermissionError)"),
    ("unwaited_children", "child ", "fork refused (PermissionError)"),
    ("io_uring", "io_uring_setup gave a ring", "io_uring_setup refused (errno 1,"),
])
@pytest.mark.slow
def test_filter_refuses_what_succeeds_without_it(tmp_path, name, control, refused):
    """Without the filter the attack's hostile step succeeds (positive control); with it, it is refused."""
    off = run_attack(name, filtered=False, cwd=tmp_path)
    on = run_attack(name, filtered=True, cwd=tmp_path)
    assert off.startswith(f"atk-{name}: ") and control in off, f"positive control: {off!r}"
    assert on.startswith(f"atk-{name}: ") and refused in on, f"with the filter: {on!r}"


def test_filter_refuses_moving_to_another_cpu(tmp_path):
    """unwaited_children also moves itself off its CPU: allowed without the filter, refused with it."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: nowhere to move to")
    assert "affinity moved" in run_attack("unwaited_children", filtered=False, cwd=tmp_path)
    assert "affinity refused (PermissionError)" in run_attack("unwaited_children", filtered=True, cwd=tmp_path)


@pytest.mark.slow
def test_filter_stops_unix_socket_exfiltration(tmp_path):
    """A listener on a socket file receives the attack's line without the filter, nothing with it."""
    path = f"/tmp/atk-unix_socket-{os.getpid()}.sock"
    received: list[bytes] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        try:
            server.listen()
            server.settimeout(0.2)

            def listen(until: float) -> None:
                while time.monotonic() < until:
                    try:
                        conn, _ = server.accept()
                    except OSError:
                        continue
                    with conn:
                        received.append(conn.recv(4096))

            for filtered in (False, True):
                thread = threading.Thread(target=listen, args=(time.monotonic() + 1.5,))
                thread.start()
                mark = run_attack("unix_socket", filtered=filtered, cwd=tmp_path)
                thread.join()
                got, received[:] = list(received), []
                if filtered:
                    assert mark == "atk-unix_socket: socket refused (PermissionError)", mark
                    assert got == [], f"the listener received {got}"
                else:
                    assert "socket created" in mark and b"atk-unix_socket was here\n" in got, (mark, got)
        finally:
            os.unlink(path)


def test_ipc_namespace_hides_the_hosts_segments_and_the_filter_refuses_them(tmp_path):
    """A System V segment the host made (a stand-in for one an earlier grading left, holding what its worker saw)
    is found and read by sysv_ipc run plainly (the positive control), is not seen from the worker's namespaces
    (the attack makes its own there, gone with the namespace), and with the filter shmget itself is refused."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
    libc.shmdt.argtypes = (ctypes.c_void_p,)
    key = 0x41544B32  # the attack's key
    sid = libc.shmget(key, 4096, 0o1000 | 0o2000 | 0o600)  # IPC_CREAT | IPC_EXCL: ours, made now
    if sid < 0:
        pytest.skip(f"cannot make a System V segment here (errno {ctypes.get_errno()})")
    try:
        address = libc.shmat(sid, None, 0)
        ctypes.memmove(address, b"left-by-an-earlier-grading\0", 28)
        libc.shmdt(ctypes.c_void_p(address))
        plain = subprocess.run([sys.executable, str(_attack_file("sysv_ipc"))], cwd=tmp_path, capture_output=True,
                               text=True, timeout=60)
        assert "atk-sysv_ipc: found a segment left by another (left-by-an-earlier-grading)" in plain.stderr, (
            f"positive control: {plain.stderr[-2000:]}")
        in_namespaces = run_attack("sysv_ipc", filtered=False, cwd=tmp_path)
        assert in_namespaces == "atk-sysv_ipc: none left by another, segment made", in_namespaces
        assert run_attack("sysv_ipc", filtered=True, cwd=tmp_path) == "atk-sysv_ipc: shmget refused (PermissionError)"
    finally:
        libc.shmctl(sid, 0, None)  # IPC_RMID


@pytest.mark.slow
def test_spawned_worker_installs_the_filter_too(tmp_path):
    """The portable path's worker (a fresh interpreter: GRADER_WITHOUT=fork) installs the syscall filter where
    Linux offers it: unix_socket and sysv_ipc, graded that way, are refused and reported as such. The positive
    control: with the filter switched off too, both hostile steps succeed (Landlock alone leaves them open)."""
    submission = tmp_path / "submission"
    submission.mkdir()
    for stub in (REPO / "exercises").glob("ex*_*.py"):
        shutil.copy(stub, submission / stub.name)
    for attack in ("unix_socket", "sysv_ipc"):
        shutil.copy(_attack_file(attack), submission / _attack_file(attack).name)
    marks = {}
    for without in ("fork", "fork,seccomp"):
        out = tmp_path / f"{without}.json"
        env = {**os.environ, facilities.ENV: without, "PYTHONPATH": str(REPO)}
        subprocess.run([sys.executable, "-m", "grader", "grade", "--target", str(submission), "-e", "ex2", "-e", "ex4",
                        "--json", str(out)], cwd=tmp_path, env=env, capture_output=True, timeout=600)
        doc = json.loads(out.read_text())
        text = json.dumps(doc)
        marks[without] = (doc["lesson"]["protections"]["syscall_filter"],
                          sorted(set(re.findall(r"atk-(?:unix_socket|sysv_ipc): [a-z ,]+(?:\([A-Za-z]+\))?", text))))
        assert doc["score"] == 0, doc["score"]
    filtered, control = marks["fork"], marks["fork,seccomp"]
    assert control[0] is False and any("socket created" in m for m in control[1]) and any(
        "segment made" in m for m in control[1]), f"positive control: {control}"
    assert filtered == (True, ["atk-sysv_ipc: shmget refused (PermissionError)",
                               "atk-unix_socket: socket refused (PermissionError)"]), filtered


def test_filter_keeps_threads_torch_and_the_open_socket(tmp_path):
    """Threads, torch with two threads, and a socket made before the filter all keep working under it."""
    import torch

    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            ok = seccomp.install()
            done = []
            t = threading.Thread(target=done.append, args=(1,))
            t.start()
            t.join()
            torch.set_num_threads(2)
            value = float((torch.ones(64, 64) @ torch.ones(64, 64)).sum())
            b.sendall(json.dumps({"ok": ok, "thread": done, "torch": value}).encode())
        finally:
            os._exit(0)
    b.close()
    a.settimeout(DEADLINE)
    out = json.loads(a.recv(4096))
    os.waitpid(pid, 0)
    assert out == {"ok": True, "thread": [1], "torch": 64.0 * 64 * 64}


def test_filter_refuses_fallocate(tmp_path):
    """fallocate reserves space without writing it, faster than any watch can look: refused under the filter
    (EPERM); the positive control, the same call without the filter, reserves the MiB."""
    def reserve(filtered: bool) -> str:
        a, b = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            try:
                if filtered and not seccomp.install():
                    b.sendall(b"no filter")
                fd = os.open(tmp_path / f"reserved-{filtered}.bin", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    os.posix_fallocate(fd, 0, 2**20)
                    b.sendall(b"reserved %d" % os.fstat(fd).st_blocks)
                except OSError as exc:
                    b.sendall(f"refused {exc.errno}".encode())
            finally:
                os._exit(0)
        b.close()
        a.settimeout(DEADLINE)
        out = a.recv(4096).decode()
        os.waitpid(pid, 0)
        return out

    assert reserve(False) == f"reserved {2**20 // 512}"
    assert reserve(True) == f"refused {errno.EPERM}"


def test_filter_kills_a_call_under_another_abi():
    """The program checks the audit arch first and kills on a mismatch (an i386 or x32 call's numbers mean
    other calls); aarch64 gets its own program."""
    program = seccomp.program("x86_64")
    assert len(program) % 8 == 0 and program[:8] == bytes.fromhex("2000000004000000")  # ld [arch]
    assert seccomp.program("aarch64") != program


def test_tmpfs_caps_the_total_written(tmp_path):
    """The disk filler's step, small: on the worker's tmpfs (1 MiB) the second MiB fails with ENOSPC; on the
    plain folder below (the positive control) it is written."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            ns = confine.enter_namespaces()
            results = {}
            for name, cap in (("plain", False), ("capped", True)):
                folder = tmp_path / name
                folder.mkdir()
                if cap and not confine.private_tmpfs(folder, 2**20):
                    raise OSError(f"no tmpfs ({ns})")
                try:
                    for i in range(2):
                        (folder / f"f{i}").write_bytes(b"\0" * (2**20 - 4096))
                    results[name] = "written"
                except OSError as exc:
                    results[name] = f"errno {exc.errno}"
            os.write(w, json.dumps(results).encode())
        except BaseException as exc:  # noqa: BLE001
            os.write(w, json.dumps({"error": repr(exc)}).encode())
        finally:
            os._exit(0)
    os.close(w)
    out = json.loads(os.read(r, 4096) or b"{}")
    os.close(r)
    os.waitpid(pid, 0)
    assert out == {"plain": "written", "capped": "errno 28"}, out


def test_open_ways_are_put_back_by_the_last_holder(tmp_path):
    """open_ways adds only the search bit to the ancestors that lack it and records their modes; close_ways
    leaves them open while another holder lives, and the last holder puts back exactly the modes it found."""
    record = str(tmp_path / "ways.json")
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    os.chmod(tmp_path / "a", 0o700)
    os.chmod(tmp_path / "a" / "b", 0o750)
    changed = uid.open_ways([deep], record=record)
    assert str(tmp_path / "a") in changed and str(tmp_path / "a" / "b") in changed, changed
    assert oct((tmp_path / "a").stat().st_mode & 0o777) == oct(0o701)
    assert oct((tmp_path / "a" / "b").stat().st_mode & 0o777) == oct(0o751)
    # another grader process (our parent, alive) still needs them: nothing is put back yet
    ways = json.loads(Path(record).read_text())
    Path(record).write_text(json.dumps({**ways, "holders": [*ways["holders"], os.getppid()]}))
    assert uid.close_ways(record=record) == []
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o701
    # the other holder leaves (here: is gone from the record): the last one restores
    Path(record).write_text(json.dumps({**ways, "holders": [os.getpid()]}))
    restored = uid.close_ways(record=record)
    assert sorted(restored) == sorted(changed)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o750
    assert json.loads(Path(record).read_text()) == {"holders": [], "modes": {}}


def test_sweep_removes_what_a_worker_uid_left_and_nothing_else(tmp_path):
    """The judge's sweep of the shared writable folders: names the worker's uid owns (a file, a link, a tree with a
    link out) are removed, links never followed; another uid's names stay."""
    worker, other = uid.UID_BASE + 7, uid.UID_BASE + 8
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    shared = tmp_path / "shared"
    (shared / "tree" / "deep").mkdir(parents=True)
    (shared / "tree" / "deep" / "out").symlink_to(victim)
    (shared / "file").write_text("x")
    (shared / "link").symlink_to(victim)
    (shared / "theirs").write_text("y")
    if os.geteuid() != 0:
        pytest.skip("giving names to other uids needs root")
    for name in ("tree", "tree/deep", "tree/deep/out", "file", "link"):
        os.chown(shared / name, worker, worker, follow_symlinks=False)
    os.chown(shared / "theirs", other, other)
    removed = uid.sweep(worker, folders=[str(shared)])
    assert sorted(Path(p).name for p in removed) == ["file", "link", "tree"]
    assert [p.name for p in shared.iterdir()] == ["theirs"] and victim.read_text() == "keep"


def test_disk_usage_adds_up_what_a_worker_uid_wrote_and_nothing_else(tmp_path):
    """The judge's watch on the total a worker writes where no tmpfs caps it: its judge's folder, the names and
    trees it owns in a shared folder (blocks, so a file with holes counts what it takes, not its length, and a
    folder counts its own blocks), and a file it keeps open or mapped after removing its name; another uid's
    names and what a link points to do not count."""
    worker, other = uid.UID_BASE + 7, uid.UID_BASE + 8
    private, shared = tmp_path / "private", tmp_path / "shared"
    (private / "worker-1").mkdir(parents=True)
    (private / "worker-1" / "a.bin").write_bytes(b"a" * 2**20)  # an earlier worker's folder counts too
    (shared / "tree").mkdir(parents=True)
    (shared / "tree" / "b.bin").write_bytes(b"b" * 2**20)
    (shared / "theirs.bin").write_bytes(b"c" * 2**20)
    (shared / "link").symlink_to(shared / "theirs.bin")
    with open(shared / "sparse.bin", "wb") as f:  # a length of 1 GiB, one block written
        f.truncate(2**30)
        f.write(b"d")
    if os.geteuid() != 0:
        pytest.skip("giving names to other uids needs root")
    for name in ("tree", "tree/b.bin", "link", "sparse.bin"):
        os.chown(shared / name, worker, worker, follow_symlinks=False)
    os.chown(shared / "theirs.bin", other, other)
    blocks = sum(os.lstat(p).st_blocks * 512 for p in (shared / "sparse.bin", shared / "link", shared / "tree",
                                                        private / "worker-1"))
    assert os.stat(shared / "sparse.bin").st_blocks * 512 < 2**20, "the control: a hole takes no blocks"
    mib = 2**20
    assert uid.disk_usage(worker, private, None, folders=[str(shared)]) == 2 * mib + blocks
    held, mapped = tmp_path / "held.bin", tmp_path / "mapped.bin"
    held.write_bytes(b"e" * 2**20)
    mapped.write_bytes(b"f" * 2**20)
    with open(held, "rb"):
        # libc's mmap, not Python's (whose object keeps a descriptor of its own): only the mapping keeps the file
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype, libc.munmap.argtypes = ctypes.c_void_p, (ctypes.c_void_p, ctypes.c_size_t)
        libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
        fd = os.open(mapped, os.O_RDONLY)
        view = libc.mmap(None, mib, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        os.close(fd)
        assert view not in (None, ctypes.c_void_p(-1).value), ctypes.get_errno()
        try:
            # this process may keep other files with no name (pytest's capture files): count the change only
            named = uid.disk_usage(worker, private, os.getpid(), folders=[str(shared)])
            held.unlink()  # this process holds it open with no name: its pid's descriptors count it
            mapped.unlink()  # only a mapping keeps this one: /proc/<pid>/maps finds it
            assert uid.disk_usage(worker, private, os.getpid(), folders=[str(shared)]) - named == 2 * mib
        finally:
            libc.munmap(view, mib)
    assert uid.disk_usage(worker, private, None, folders=[str(shared)]) == 2 * mib + blocks
    assert uid.disk_usage(other, tmp_path / "none", None, folders=[str(shared)]) == mib  # theirs.bin only
    for i in range(5):
        (private / f"f{i}").write_bytes(b"")
    assert uid.disk_usage(worker, private, None, folders=[str(shared)], entries=5) is None  # too many names


def _read_as_another_uid(path: Path) -> int:
    """Bytes of ``path`` that a uid owning nothing (the one a worker drops to) reads, in a child; -1 if refused."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            uid.drop_uid(0x5EC00000 + 0xFFFF)
            try:
                got = len(path.read_bytes())
            except OSError:
                got = -1
            os.write(w, str(got).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as pipe:
        got = pipe.read()
    os.waitpid(pid, 0)
    return int(got)


def test_uid_mode_seals_everything_in_the_checkout_but_what_workers_read(tmp_path):
    """Every entry at the top of the checkout is sealed in uid mode (``.git`` holds the hidden tests' history,
    ``.grades`` their names) but those holding what a worker reads: ``llm_basics`` and a venv inside."""
    from grader.judge.student import unread_by_workers

    for name in ("llm_basics", ".venv/lib/python3/site-packages", ".git/objects", ".grades", "tests/hidden",
                 "solutions", "grader"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "README.md").write_text("")
    (tmp_path / "elsewhere").symlink_to(tmp_path / "llm_basics")  # a link counts by where it is
    read = [str(tmp_path / ".venv" / "lib" / "python3" / "site-packages"), str(tmp_path / "llm_basics"), "/usr"]
    sealed = [p.name for p in unread_by_workers(tmp_path, read)]
    assert sealed == [".git", ".grades", "README.md", "elsewhere", "grader", "solutions", "tests"], sealed


def test_uid_mode_seals_a_checkout_with_secrets_and_leaves_a_release_alone(tmp_path, monkeypatch):
    """seal_secrets in uid mode: a checkout with hidden tests loses group and other rights on everything but what a
    worker reads; a student's release (no hidden tests, no solutions: nothing to hide) keeps its modes."""
    from types import SimpleNamespace

    from grader.judge import student

    monkeypatch.setattr(uid, "needs_uid_drop", lambda here: True)
    config = SimpleNamespace(getoption=lambda name: False, args=[])
    for kind in ("release", "instructor"):
        root = tmp_path / kind
        for name in ("llm_basics", "exercises", ".git", "tests"):
            (root / name).mkdir(parents=True)
            os.chmod(root / name, 0o755)
        (root / "README.md").write_text("")
        os.chmod(root / "README.md", 0o644)
        if kind == "instructor":
            (root / "tests" / "hidden").mkdir()
            os.chmod(root / "tests" / "hidden", 0o755)
        monkeypatch.setattr(student, "REPO_ROOT", root)
        sealed = student.seal_secrets(config)
        modes = {p.name: p.stat().st_mode & 0o777 for p in root.iterdir()}
        if kind == "release":
            assert sealed == [] and set(modes.values()) == {0o755, 0o644}, (sealed, modes)
        else:
            assert sorted(Path(p).name for p in sealed) == [".git", "README.md", "exercises", "hidden", "tests"]
            assert modes == {"llm_basics": 0o755, "exercises": 0o700, ".git": 0o700, "tests": 0o700,
                             "README.md": 0o600}, modes


READ_HIDDEN = '''\
import os, sys
here = [p for p in sys.path if os.path.isdir(os.path.join(p, "tests", "hidden"))] + [os.environ.get("ATK_REPO", "")]
try:
    found = os.listdir(os.path.join(here[-1], "tests", "hidden"))
    mark = f"listed {len(found)} hidden files"
except OSError as exc:
    mark = f"hidden refused ({type(exc).__name__})"
try:  # the repository's history holds every version of the hidden tests (a real attack decodes its packs)
    with open(os.path.join(here[-1], ".git", "objects", "pack", "pack-1.pack"), "rb") as f:
        mark += f"; read {len(f.read())} bytes of .git"
except OSError as exc:
    mark += f"; .git refused ({type(exc).__name__})"
left = os.path.join("/tmp", "atk-uid-leftover-" + os.environ.get("ATK_TAG", "x"))
try:  # a name in the folder every uid may write to, which must not outlive the grading
    with open(left, "w") as f:
        f.write("left behind")
    os.makedirs(left + ".d/inner")
    mark += "; left files in /tmp"
except OSError as exc:
    mark += f"; /tmp refused ({type(exc).__name__})"
raise RuntimeError(f"atk-read_hidden_uid: {mark} as uid {os.getuid()}")
'''


@pytest.mark.slow
@pytest.mark.skipif(not facilities.present().setuid, reason="the uid drop needs root")
def test_without_landlock_and_namespaces_the_worker_drops_to_its_own_uid(tmp_path, host_modes):
    """As root with Landlock and namespaces switched off, the worker runs as a uid of its own that cannot list
    tests/hidden (sealed by the judge), the filter still holds, the reference still scores 100 on ex1 and the
    hostile submission 0; afterwards the submission's folder has its group and modes back, and the host's
    folders their modes (host_modes)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for part in ("grader", "llm_basics", "tests", "solutions", "exercises"):
        shutil.copytree(REPO / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    # a stand-in for the history: world-readable, as git makes it
    pack = repo / ".git" / "objects" / "pack" / "pack-1.pack"
    pack.parent.mkdir(parents=True)
    pack.write_bytes((REPO / "tests" / "hidden" / "test_ex1_special_tokens_hidden.py").read_bytes())
    os.chmod(pack, 0o644)
    # the positive control: before the grading, a uid that owns nothing reads it (the modes alone allow it), once the
    # ways to the repository are open as a grading opens them (uid.open_ways, put back at once)
    record = str(tmp_path / "ways.json")
    uid.open_ways([repo / "llm_basics"], record=record)
    try:
        assert _read_as_another_uid(pack) == len(pack.read_bytes()), "positive control: .git was not readable"
    finally:
        uid.close_ways(record=record)
    sub = tmp_path / "sub"
    sub.mkdir()
    for stub in (REPO / "exercises").glob("ex*_*.py"):
        (sub / stub.name).write_text(stub.read_text())
    (sub / "ex1_special_tokens.py").write_text(READ_HIDDEN)
    env = {**os.environ, "GRADER_WITHOUT": "landlock,namespaces", "PYTHONPATH": str(repo), "ATK_REPO": str(repo),
           "ATK_TAG": tmp_path.name}
    leftover = Path("/tmp") / f"atk-uid-leftover-{tmp_path.name}"

    def owners(folder: Path) -> dict[str, tuple[int, int]]:
        return {str(p): (p.lstat().st_gid, p.lstat().st_mode & 0o7777) for p in [folder, *folder.iterdir()]}

    sub_before = owners(sub)
    docs = {}
    for name, target in (("attack", sub), ("reference", repo / "solutions")):
        out = tmp_path / f"{name}.json"
        subprocess.run([sys.executable, "-m", "grader", "grade", "--target", str(target), "-e", "ex1", "--hidden",
                        "--json", str(out)], cwd=repo, env=env, capture_output=True, timeout=600)
        docs[name] = json.loads(out.read_text())
    attack, reference = docs["attack"], docs["reference"]
    prot = attack["lesson"]["protections"]
    assert prot["uid"] and prot["syscall_filter"] and not prot["filesystem"] and not prot["pid_namespace"], prot
    text = json.dumps(attack)
    assert ("atk-read_hidden_uid: hidden refused (PermissionError); .git refused (PermissionError); left files in"
            " /tmp as uid") in text, text[:3000]
    # what the worker's uid wrote in /tmp (its hostile step ran: the mark) is gone once the judge ended
    assert not leftover.exists() and not Path(f"{leftover}.d").exists()
    assert attack["score"] == 0
    assert reference["score"] == reference["max_score"] == 25, reference["score"]
    # the submission's folder was shared with the worker's gid while grading, and is the user's again
    assert owners(sub) == sub_before
