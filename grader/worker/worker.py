"""The worker: the only process that imports and calls student code. It returns values, never verdicts.

Process tree (each arrow a fork)::

    judge (pytest, never runs student code)
      └─ zygote: forked before any test module is imported, so no expected value is in its memory; it waits
         for "spawn" requests and forks a launcher for each
           └─ launcher: enters new user, PID, network, mount and IPC namespaces (a freshly forked process is single-
              threaded, which unshare(CLONE_NEWUSER) requires), forks the worker, waits for it, exits with it
                └─ worker: PID 1 of its namespace (when it dies the kernel kills everything it started),
                   confined by Landlock (reads only the Python installation, llm_basics and its submission
                   copy; writes only its private folder; no network, no signals outside), then serves
                   requests on its socket until the judge closes it.

Each process asks to be killed when its parent dies (PR_SET_PDEATHSIG), so nothing outlives the judge.
The zygote, the launcher and the worker's set-up are in grader.worker.zygote; this module is the worker's
request loop, where student code runs.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
import traceback
from pathlib import Path

import numpy as np
import torch

from grader.worker import rebuild, wire

from grader.limits import MESSAGE_CHARS as MAX_MESSAGE_CHARS  # the one source of the caps
MAX_FRAMES = 12


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
            "r": wire.ERR, "id": self.serving[-1], "type": type(exc).__name__[:100], "base": _builtin_base(exc),
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
            header = {"r": wire.CB, "id": self.serving[-1], "cb": cid, "args": enc.encode(list(args)),
                      "kwargs": enc.encode(kwargs), "grad": torch.is_grad_enabled()}
            wire.send(self.sock, header, enc.buffers)
            return self.wait_callback()

        call_judge.__name__ = call_judge.__qualname__ = "test_function"
        return call_judge

    def wait_callback(self):
        while True:
            msg, bufs = wire.recv(self.sock)
            op = wire.check(msg, "judge").name
            if op in (wire.CB_OK, wire.CB_ERR) and msg["id"] != self.serving[-1]:
                raise CallbackError("the answer of a call back to another request")  # cannot happen: the judge's
            if op == wire.CB_OK:
                return wire.Decoder(bufs, self._in).decode(msg["value"])
            if op == wire.CB_ERR:
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
            self.reply({"r": wire.OK}, value)
        finally:
            self.serving.pop()

    def run(self, msg: dict, bufs: list):
        op = msg["op"]
        if op == wire.IMPORT:
            return self.load(msg["name"])
        if op == wire.PUT:
            return put_file(msg["name"], wire.Decoder(bufs).decode(msg["data"]))
        if op == wire.GET:
            return get_file(msg["name"])
        obj = self.objects[msg["h"]]
        if op == wire.GETATTR:
            return getattr(obj, msg["name"])
        dec = wire.Decoder(bufs, self._in)
        args, kwargs = dec.decode(msg["args"]), dec.decode(msg["kwargs"])
        fn = obj if msg.get("name") is None else getattr(obj, msg["name"])
        if op == wire.CALL:
            return fn(*args, **kwargs)
        if op == wire.OBSERVE:
            return self.observe(fn, args, kwargs)
        if op == wire.BACKWARD:
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
    def observe(fn, args, kwargs) -> dict:
        """The value of a call, its arguments as they are after it (an argument the student code changed in
        place shows so), and what ``rebuild.watch`` saw during it (trusted glue around a student call)."""
        with rebuild.watch() as seen:
            value = fn(*args, **kwargs)
        return {"value": value, "args": args, "kwargs": kwargs, "built": dict(seen["built"]),
                "grad": list(seen["grad"])}

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


def settle_in(private: Path) -> None:
    """The worker's own folder as its working directory, its output file as stdout and stderr, its temporary files
    there, no bytecode written: the set-up every worker does before serving (forked or spawned)."""
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
