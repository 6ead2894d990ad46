"""The worker: the only process that imports and calls student code. It returns values, never verdicts.

Process tree (each arrow a fork)::

    judge (pytest, never runs student code)
      └─ zygote: forked before any test module is imported, so no expected value is in its memory; it waits
         for "spawn" requests and forks a launcher for each
           └─ launcher: enters new user, PID and network namespaces (a freshly forked process is single-
              threaded, which unshare(CLONE_NEWUSER) requires), forks the worker, waits for it, exits with it
                └─ worker: PID 1 of its namespace (when it dies the kernel kills everything it started),
                   confined by Landlock (reads only the Python installation, llm_basics and its submission
                   copy; writes only its private folder; no network, no signals outside), then serves
                   requests on its socket until the judge closes it.

Each process asks to be killed when its parent dies (PR_SET_PDEATHSIG), so nothing outlives the judge.
"""

from __future__ import annotations

import importlib.util
import json
import os
try:
    import resource  # Unix: the forked worker's limits (a spawned worker sets its own: grader.worker.spawned)
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]
import select
import signal
import socket
import stat
import sys
import traceback
from pathlib import Path

import numpy as np
import torch

from grader.worker import confine, rebuild, seccomp, wire
from grader.processes import die_with_parent, pin_to_cpu, run_child

from grader.limits import MESSAGE_CHARS as MAX_MESSAGE_CHARS  # the one source of the caps
MAX_FRAMES = 12


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
        os.chdir(private)
        out = os.open(private / "output.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        sys.stdout = open(1, "w", closefd=False, errors="replace", buffering=1)
        sys.stderr = open(2, "w", closefd=False, errors="replace", buffering=1)
        os.environ["TMPDIR"] = str(private)
        import tempfile

        tempfile.tempdir = str(private)
        sys.dont_write_bytecode = True
        pid = _outer_pid()
        protections = {**confine.NONE, **namespaces}
        _limits(config)  # before confinement: it reads /proc/self/statm
        protections.update(_fence(config, private, namespaces.get("mount_namespace", False)))
        if config.get("confine", True):
            protections.update(confine.restrict(read=config["read"], write=[str(private)]))
        if config.get("seccomp"):  # last: the steps above mount, chown and change uid, which it denies
            protections["syscall_filter"] = seccomp.install()
            protections["no_new_privs"] = protections["no_new_privs"] or protections["syscall_filter"]
        wire.send(sock, {"r": "hello", "pid": pid, "protections": protections})
        Worker(sock, Path(config["target"])).serve()

    run_child(worker, error_code=72)


def _fence(config: dict, private: Path, mount_namespace: bool) -> dict:
    """The worker's disk cap and uid, set while it still may: returns {"disk_cap", "uid"} as protections.

    The disk cap is a size-limited tmpfs over its private folder in its own mount namespace (the output file
    was opened on the disk below first, and stays under RLIMIT_FSIZE). Without a mount namespace, only
    RLIMIT_FSIZE's per-file cap holds. The uid: see ``confine.needs_uid_drop``."""
    uid = config.get("uid")
    disk = bool(config.get("disk_bytes")) and mount_namespace and confine.private_tmpfs(
        private, config["disk_bytes"], uid=uid)
    if disk:
        os.chdir(private)  # the working directory was the folder below the mount
        if uid is not None:  # the judge writes files here for us as root: readable by our uid (see there)
            confine.grant_default(private, uid)
    if uid is not None:
        # the judge has opened the way to the Python installation and our folders (confine.open_ways) and
        # shared the submission's folder with our gid (confine.share_read_only)
        if not disk:
            os.chown(private, uid, uid)
            os.chmod(private, 0o700)
        confine.drop_uid(uid)
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


# ----------------------------------------------------------------------------------------------------------
# serving requests (this is where student code runs)
# ----------------------------------------------------------------------------------------------------------


class CallbackError(Exception):
    """A function handed over by the test raised an error (its message is the test's)."""


def _builtin_base(exc: BaseException) -> str:
    """The nearest built-in exception class of ``exc`` (the judge raises one of those, never the student's)."""
    import builtins

    for cls in type(exc).__mro__:
        if getattr(builtins, cls.__name__, None) is cls:
            return cls.__name__
    return "Exception"


def put_file(name: str, data: bytes) -> None:
    """Write ``data`` to ``name`` in the working directory (the worker's folder) for a test; whatever stood under
    that name (a link, a FIFO the student code made) is replaced, never followed."""
    if os.path.lexists(name) and not os.path.isdir(name):
        os.unlink(name)
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with open(fd, "wb") as f:
        f.write(data)


def get_file(name: str) -> bytes:
    """The bytes of the regular file ``name`` of the working directory, for a test (at most wire.MAX_FILE)."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{name} is not a regular file")
        data = f.read(wire.MAX_FILE + 1)
    if len(data) > wire.MAX_FILE:
        raise OSError(f"{name} is larger than {wire.MAX_FILE // 2**20} MiB")
    return data


class Worker:
    def __init__(self, sock: socket.socket, target: Path) -> None:
        self.sock = sock
        self.target = target
        self.objects: dict[int, object] = {}
        self.next_id = 1
        self._methods: dict[type, list[str]] = {}
        self.serving: list[int] = []  # ids of the judge's requests being served, innermost last

    # -- values out ---------------------------------------------------------------------------------------

    def _other(self, enc: wire.Encoder, obj, depth: int):
        if isinstance(obj, torch.Tensor):
            return enc.tensor(obj.as_subclass(torch.Tensor))
        if isinstance(obj, np.generic):
            return enc.encode(obj.item(), depth)
        if isinstance(obj, np.ndarray):
            return wire.encode_ndarray(enc, obj)
        for base in (bool, int, float, str, bytes, tuple, list, dict):  # subclasses travel as their base
            if isinstance(obj, base):
                return enc.encode(base(obj), depth)
        return self.handle(obj)

    def handle(self, obj) -> list:
        hid = self.next_id
        self.next_id += 1
        self.objects[hid] = obj
        return ["H", hid, self.methods(obj)]

    def methods(self, obj) -> list[str]:
        """Names of the callable attributes (calls to them need no extra round trip)."""
        if isinstance(obj, type) or type(obj).__name__ == "module":
            source = obj
        else:
            source = type(obj)
            if source in self._methods:
                return self._methods[source]
        names = []
        for name in dir(source):
            if name.startswith("__"):
                continue
            try:
                if callable(getattr(source, name)) and not isinstance(getattr(source, name), type):
                    names.append(name)
            except Exception:  # noqa: BLE001
                pass
        if source is type(obj):
            self._methods[source] = names
        return names

    def reply(self, header: dict, value=None) -> None:
        header["id"] = self.serving[-1]
        enc = wire.Encoder(self._other)
        try:
            header["value"] = enc.encode(value)
        except Exception as exc:  # noqa: BLE001 - a value that cannot travel is an error of the call
            self.error(exc)
            return
        wire.send(self.sock, header, enc.buffers)

    def error(self, exc: BaseException) -> None:
        frames = []
        # no source lookups for every frame (torch's own are many): only the student's lines are read below
        for fr in traceback.StackSummary.extract(traceback.walk_tb(exc.__traceback__), lookup_lines=False):
            try:
                if Path(fr.filename).resolve().parent == self.target:
                    frames.append([Path(fr.filename).name, fr.lineno, fr.name, (fr.line or "")[:200]])
            except Exception:  # noqa: BLE001
                pass
        try:
            message = str(exc)
        except BaseException:  # noqa: BLE001
            message = "(its message could not be shown)"
        header = {
            "r": "err", "id": self.serving[-1], "type": type(exc).__name__[:100], "base": _builtin_base(exc),
            "message": message[:MAX_MESSAGE_CHARS], "frames": frames[-MAX_FRAMES:],
        }
        if isinstance(exc, SystemExit):
            header["exit_code"] = repr(exc.code)[:100]
        if isinstance(exc, SyntaxError):
            header["lineno"] = exc.lineno if type(exc.lineno) is int else None
            header["message"] = str(exc.msg)[:MAX_MESSAGE_CHARS]
        wire.send(self.sock, header)

    # -- values in ----------------------------------------------------------------------------------------

    def _in(self, dec: wire.Decoder, tag: str, x, depth: int):
        if tag == "H":
            return self.objects[x[1]]
        if tag == "C":
            return self.callback(x[1])
        if tag == "R":
            return rebuild.from_plain(x[1], dec.decode(x[2], depth))
        raise wire.WireError(f"unknown tag {tag}")

    def callback(self, cid: int):
        def call_judge(*args, **kwargs):
            enc = wire.Encoder(self._other)
            header = {"r": "cb", "id": self.serving[-1], "cb": cid, "args": enc.encode(list(args)),
                      "kwargs": enc.encode(kwargs), "grad": torch.is_grad_enabled()}
            wire.send(self.sock, header, enc.buffers)
            return self.wait_callback()

        call_judge.__name__ = call_judge.__qualname__ = "test_function"
        return call_judge

    def wait_callback(self):
        while True:
            msg, bufs = wire.recv(self.sock)
            op = wire.check(msg, "judge").name
            if op in ("cb_ok", "cb_err") and msg["id"] != self.serving[-1]:
                raise CallbackError("the answer of a call back to another request")  # cannot happen: the judge's
            if op == "cb_ok":
                return wire.Decoder(bufs, self._in).decode(msg["value"])
            if op == "cb_err":
                raise CallbackError(msg.get("message", ""))
            self.dispatch(msg, bufs)  # the judge called us back while calling a function of its own

    # -- the loop ---------------------------------------------------------------------------------------------

    def serve(self) -> None:
        while True:
            try:
                msg, bufs = wire.recv(self.sock)
            except EOFError:
                return
            wire.check(msg, "judge")  # the judge is trusted: a failure here is a bug of ours, and ends the worker
            self.dispatch(msg, bufs)

    def dispatch(self, msg: dict, bufs: list) -> None:
        for hid in msg.get("release", ()):
            self.objects.pop(hid, None)
        if "seed" in msg:
            torch.default_generator.manual_seed(msg["seed"])  # the CPU generator: all a worker uses
        self.serving.append(msg["id"])
        try:
            try:
                value = self.run(msg, bufs)
            except BaseException as exc:  # noqa: BLE001 - anything the student code raises is reported
                self.error(exc)
                return
            self.reply({"r": "ok"}, value)
        finally:
            self.serving.pop()

    def run(self, msg: dict, bufs: list):
        op = msg["op"]
        if op == "import":
            return self.load(msg["name"])
        if op == "put":
            return put_file(msg["name"], wire.Decoder(bufs).decode(msg["data"]))
        if op == "get":
            return get_file(msg["name"])
        obj = self.objects[msg["h"]]
        if op == "getattr":
            return getattr(obj, msg["name"])
        dec = wire.Decoder(bufs, self._in)
        args, kwargs = dec.decode(msg["args"]), dec.decode(msg["kwargs"])
        fn = obj if msg.get("name") is None else getattr(obj, msg["name"])
        if op == "call":
            return fn(*args, **kwargs)
        if op == "backward":
            return self.backward(fn, args, kwargs, msg["weights"], dec)
        raise ValueError(f"unknown op {op!r}")

    def load(self, name: str):
        path = self.target / f"{name}.py"
        if not path.is_file():
            raise FileNotFoundError(f"{name}.py not found in {self.target.name}/ (was it renamed or deleted?)")
        module_name = f"graded_{name}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        return module

    @staticmethod
    def backward(fn, args, kwargs, weights, dec: wire.Decoder):
        """Gradients of sum(output_i * weight_i) with respect to the tensor arguments (trusted glue around a
        student call: autograd graphs cannot cross processes, their gradients can)."""
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        for t in tensors:
            t.requires_grad_(True)
        out = fn(*args, **kwargs)
        outs = out if isinstance(out, (tuple, list)) else [out]
        weights = dec.decode(weights)
        loss = sum((o * w).sum() for o, w in zip(outs, weights) if w is not None)
        loss.backward()
        return [t.grad for t in tensors]
