"""The worker process's life, as the judge sees it: start one, greet it, stop it, say how it ended.

On Linux a worker is forked by the zygote (grader.worker.zygote) and may drop to a uid of its own
(grader.worker.uid); elsewhere it is a fresh interpreter that was started ahead of need (grader.portable).
Either way the judge gets a socket, the worker's pid (for its CPU time) and the file its output goes to.
:class:`WorkerProcess` holds that state; :class:`grader.worker.client.WorkerClient` adds the requests, and
provides ``_receive``, ``_cpu``, ``_drain_output`` and the current test's record (``_test``) used here.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import sys
from pathlib import Path

from grader import facilities, portable, untrusted_paths
from grader.processes import describe_status, kill
from grader.records import GradingError
from grader.worker import uid, wire
from grader.worker.proxies import WorkerLost

STARTUP_SECONDS = 120  # a worker's start-up (a spawned one imports torch: seconds on a busy laptop)


class WorkerProcess:
    """The current worker process of a client: spawned on the first request, replaced after a crash or a limit.

    Set by the client's __init__: target, workdir, limits, read_paths, confine, cpu, forks, own_zygote,
    zygote_pid, zygote, and the fields below (all None/False/0 until a worker starts)."""

    generation: int
    sock: socket.socket | None
    pid: int | None

    @property
    def private(self) -> Path:
        """The folder the current worker may write (its working directory)."""
        return self.workdir / f"worker-{self.generation}"

    def _spawn(self) -> None:
        self.generation += 1
        self._release.clear()
        self.modules = {}
        self._fresh_private()
        if not self.forks:
            return self._spawn_portable()
        if sys.platform != "linux":  # forked workers are the Linux path (grader.facilities)
            raise OSError("the fork path runs on Linux only")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        status_r, status_w = os.pipe()
        here = facilities.present()
        config = {
            "target": str(self.target), "private": str(self.private),
            "read": [*self.read_paths, str(self.target)], "confine": self.confine and here.landlock,
            "namespaces": self.confine and here.namespaces, "output_bytes": self.limits.output_bytes,
            "memory_bytes": self.limits.memory_bytes,
            "judge_pid": os.getpid(), "cpu": self.cpu,
            # the syscall filter, the disk cap and the uid (grader.worker.seccomp, zygote._fence)
            "seccomp": self.confine and here.seccomp, "disk_bytes": self.limits.disk_bytes,
            "uid": uid.worker_uid(os.getpid()) if self.confine and uid.needs_uid_drop(here) else None,
        }
        self._worker_uid = config["uid"]
        if config["uid"] is not None:
            # the worker's uid owns nothing: it needs the search bit on the way to the Python installation (a
            # module imported later, the student's `import statistics`, must still be found) and to its folders;
            # recorded, and put back when the last judge closes (uid.close_ways)
            self._ways = True
            uid.open_ways([*config["read"], config["private"]])
            uid.grant_default(self.private, config["uid"])  # what a test writes there, the worker reads
            if self._shared is None:  # the same uid for every worker of this judge: once, put back by close()
                self._shared = (config["uid"], uid.share_read_only(self.target, config["uid"]))
        socket.send_fds(self.zygote, [wire.json.dumps(config).encode()], [theirs.fileno(), status_w])
        theirs.close()
        os.close(status_w)
        self._status = status_r
        self.sock = ours
        # a send or a read never waits longer than the backstop: a worker that stops reading (or sends half a
        # message) cannot block the judge
        ours.settimeout(self.limits.wall_seconds)
        self.pid = None
        try:
            header, _ = self._receive(startup=True)
        except WorkerLost:
            header = {}
        if header.get("r") != wire.HELLO or type(header.get("pid")) is not int:
            self.kill()
            why = _read_regular(self.private / "output.txt").decode(errors="replace").strip().splitlines()[-1:]
            raise GradingError("the worker process could not start" + (f": {why[0]}" if why else ""))
        self.pid = header["pid"]
        self._meter = portable.CpuMeter(self.pid, proc=here.proc)
        self._hello(header)
        self._test.cpu_base = 0.0

    def _hello(self, header: dict) -> None:
        prot = header.get("protections")
        self.protections = {str(k)[:40]: v for k, v in prot.items() if type(v) in (bool, int)} if type(prot) is dict else {}
        # no tmpfs caps what a worker of its own uid writes (no mount namespace): the judge adds it up (_check_disk)
        watch = self._worker_uid is not None and not self.protections.get("disk_cap") and facilities.present().proc
        self._disk_watch = self._worker_uid if watch else None
        self.protections["disk_watch"] = watch
        self._output = _open_regular(self.private / "output.txt")

    def _spawn_portable(self) -> None:
        """Take a worker interpreter that is already importing torch (grader.portable), configure it, wait for
        its hello. Its start-up is not the test's: the CPU count starts at the hello, and the wait for it is not
        in the test's wall-clock time."""
        here = facilities.present()
        popen, sock, address = portable.SPARES.take(str(self.workdir))
        try:
            if "token" in address:
                sock = portable.accept_worker(sock, address, STARTUP_SECONDS)
        except OSError:
            popen.kill()
            raise GradingError("the worker process could not start: it never connected") from None
        self._spawned = portable.Spawned(popen, sock)
        self.sock = sock
        self.pid = None
        self._meter = portable.CpuMeter(popen.pid, proc=here.proc)
        config = {
            "target": str(self.target), "private": str(self.private),
            "read": [*self.read_paths, str(self.target)], "confine": self.confine and here.landlock,
            "output_bytes": self.limits.output_bytes, "memory_bytes": self.limits.memory_bytes,
            "cpu_seconds": self.limits.cpu_seconds, "watch_cpu": not self._meter.available,
            "seccomp": self.confine and here.seccomp,  # Linux's syscall filter, where only fork is missing
        }
        sock.settimeout(self.limits.wall_seconds)
        try:
            wire.send(sock, config)
            header, _ = self._receive(startup=True)
        except (WorkerLost, OSError):
            header = {}
        if header.get("r") != wire.HELLO or type(header.get("pid")) is not int:
            self.kill()
            why = _read_regular(self.private / "output.txt").decode(errors="replace").strip().splitlines()[-1:]
            raise GradingError("the worker process could not start" + (f": {why[0]}" if why else ""))
        self.pid = popen.pid
        self._hello(header)
        self._test.cpu_base = self._cpu()

    def _check_disk(self) -> None:
        """Stop the worker once the files it has written take more than the disk cap (``uid.disk_usage``), where
        that cap is the judge's watch rather than a tmpfs's size."""
        if self._disk_watch is None or self.pid is None:
            return
        used = uid.disk_usage(self._disk_watch, self.workdir, self.pid)  # every worker-N folder: all its uid's
        if used is None or used > self.limits.disk_bytes:
            self.kill()
            what = "more files than anyone needs" if used is None else f"{used / 2**20:.1f} MiB of files"
            raise WorkerLost(f"the code wrote {what}, past the cap of {self.limits.disk_bytes / 2**20:.0f} MiB on"
                             " everything one worker writes: stopped")

    def _fresh_private(self) -> None:
        """An empty folder for the next worker. Whatever stands under its name (left by an earlier worker where no
        Landlock kept that one to its own folder: a link, a FIFO, a folder of links) is removed without following
        links (shutil.rmtree works from descriptors here), never used."""
        path = self.private
        self.workdir.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
        path.mkdir()

    def kill(self) -> None:
        """Stop the current worker and everything it started."""
        if self.pid is not None:
            self._test.cpu_done += max(0.0, self._cpu() - self._test.cpu_base)  # the test's record counts it
        if self._spawned is not None:
            self._spawned.kill()
        else:
            kill(self.pid, group=True)  # the process group too, for platforms without a PID namespace
        if self.sock is not None:
            self.sock.close()
        if self._output is not None:
            self._drain_output()
            self._output.close()
        if self._status is not None:
            os.close(self._status)
        if self._meter is not None:
            self._meter.close()
        self.sock = self.pid = self._output = self._status = self._meter = None

    def _ended(self) -> str:
        """How the worker ended, as its launcher saw it: 'exit code 7', 'killed by signal SIGSEGV'."""
        if self._spawned is not None:
            return self._spawned.ended(2.0)
        if self._status is None or not select.select([self._status], [], [], 2.0)[0]:
            return "it stopped"
        try:
            return describe_status(int(os.read(self._status, 64)))
        except (OSError, ValueError):
            return "it stopped"

    def close(self) -> None:
        self.kill()
        self._spawned = None
        if self._shared is not None:
            gid, before = self._shared
            self._shared = None
            uid.unshare(before, gid)
            uid.sweep(gid)  # the worker's uid (its gid too) is gone: nothing it left in /tmp outlives the grading
        if self._ways:
            self._ways = False
            uid.close_ways()
        if not self.own_zygote:
            return
        try:
            self.zygote.close()
            kill(self.zygote_pid)
            os.waitpid(self.zygote_pid, 0)
        except (ProcessLookupError, ChildProcessError, OSError):
            pass


def _open_regular(path: Path):
    """``path`` opened for reading if it is a regular file, never through a link and never blocking on a FIFO
    (the worker's folder is the worker's: the judge trusts no name in it)."""
    try:
        return os.fdopen(untrusted_paths.open_regular(path), "rb")
    except untrusted_paths.NotRegularFile as exc:
        raise GradingError(f"{path.name} in the worker's folder is not a regular file") from exc


def _read_regular(path: Path, limit: int = 65536) -> bytes:
    """The last ``limit`` bytes of a regular file, or b"" (for a message of ours: never blocks, never follows)."""
    try:
        return untrusted_paths.read_regular(path, limit=limit, tail=True)
    except OSError:
        return b""

