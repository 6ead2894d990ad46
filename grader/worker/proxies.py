"""What a test holds of the student code: proxies for the worker's objects, and the errors a call can raise.

A :class:`RemoteObject` (a :class:`RemoteModule` for a student module) is a handle on an object that stays in the
worker; reading an attribute or calling it is a request of the :class:`grader.worker.client.WorkerClient` it came
from. An exception of the student code comes back as a :class:`StudentError` that is also its nearest built-in
class (:func:`student_error`); a worker that is gone or stopped at a limit is a :class:`WorkerLost`; a module that
cannot be imported is an :class:`ImportFailure` with the message the student sees (:func:`describe_import_error`).
Nothing here talks to a process: these are the shapes a test and the judge's plugin see.
"""

from __future__ import annotations

import builtins
import weakref
from dataclasses import dataclass
from typing import Protocol

from grader import limits as caps
from grader.worker import wire

MAX_OUTPUT_CHARS = caps.OUTPUT_CHARS  # printed output kept per test; also the longest student message a test sees


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


_ERROR_CLASSES: dict[tuple[str, str], type] = {}


def _student_class(base: type, name: str) -> type:
    """A class that is a StudentError and a ``base``, named ``name`` (the class the student raised), so that a
    test's ``type(exc).__name__`` names what the student wrote (``TypeError``), never a class of ours (built once
    per name and built-in class)."""
    cls = _ERROR_CLASSES.get((name, base.__name__))
    if cls is None:
        cls = _ERROR_CLASSES[(name, base.__name__)] = type(name, (StudentError, base), {"__qualname__": name})
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
    student_type = str(header.get("type", base_name))[:100]
    student_type = student_type if student_type.isidentifier() else base_name  # a class's __name__ can be anything
    exc = None
    if base_name == "SystemExit":
        exc = StudentExit(message)
    elif isinstance(base, type) and issubclass(base, Exception) and base is not Exception:
        for ancestor in base.__mro__:  # the nearest built-in class that can be made with a message alone
            if ancestor is Exception:
                break
            try:
                exc = _instance(_student_class(ancestor, student_type), message)
            except TypeError:  # a class no Python class can derive from together with StudentError
                exc = None
            if exc is not None:
                break
    if exc is None:
        exc = _student_class(Exception, student_type)(message)
    exc.student_type = student_type
    frames = header.get("frames")
    exc.frames = [
        [str(f[0])[:100], f[1] if type(f[1]) is int else 0, str(f[2])[:100], str(f[3])[:200]]
        for f in (frames if type(frames) is list else [])[:20]
        if type(f) is list and len(f) == 4
    ]
    exc.lineno = header.get("lineno") if type(header.get("lineno")) is int else None
    exc.exit_code = str(header.get("exit_code", ""))[:100]
    return exc


class Client(Protocol):
    """What a proxy needs of grader.worker.client.WorkerClient (named here, not imported: the client imports
    this module, and an import back would be a cycle)."""

    generation: int

    def request(self, header: dict, owner, *, buffers=(), cls=...): ...
    def call(self, obj, name, args, kwargs, *, op: str = ..., weights=None): ...
    def forget(self, generation: int, hid: int) -> None: ...


# ----------------------------------------------------------------------------------------------------------
# proxies
# ----------------------------------------------------------------------------------------------------------


class RemoteObject:
    """An object that lives in the worker. Attribute reads and calls are requests; nothing else is."""

    __slots__ = ("_client", "_id", "_generation", "_methods", "__weakref__")

    def __init__(self, client: Client, hid: int, methods: list[str]) -> None:
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
        return self._client.request({"op": wire.GETATTR, "h": self._id, "name": name}, self)

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

    def observe(self, *args, **kwargs) -> "Observation":
        """Call it, and see what the worker saw: the arguments after the call, the lesson modules built and the
        grad modes of the module forwards during it (one round trip, like a call). See :class:`Observation`."""
        reply = self.owner._client.call(self.owner, self.name, args, kwargs, op=wire.OBSERVE)
        return Observation.of(reply)

    def backward(self, args, weights, **kwargs):
        """Gradients of sum(output_i * weights_i) with respect to the tensor ``args``, computed where the
        function runs (an autograd graph cannot cross processes, its gradients can)."""
        return self.owner._client.call(self.owner, self.name, args, kwargs, op=wire.BACKWARD, weights=weights)

    def __repr__(self) -> str:
        return f"<function {self.name} of the student code>"


@dataclass(frozen=True)
class Observation:
    """An observed call: its value, and what the worker saw during it.

    ``args``/``kwargs`` are the arguments as they were after the call (the worker's copies, read back: a list the
    student code appended to shows it); ``built`` counts the lesson modules built during the call by class name
    (``{"TransformerBlock": 1}``); ``grad`` lists the grad modes the module forwards ran in (``[False]`` under
    ``torch.no_grad()``). All of it is seen inside the worker, where the student code runs and could change it:
    a test may use it to take points from a mistake, never to award them (its points come from the value)."""

    value: object
    args: list
    kwargs: dict
    built: dict
    grad: list

    @classmethod
    def of(cls, reply) -> "Observation":
        fields = ("value", "args", "kwargs", "built", "grad")
        if type(reply) is not dict or set(reply) != set(fields):
            raise WorkerLost("the worker answered an observed call with something else")
        built, grad = reply["built"], reply["grad"]
        if (type(reply["args"]) is not list or type(reply["kwargs"]) is not dict or type(built) is not dict
                or any(type(k) is not str or type(n) is not int for k, n in built.items())
                or type(grad) is not list or any(type(g) is not bool for g in grad)):
            raise WorkerLost("the worker answered an observed call with a malformed observation")
        return cls(*(reply[name] for name in fields))


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
