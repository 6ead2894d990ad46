"""How a forked worker comes to be, and what it is allowed before it serves: the zygote, the launcher, the
worker's set-up (its output, its limits, its disk cap, its uid, Landlock, the syscall filter).

The process tree is drawn atop grader.worker.worker. All of this is trusted code that runs before any student
code; once the worker is confined it serves requests with grader.worker.worker's ``Worker``. Linux only: where
fork is missing, grader.worker.spawned does the same for a fresh interpreter.
"""

from __future__ import annotations

import json
import os
try:
    import resource  # Unix: the forked worker's limits (a spawned worker sets its own: grader.worker.spawned)
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]
import select
import signal
import socket
import sys
from pathlib import Path

from grader.processes import die_with_parent, pin_to_cpu, run_child
from grader.worker import confine, seccomp, wire
from grader.worker.uid import drop_uid, grant_default
from grader.worker.worker import Worker, settle_in


# ----------------------------------------------------------------------------------------------------------
# zygote and launcher (trusted code, run before any student code)
# ----------------------------------------------------------------------------------------------------------


def start_zygote() -> tuple[int, socket.socket]:
    """Fork the zygote from this (judge) process; returns (pid, control socket).

    The control socket keeps message boundaries (SOCK_SEQPACKET), so judges forked from this one (one per
    submission in a batch) can share it: each "spawn" request arrives whole, with its descriptors."""
    if sys.platform != "linux":  # forked workers are the Linux path (grader.facilities; else grader.portable)
        raise OSError("the fork path runs on Linux only")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            _close_fds_except(theirs.fileno())  # the judge's files (its event stream, say) are not ours to hold
            die_with_parent()
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the judge's to handle
            signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # launchers are reaped by the kernel
            _zygote_loop(theirs)
        except BaseException:  # noqa: BLE001
            code = 70
        finally:
            os._exit(code)
    theirs.close()
    return pid, ours


def _close_fds_except(*keep: int) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _zygote_loop(control: socket.socket) -> None:
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(control, 65536, 2)
        except OSError:
            return
        if not msg or len(fds) != 2:
            return
        config = json.loads(msg)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            control.close()
            _launcher(socket.socket(fileno=fds[0]), fds[1], config)
        for fd in fds:
            os.close(fd)


def _launcher(sock: socket.socket, status_fd: int, config: dict) -> None:
    """Enter the namespaces, fork the worker, wait for it, tell the judge how it ended. Never returns.

    The launcher also watches the judge that asked for the worker: if that judge dies (a batch stops it at its
    time limit, or Ctrl-C), the worker is killed at once, even in the middle of an endless loop."""
    code = 0
    try:
        die_with_parent()
        judge = os.pidfd_open(config["judge_pid"])  # before the namespaces: the judge's pid is ours to see now
        # a worker that drops to its own uid needs no user namespace (one that maps only ours has no other uid)
        namespaces = confine.enter_namespaces(user=not config.get("uid")) if config.get("namespaces", True) else {}
        pid = os.fork()
        if pid == 0:
            os.close(status_fd)  # how the worker ended is for the launcher to say, not the worker
            os.close(judge)
            _worker_main(sock, config, namespaces)
        sock.close()
        worker = os.pidfd_open(pid)
        while True:
            ready, _, _ = select.select([worker, judge], [], [])
            if worker in ready:
                break
            os.kill(pid, signal.SIGKILL)  # the judge is gone: so is the worker (and its namespace with it)
        _, status = os.waitpid(pid, 0)
        os.write(status_fd, str(status).encode())
    except BaseException:  # noqa: BLE001
        code = 71
    os._exit(code)


def _outer_pid() -> int:
    """Our pid as the judge sees it (/proc is the judge's mount, so /proc/self names the outer pid)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError):
        return os.getpid()


def _worker_main(sock: socket.socket, config: dict, namespaces: dict) -> None:
    """Set up and confine the worker, then serve; never returns. A failure of ours is printed on the worker's
    output, which the judge reads."""

    def worker() -> None:
        die_with_parent()
        pin_to_cpu(config.get("cpu"))  # its judge's CPU: the two take turns
        _close_fds_except(sock.fileno())
        os.setpgid(0, 0)  # without a PID namespace the judge still kills everything in this group
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        private = Path(config["private"])
        private.mkdir(parents=True, exist_ok=True)
        settle_in(private)
        pid = _outer_pid()
        protections = {**confine.NONE, **namespaces}
        _limits(config)  # before confinement: it reads /proc/self/statm
        protections.update(_fence(config, private, namespaces.get("mount_namespace", False)))
        if config.get("confine", True):
            protections.update(confine.restrict(read=config["read"], write=[str(private)]))
        if config.get("seccomp"):  # last: the steps above mount, chown and change uid, which it denies
            protections["syscall_filter"] = seccomp.install()
            protections["no_new_privs"] = protections["no_new_privs"] or protections["syscall_filter"]
        wire.send(sock, {"r": wire.HELLO, "pid": pid, "protections": protections})
        Worker(sock, Path(config["target"])).serve()

    run_child(worker, error_code=72)


def _fence(config: dict, private: Path, mount_namespace: bool) -> dict:
    """The worker's disk cap and uid, set while it still may: returns {"disk_cap", "uid"} as protections.

    The disk cap is a size-limited tmpfs over its private folder in its own mount namespace (the output file
    was opened on the disk below first, and stays under RLIMIT_FSIZE). Without a mount namespace, only
    RLIMIT_FSIZE's per-file cap holds. The uid: see ``grader.worker.uid.needs_uid_drop``."""
    uid = config.get("uid")
    disk = bool(config.get("disk_bytes")) and mount_namespace and confine.private_tmpfs(
        private, config["disk_bytes"], uid=uid)
    if disk:
        os.chdir(private)  # the working directory was the folder below the mount
        if uid is not None:  # the judge writes files here for us as root: readable by our uid (see there)
            grant_default(private, uid)
    if uid is not None:
        # the judge has opened the way to the Python installation and our folders (uid.open_ways) and shared
        # the submission's folder with our gid (uid.share_read_only)
        if not disk:
            os.chown(private, uid, uid)
            os.chmod(private, 0o700)
        drop_uid(uid)
    return {"disk_cap": disk, "uid": uid is not None}


def _address_space_in_use() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _limits(config: dict) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (config["output_bytes"], config["output_bytes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if config.get("memory_bytes"):
        cap = _address_space_in_use() + config["memory_bytes"]
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:  # a batch job may already hold a tighter limit: never ask for more
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
