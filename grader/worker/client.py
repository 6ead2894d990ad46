"""The judge's side of the worker: proxies that turn attribute access and calls into requests.

``student("ex2_topk_attention")`` returns a :class:`RemoteModule`; ``.topk_attention(q, k, v, 2)`` sends the
call to the worker and returns the reply decoded as plain data (see grader.worker.wire). Objects the student
code creates come back as :class:`RemoteObject` handles; callables the test hands over stay here and are called
back. Every wait is bounded by the limits of the current test: the worker's own CPU time (from /proc, else psutil:
grader.portable.CpuMeter; a busy machine costs the student nothing) and a much larger wall-clock backstop. A worker that overruns, crashes or
exits is killed and replaced for the next test.
"""

from __future__ import annotations

import builtins
import os
import select
import shutil
import signal
import socket
import sys
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import torch

from grader import facilities, limits as caps, portable, untrusted_paths
from grader.worker import confine as confine_ids, rebuild, wire
from grader.records import GradingError
from grader.worker.worker import start_zygote
from grader.processes import describe_status, kill

MAX_OUTPUT_CHARS = caps.OUTPUT_CHARS  # printed output kept per test
POLL = 0.1  # seconds between limit checks while the worker computes
STARTUP_SECONDS = 120  # a worker's start-up (a spawned one imports torch: seconds on a busy laptop)


@dataclass
class WorkerLimits:
    cpu_seconds: float = caps.CPU_SECONDS  # CPU time of the student's code per test
    wall_seconds: float = caps.WALL_SECONDS  # backstop for code that sleeps or blocks (not the student's CPU)
    memory_bytes: int | None = caps.MEMORY_BYTES
    output_bytes: int = caps.OUTPUT_BYTES
    # every file the worker writes, together (a tmpfs in its mount namespace: grader.worker.confine.private_tmpfs)
    disk_bytes: int = caps.DISK_BYTES


# ----------------------------------------------------------------------------------------------------------
# what a test sees when the student code fails
# ----------------------------------------------------------------------------------------------------------


class StudentError(Exception):
    """An exception raised by the student code, rebuilt as a built-in type (see :func:`student_error`)."""

    student_type = "Exception"
    frames: list = []

    def __str__(self) -> str:
        return self.args[0] if self.args else ""

    def where(self) -> str:
        """' (ex2_topk_attention.py line 42)' for the deepest frame in the student's file, or ''."""
        if not self.frames:
            return ""
        name, line = self.frames[-1][0], self.frames[-1][1]
        return f" ({name} line {line})"

    def traceback_text(self) -> str:
        lines = [f'  File "{f[0]}", line {f[1]}, in {f[2]}\n    {f[3]}' for f in self.frames]
        return "\n".join(["Traceback (student code):", *lines, f"{self.student_type}: {self}"])


class StudentExit(StudentError):
    """The student code called sys.exit() (or raised SystemExit) inside a call."""


class WorkerLost(Exception):
    """The worker is gone (crash, os._exit, the memory limit) or was stopped at a limit: the test is lost."""

    kind = "crash"
    backstop = False


class WorkerTimeout(WorkerLost):
    kind = "timeout"


_ERROR_CLASSES: dict[str, type] = {}


def _student_class(base: type) -> type:
    """The class ``Student<base>``: a StudentError and a ``base`` (built once per built-in class)."""
    cls = _ERROR_CLASSES.get(base.__name__)
    if cls is None:
        cls = _ERROR_CLASSES[base.__name__] = type(f"Student{base.__name__}", (StudentError, base), {})
    return cls


def _instance(cls: type, message: str) -> StudentError | None:
    """``cls`` holding ``message``, or None. Some built-in classes take other arguments (UnicodeDecodeError needs
    five): those are made without their own __init__, since the test reads only the class and the message."""
    try:
        return cls(message)
    except TypeError:
        pass
    try:
        exc = cls.__new__(cls, message)
        exc.args = (message,)
        return exc
    except TypeError:  # ExceptionGroup: no instance without its own arguments
        return None


def student_error(header: dict) -> StudentError:
    """An exception of a class that is both a StudentError and the nearest built-in class of the student's
    exception, so that ``except ValueError`` in a test works as before while no student class crosses. Every
    built-in ancestor is kept: a student's UnicodeDecodeError is a UnicodeDecodeError and a ValueError here."""
    base_name = header.get("base") if type(header.get("base")) is str else "Exception"
    base = getattr(builtins, base_name, None)
    message = str(header.get("message", ""))[:MAX_OUTPUT_CHARS]
    exc = None
    if base_name == "SystemExit":
        exc = StudentExit(message)
    elif isinstance(base, type) and issubclass(base, Exception) and base is not Exception:
        for ancestor in base.__mro__:  # the nearest built-in class that can be made with a message alone
            if ancestor is Exception:
                break
            try:
                exc = _instance(_student_class(ancestor), message)
            except TypeError:  # a class no Python class can derive from together with StudentError
                exc = None
            if exc is not None:
                break
    if exc is None:
        exc = StudentError(message)
    exc.student_type = str(header.get("type", base_name))[:100]
    frames = header.get("frames")
    exc.frames = [
        [str(f[0])[:100], f[1] if type(f[1]) is int else 0, str(f[2])[:100], str(f[3])[:200]]
        for f in (frames if type(frames) is list else [])[:20]
        if type(f) is list and len(f) == 4
    ]
    exc.lineno = header.get("lineno") if type(header.get("lineno")) is int else None
    exc.exit_code = str(header.get("exit_code", ""))[:100]
    return exc


# ----------------------------------------------------------------------------------------------------------
# proxies
# ----------------------------------------------------------------------------------------------------------


class RemoteObject:
    """An object that lives in the worker. Attribute reads and calls are requests; nothing else is."""

    __slots__ = ("_client", "_id", "_generation", "_methods", "__weakref__")

    def __init__(self, client: "WorkerClient", hid: int, methods: list[str]) -> None:
        object.__setattr__(self, "_client", client)
        object.__setattr__(self, "_id", hid)
        object.__setattr__(self, "_generation", client.generation)
        object.__setattr__(self, "_methods", frozenset(methods))
        weakref.finalize(self, client.forget, client.generation, hid)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self._methods:
            return RemoteMethod(self, name)
        return self._client.request({"op": "getattr", "h": self._id, "name": name}, self)

    def __setattr__(self, name, value):
        raise AttributeError("objects of the student code cannot be changed from a test")

    def __call__(self, *args, **kwargs):
        return self._client.call(self, None, args, kwargs)

    def __repr__(self) -> str:
        return f"<object of the student code #{self._id}>"


class RemoteModule(RemoteObject):
    __slots__ = ()

    def __repr__(self) -> str:
        return "<student module>"


class RemoteMethod:
    __slots__ = ("owner", "name")

    def __init__(self, owner: RemoteObject, name: str) -> None:
        self.owner, self.name = owner, name

    def __call__(self, *args, **kwargs):
        return self.owner._client.call(self.owner, self.name, args, kwargs)

    def backward(self, args, weights, **kwargs):
        """Gradients of sum(output_i * weights_i) with respect to the tensor ``args``, computed where the
        function runs (an autograd graph cannot cross processes, its gradients can)."""
        return self.owner._client.call(self.owner, self.name, args, kwargs, op="backward", weights=weights)

    def __repr__(self) -> str:
        return f"<function {self.name} of the student code>"


# ----------------------------------------------------------------------------------------------------------
# the client
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _Test:
    cpu_base: float = 0.0
    cpu_done: float = 0.0  # CPU seconds of the workers this test already stopped
    waited: float = 0.0
    callbacks: list = field(default_factory=list)
    output_chars: int = 0
    seed_pending: bool = True
    callback_error: BaseException | None = None
    lost: WorkerLost | None = None  # once a call of this test lost the worker, every later call fails the same way


class WorkerClient:
    """Starts workers from a zygote and talks to the current one. One per judge session."""

    def __init__(self, target: Path, workdir: Path, *, limits: WorkerLimits | None = None,
                 read_paths: list[str] = (), confine: bool = True, zygote: socket.socket | None = None,
                 cpu: int | None = None) -> None:
        self.target = Path(target).resolve()
        self.workdir = Path(workdir)
        self.limits = limits or WorkerLimits()
        self.read_paths = list(read_paths)
        self.confine = confine
        self.cpu = cpu  # the CPU the workers run on: their judge's (grader.processes.pin_to_cpu); None: any
        self.generation = 0
        self.ran_hidden = False  # the current worker served a hidden test (grader.judge.plugin._keep_hidden_inputs_in)
        self.sock: socket.socket | None = None
        self.pid: int | None = None
        self.protections: dict = {}
        self.modules: dict[str, RemoteModule | str] = {}  # name -> module, or why it cannot be imported
        self.import_failures: dict[str, str] = {}  # kept across workers: a module that loops is not retried
        self._release: list[int] = []
        self._next_id = 0  # the id of the last request sent (grader.worker.wire: every reply must name its request)
        self._test = _Test()
        self._output = None
        self._status = None
        self._meter: portable.CpuMeter | None = None  # the worker's CPU time (read twice per test)
        self._spawned: portable.Spawned | None = None  # the current worker, where it was spawned (no zygote)
        self._shared = None  # (gid, what share_read_only changed) while the target is shared with a worker's gid
        self._ways = False  # whether we opened ways for a worker of its own uid (confine.open_ways)
        # a zygote of our own, or one shared with the other judges of a batch (forked before any test module
        # was imported, so that no worker ever holds an expected value in its memory); none where fork is
        # missing: each worker is then a fresh interpreter, started ahead of need (grader.portable.Spares)
        self.forks = facilities.present().fork
        self.own_zygote = zygote is None and self.forks
        self.zygote_pid, self.zygote = start_zygote() if self.own_zygote else (None, zygote)
        if not self.forks:
            portable.SPARES.prepare(str(self.workdir.parent if self.workdir.exists() else Path.cwd()))

    # -- lifecycle --------------------------------------------------------------------------------------------

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
            # the syscall filter, the disk cap and the uid (grader.worker.seccomp, worker._fence)
            "seccomp": self.confine and here.seccomp, "disk_bytes": self.limits.disk_bytes,
            "uid": confine_ids.worker_uid(os.getpid()) if self.confine and confine_ids.needs_uid_drop(here) else None,
        }
        if config["uid"] is not None:
            # the worker's uid owns nothing: it needs the search bit on the way to the Python installation (a
            # module imported later, the student's `import statistics`, must still be found) and to its folders;
            # recorded, and put back when the last judge closes (close_ways)
            self._ways = True
            confine_ids.open_ways([*config["read"], config["private"]])
            confine_ids.grant_default(self.private, config["uid"])  # what a test writes there, the worker reads
            if self._shared is None:  # the same uid for every worker of this judge: once, put back by close()
                self._shared = (config["uid"], confine_ids.share_read_only(self.target, config["uid"]))
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
        if header.get("r") != "hello" or type(header.get("pid")) is not int:
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
        }
        sock.settimeout(self.limits.wall_seconds)
        try:
            wire.send(sock, config)
            header, _ = self._receive(startup=True)
        except (WorkerLost, OSError):
            header = {}
        if header.get("r") != "hello" or type(header.get("pid")) is not int:
            self.kill()
            why = _read_regular(self.private / "output.txt").decode(errors="replace").strip().splitlines()[-1:]
            raise GradingError("the worker process could not start" + (f": {why[0]}" if why else ""))
        self.pid = popen.pid
        self._hello(header)
        self._test.cpu_base = self._cpu()

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
            confine_ids.unshare(before, gid)
        if self._ways:
            self._ways = False
            confine_ids.close_ways()
        if not self.own_zygote:
            return
        try:
            self.zygote.close()
            kill(self.zygote_pid)
            os.waitpid(self.zygote_pid, 0)
        except (ProcessLookupError, ChildProcessError, OSError):
            pass

    def forget(self, generation: int, hid: int) -> None:
        if generation == self.generation:
            self._release.append(hid)

    # -- per test ---------------------------------------------------------------------------------------------

    def begin_test(self) -> None:
        self._test = _Test(cpu_base=self._cpu())

    def test_cpu(self) -> float:
        """CPU seconds the workers have used since this test began (in clock ticks of 10 ms)."""
        current = max(0.0, self._cpu() - self._test.cpu_base) if self.sock is not None else 0.0
        return self._test.cpu_done + current

    # -- requests ---------------------------------------------------------------------------------------------

    def module(self, name: str) -> RemoteModule:
        if name in self.import_failures:
            raise ImportFailure(self.import_failures[name])
        if self.sock is None:
            self._spawn()  # a fresh worker after a crash or a timeout: its modules are imported again
        found = self.modules.get(name)
        if found is None:
            try:
                handle = self.request({"op": "import", "name": name}, None, cls=RemoteModule)
            except StudentError as exc:
                self.import_failures[name] = describe_import_error(name, exc)
                raise ImportFailure(self.import_failures[name]) from None
            except WorkerLost as exc:
                self.import_failures[name] = (
                    f"{name}.py: importing it did not finish within the time limit ({exc}); is there an endless"
                    " loop or a long computation at the top level of the file?"
                    if exc.kind == "timeout"
                    else f"{name}.py: importing it crashed the grading process ({exc})"
                )
                raise ImportFailure(self.import_failures[name]) from None
            if not isinstance(handle, RemoteModule):
                raise WorkerLost("the worker answered an import with something else")
            found = self.modules[name] = handle
        return found

    def put_file(self, name: str, data: bytes) -> Path:
        """Have the worker write ``data`` to the file ``name`` of its folder; returns the path for the student code.
        The judge never opens it: the worker can replace anything in its folder by a link or a FIFO."""
        enc = wire.Encoder()
        self.request({"op": "put", "name": _file_name(name), "data": enc.encode(bytes(data))}, None,
                     buffers=enc.buffers)
        return self.private / name

    def get_file(self, name: str) -> bytes:
        """The bytes of the file ``name`` that the student code wrote in the worker's folder, read by the worker
        (a regular file only, opened without following a link, at most wire.MAX_FILE bytes)."""
        data = self.request({"op": "get", "name": _file_name(name)}, None)
        if type(data) is not bytes or len(data) > wire.MAX_FILE:
            self.kill()
            raise WorkerLost("the worker answered a file read with something else")
        return data

    def call(self, obj: RemoteObject, name: str | None, args, kwargs, *, op: str = "call", weights=None):
        enc = wire.Encoder(self._encode_other)
        header = {"op": op, "h": obj._id, "name": name, "args": enc.encode(list(args)),
                  "kwargs": enc.encode(dict(kwargs))}
        if weights is not None:
            header["weights"] = enc.encode(list(weights))
        try:
            return self.request(header, obj, buffers=enc.buffers)
        finally:
            # a function of the test's that failed when called back (pytest.fail in a fake clock, say) fails
            # the test, whatever the student code made of the error it was given
            failed, self._test.callback_error = self._test.callback_error, None
            if failed is not None:
                raise failed

    def request(self, header: dict, owner: RemoteObject | None, *, buffers=(), cls=RemoteObject):
        # Hypothesis replays a failing example: it must see the same timeout again, not a fresh worker that
        # answers (that would be reported as a flaky test instead of a timeout)
        if self._test.lost is not None:
            raise self._test.lost
        try:
            return self._request(header, owner, buffers, cls)
        except WorkerLost as exc:
            self._test.lost = exc
            raise

    def _request(self, header: dict, owner: RemoteObject | None, buffers, cls):
        if owner is not None and owner._generation != self.generation:
            raise WorkerLost("this object belonged to a worker that was stopped earlier in the test")
        if self.sock is None:
            self._spawn()
            if owner is not None:  # cannot happen: a new worker has a new generation
                raise WorkerLost("the worker was restarted")
        if self._release:
            header["release"], self._release = self._release, []
        if self._test.seed_pending:
            header["seed"] = 0  # every test starts from the same random state in the worker too
            self._test.seed_pending = False
        self._refuse_unasked()
        self._next_id += 1
        rid = header["id"] = self._next_id
        self._send(header, buffers)
        return self._wait_reply(cls, rid)

    def _refuse_unasked(self) -> None:
        """A message waiting before we ask anything answers nothing: a reply forged by the student code (the real
        one came after it) or a call back from a thread left running. Taken as the answer to the next request it
        would shift every later reply by one; instead the worker is stopped, and this call is lost."""
        if select.select([self.sock], [], [], 0)[0]:
            self.kill()
            raise WorkerLost("the worker sent a message that answers no request (a forged or extra reply)")

    def _send(self, header: dict, buffers=()) -> None:
        try:
            wire.send(self.sock, header, list(buffers))
        except TimeoutError:
            self.kill()
            exc = WorkerTimeout(f"did not read a request within {self.limits.wall_seconds:g} s")
            exc.backstop = True
            raise exc from None
        except OSError:  # the worker is gone (a broken pipe): say how it ended
            ended = self._ended()
            self.kill()
            raise WorkerLost(f"the process running your code stopped ({ended})") from None

    def _wait_reply(self, cls, rid: int):
        while True:
            msg, bufs = self._receive()
            kind = msg["r"]
            if kind == "hello" or msg["id"] != rid:
                self.kill()
                raise WorkerLost("the worker sent a reply to another request than the one asked (a forged or"
                                 " reordered message)")
            if kind == "ok":
                return self._decode(msg["value"], bufs, cls)
            if kind == "err":
                raise student_error(msg)
            self._run_callback(msg, bufs, rid)
            # code that calls back without end never waits for the worker: its limits are checked here too
            self._check_limits(0.0)

    def _decode(self, value, bufs, cls=RemoteObject):
        def other(dec, tag, x, depth):
            if tag == "H" and len(x) == 3 and type(x[1]) is int and type(x[2]) is list and len(x[2]) < 2000:
                return cls(self, x[1], [m for m in x[2] if type(m) is str and len(m) < 200])
            raise wire.WireError(f"the worker sent a value with tag {tag!r}")

        try:
            return wire.Decoder(bufs, other).decode(value)
        except wire.WireError as exc:
            self.kill()
            raise WorkerLost(f"the student code returned something that is not plain data ({exc})") from None

    def _encode_other(self, enc: wire.Encoder, obj, depth: int):
        if isinstance(obj, RemoteObject):
            if obj._generation != self.generation:
                raise WorkerLost("this object belonged to a worker that was stopped earlier in the test")
            return ["H", obj._id, []]
        plain = rebuild.to_plain(obj)
        if plain is not None:
            return ["R", plain[0], enc.encode(plain[1], depth)]
        if callable(obj):
            self._test.callbacks.append(obj)
            return ["C", len(self._test.callbacks) - 1]
        raise TypeError(f"a test cannot send a {type(obj).__name__} to the student code")

    def _run_callback(self, msg: dict, bufs, rid: int) -> None:
        cid = msg["cb"]
        if not 0 <= cid < len(self._test.callbacks):
            self.kill()
            raise WorkerLost("the worker called back a function that was never handed over")
        args = self._decode(msg["args"], bufs)
        kwargs = self._decode(msg["kwargs"], bufs)
        if type(args) is not list or type(kwargs) is not dict or any(type(k) is not str for k in kwargs):
            self.kill()
            raise WorkerLost("malformed call back")
        try:
            with torch.set_grad_enabled(msg.get("grad") is not False):  # the grad mode the student code set
                value = self._test.callbacks[cid](*args, **kwargs)
        except KeyboardInterrupt:  # the person running the grader wants to stop: no answer, no worker
            self.kill()
            raise
        except BaseException as exc:  # noqa: BLE001 - the test's own failure: remembered and raised after the call
            # pytest.fail, pytest.skip and Exit are BaseExceptions: the worker still gets its answer, so it never
            # waits for one, and the test fails (or stops) with it once the call is over
            self._test.callback_error = exc
            self._send({"op": "cb_err", "id": rid, "message": f"{type(exc).__name__} in the test's function"})
            return
        enc = wire.Encoder(self._encode_other)
        header = {"op": "cb_ok", "id": rid, "value": enc.encode(value)}
        self._send(header, enc.buffers)

    # -- waiting within the limits ----------------------------------------------------------------------------

    def _receive(self, startup: bool = False):
        """The worker's next message, checked against the protocol's table; waits within the test's limits."""
        start = time.monotonic()
        try:
            while True:
                ready, _, _ = select.select([self.sock], [], [], POLL)
                if ready:
                    # a message that has begun must be whole within the backstop, however slowly it trickles in
                    deadline = time.monotonic() + self.limits.wall_seconds
                    msg, bufs = wire.recv(self.sock, deadline=deadline)
                    self.sock.settimeout(self.limits.wall_seconds)
                    wire.check(msg, "worker")
                    if not startup:  # waiting for a worker to start is not the student's time
                        self._test.waited += time.monotonic() - start
                    self._drain_output()
                    return msg, bufs
                waited = time.monotonic() - start
                if startup:
                    if waited > STARTUP_SECONDS:
                        raise WorkerLost(f"the worker did not start within {STARTUP_SECONDS} s")
                    continue
                self._check_limits(waited)
        except TimeoutError:
            self.kill()
            exc = WorkerTimeout(f"did not send a whole reply within {self.limits.wall_seconds:g} s")
            exc.backstop = True
            raise exc from None
        except (EOFError, ConnectionError, wire.WireError) as exc:
            if isinstance(exc, wire.WireError):
                self.kill()
                raise WorkerLost(f"the worker sent a malformed message ({exc})") from None
            ended = self._ended()
            self.kill()
            if ended == f"exit code {portable.CPU_LIMIT_EXIT}" and not self.forks:
                # the spawned worker's own CPU watch (where the judge cannot read its CPU time)
                raise WorkerTimeout(f"used more than {self.limits.cpu_seconds:g} s of CPU time") from None
            raise WorkerLost(f"the process running your code stopped ({ended}): os._exit(), a crash, or the"
                             " memory limit") from None

    def _check_limits(self, waited: float) -> None:
        """Stop the worker once this test has used its CPU time, or waited ``waited`` more seconds past the
        backstop."""
        limits = self.limits
        if self._cpu() - self._test.cpu_base > limits.cpu_seconds:
            self.kill()
            raise WorkerTimeout(f"used more than {limits.cpu_seconds:g} s of CPU time")
        if self._test.waited + waited > limits.wall_seconds:
            self.kill()
            exc = WorkerTimeout(
                f"did not answer within {limits.wall_seconds:g} s of wall-clock time, the backstop for code"
                " that waits rather than computes (sleep, input, a lock?)"
            )
            exc.backstop = True
            raise exc

    def _cpu(self) -> float:
        """CPU seconds used by the worker so far (user + system, its threads and waited-for children)."""
        return 0.0 if self._meter is None else self._meter.seconds()

    def _drain_output(self) -> None:
        if self._output is None:
            return
        data = self._output.read(MAX_OUTPUT_CHARS * 4)
        if not data:
            return
        self._output.seek(0, os.SEEK_END)  # the rest is dropped, not read
        room = MAX_OUTPUT_CHARS - self._test.output_chars
        if room > 0:
            text = data.decode("utf-8", errors="replace")[:room]
            self._test.output_chars += len(text)
            if self._test.output_chars >= MAX_OUTPUT_CHARS:
                text += f"\n... output truncated (only the first {MAX_OUTPUT_CHARS} characters are kept)\n"
                self._test.output_chars += 1
            sys.stdout.write(text)


def _file_name(name: str) -> str:
    """A file name of the worker's folder: one plain component (a test names files; it is checked all the same)."""
    if type(name) is not str or not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"not a plain file name: {name!r}")
    return name


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


class ImportFailure(Exception):
    """The student's module could not be imported; the message is what the student sees."""


def describe_import_error(name: str, exc: StudentError) -> str:
    if exc.student_type == "FileNotFoundError" and not exc.frames:
        return str(exc)
    if exc.student_type in ("SyntaxError", "IndentationError", "TabError"):
        line = f" line {exc.lineno}" if exc.lineno else ""
        return f"{name}.py{line}: {exc.student_type}: {exc} (fix this before anything in it can be graded)"
    line = f" line {exc.frames[-1][1]}" if exc.frames else ""
    return f"{name}.py{line}: importing it raised {exc.student_type}: {exc}"
