"""The judge's side of the worker: proxies that turn attribute access and calls into requests.

``student("ex2_topk_attention")`` returns a :class:`RemoteModule`; ``.topk_attention(q, k, v, 2)`` sends the
call to the worker and returns the reply decoded as plain data (see grader.worker.wire). Objects the student
code creates come back as :class:`RemoteObject` handles; callables the test hands over stay here and are called
back. Every wait is bounded by the limits of the current test: the worker's own CPU time (from /proc, else psutil:
grader.portable.CpuMeter; a busy machine costs the student nothing) and a much larger wall-clock backstop. A worker that overruns, crashes or
exits is killed and replaced for the next test.
"""


from __future__ import annotations

import os
import select
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from grader import facilities, limits as caps, portable
from grader.worker import rebuild, wire
from grader.worker.process import STARTUP_SECONDS, WorkerProcess
# the proxies and errors are imported from here by the judge's plugin and the tests: kept importable as before
from grader.worker.proxies import (  # noqa: F401
    MAX_OUTPUT_CHARS, ImportFailure, RemoteMethod, RemoteModule, RemoteObject, StudentError, StudentExit,
    WorkerLost, WorkerTimeout, describe_import_error, student_error,
)
from grader.worker.zygote import start_zygote

POLL = 0.1  # seconds between limit checks while the worker computes


@dataclass
class WorkerLimits:
    cpu_seconds: float = caps.CPU_SECONDS  # CPU time of the student's code per test
    wall_seconds: float = caps.WALL_SECONDS  # backstop for code that sleeps or blocks (not the student's CPU)
    memory_bytes: int | None = caps.MEMORY_BYTES
    output_bytes: int = caps.OUTPUT_BYTES
    # every file the worker writes, together (a tmpfs in its mount namespace: grader.worker.confine.private_tmpfs)
    disk_bytes: int = caps.DISK_BYTES



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


class WorkerClient(WorkerProcess):
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
        self.ran_hidden = False  # the current worker served a hidden test (grader.judge.student._keep_hidden_inputs_in)
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
        self._ways = False  # whether we opened ways for a worker of its own uid (uid.open_ways)
        self._worker_uid = self._disk_watch = None  # the worker's own uid; the same where the judge watches its disk
        # a zygote of our own, or one shared with the other judges of a batch (forked before any test module
        # was imported, so that no worker ever holds an expected value in its memory); none where fork is
        # missing: each worker is then a fresh interpreter, started ahead of need (grader.portable.Spares)
        self.forks = facilities.present().fork
        self.own_zygote = zygote is None and self.forks
        self.zygote_pid, self.zygote = start_zygote() if self.own_zygote else (None, zygote)
        if not self.forks:
            portable.SPARES.prepare(str(self.workdir.parent if self.workdir.exists() else Path.cwd()))


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
                handle = self.request({"op": wire.IMPORT, "name": name}, None, cls=RemoteModule)
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
        self.request({"op": wire.PUT, "name": _file_name(name), "data": enc.encode(bytes(data))}, None,
                     buffers=enc.buffers)
        return self.private / name

    def get_file(self, name: str) -> bytes:
        """The bytes of the file ``name`` that the student code wrote in the worker's folder, read by the worker
        (a regular file only, opened without following a link, at most wire.MAX_FILE bytes)."""
        data = self.request({"op": wire.GET, "name": _file_name(name)}, None)
        if type(data) is not bytes or len(data) > wire.MAX_FILE:
            self.kill()
            raise WorkerLost("the worker answered a file read with something else")
        return data

    def call(self, obj: RemoteObject, name: str | None, args, kwargs, *, op: str = wire.CALL, weights=None):
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
            if kind == wire.HELLO or msg["id"] != rid:
                self.kill()
                raise WorkerLost("the worker sent a reply to another request than the one asked (a forged or"
                                 " reordered message)")
            if kind == wire.OK:
                return self._decode(msg["value"], bufs, cls)
            if kind == wire.ERR:
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
            self._send({"op": wire.CB_ERR, "id": rid, "message": f"{type(exc).__name__} in the test's function"})
            return
        enc = wire.Encoder(self._encode_other)
        header = {"op": wire.CB_OK, "id": rid, "value": enc.encode(value)}
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
        self._check_disk()
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

