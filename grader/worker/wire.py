"""The wire between the judge and the worker: plain data only, framed over a socket.

A message is one JSON header plus raw byte buffers (tensor data, ``bytes`` values)::

    [u32 header length][u32 buffer count][header][u64 length, bytes] * buffer count

Values are JSON scalars (None, bool, int, float, str) or lists whose first item is a tag:

    ["L", *items] list          ["T", *items] tuple        ["D", k1, v1, k2, v2, ...] dict
    ["S", *items] set           ["F", *items] frozenset    ["B", i] bytes (buffer i)
    ["X", dtype, shape, i, device] dense tensor (buffer i; device "meta" has no buffer)
    ["N", dtype, shape, i] numpy array     ["Y", dtype] torch dtype     ["P", str] pathlib.Path
    ["H", id, [method names]] an object that stays in the worker (a handle)
    ["C", id] a callable that stays in the judge (a callback)
    ["R", kind, value] an object of the given lesson code, rebuilt by trusted code (grader.worker.rebuild);
                       also a one-shot iterable a test hands over ("OneShot": a generator over the items)

Decoding a worker's message never builds anything else: no pickle, no class of the student's. A tensor is
built by ``torch.frombuffer`` from its dtype, shape and bytes, so it is always a plain ``torch.Tensor``.

The operations, who sends each and the fields it carries are in one table, :data:`OPS`. Every message but
``hello`` carries the ``id`` of the judge's request it belongs to: a reply (or a call back) whose id is not the
request the judge waits for is forged or out of order, and the judge stops that worker (the submission's doing)
rather than take it as the answer to anything. A header is measured before it is decoded (its size, how deep its
brackets nest, how many items it can hold), so a forged header costs the judge a scan, never a blown-up parse.
"""

from __future__ import annotations

import json
import math
import re
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np
import torch

MAX_MESSAGE = 256 * 2**20  # bytes: a reply larger than this is refused (a memory bomb aimed at the judge)
MAX_DEPTH = 64  # nesting of lists/dicts in one value
MAX_ITEMS = 2_000_000  # scalars and containers in one message
MAX_SHARED_HASH = 8  # set items or dict keys with one hash value (Decoder._spread)
MAX_HEADER = 16 * 2**20  # bytes of JSON in one header: values travel there, tensors and bytes in buffers
SMALL_HEADER = 64 * 2**10  # bytes: a header this small is decoded without measuring it first
MAX_FILE = 32 * 2**20  # bytes of a file a test reads back from the worker's folder ("get")

_HEAD = struct.Struct("<II")
_LEN = struct.Struct("<Q")

DTYPES = {
    str(dt).removeprefix("torch."): dt
    for dt in (
        torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
        torch.int8, torch.uint8, torch.bool, torch.complex64, torch.complex128,
    )
}
DTYPE_NAMES = {dt: name for name, dt in DTYPES.items()}
ITEMSIZE = {name: torch.empty((), dtype=dt).element_size() for name, dt in DTYPES.items()}
NP_DTYPES = {"float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"}


class WireError(Exception):
    """A message that is not well formed plain data (from the worker: the submission's fault)."""


# ----------------------------------------------------------------------------------------------------------
# framing
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One operation of the protocol: its name, who sends it, and the fields its header carries (name -> the
    JSON types allowed; a value encoded by Encoder is a list or a scalar, hence ``VALUE``)."""

    name: str
    sender: str  # "judge" (key "op") or "worker" (key "r")
    fields: dict
    doc: str


# The operations' names: the client and the worker build and read messages with these, never with a string of
# their own, so that the table below is the one list of what the protocol can say.
IMPORT, GETATTR, CALL, BACKWARD, PUT, GET = "import", "getattr", "call", "backward", "put", "get"  # the judge asks
OBSERVE = "observe"  # the judge asks: a call, and what the worker saw during it
CB_OK, CB_ERR = "cb_ok", "cb_err"  # the judge answers a call back
HELLO, OK, ERR, CB = "hello", "ok", "err", "cb"  # the worker's

VALUE = (type(None), bool, int, float, str, list)
_NAME = (str,)
_HID = (int,)

OPS: dict[tuple[str, str], Op] = {(op.sender, op.name): op for op in (
    # the judge asks; the worker answers each request with "ok" or "err", calling back ("cb") in between
    Op(IMPORT, "judge", {"name": _NAME}, "import the student's module NAME; the value is its handle"),
    Op(GETATTR, "judge", {"h": _HID, "name": _NAME}, "an attribute of the object behind handle H"),
    Op(CALL, "judge", {"h": _HID, "name": (str, type(None)), "args": (list,), "kwargs": (list,)},
       "call H (or its method NAME) with ARGS and KWARGS"),
    Op(OBSERVE, "judge", {"h": _HID, "name": (str, type(None)), "args": (list,), "kwargs": (list,)},
       "call H (or its method NAME) like CALL; the value is {value, args, kwargs, built, grad}: the arguments as"
       " they are after the call, the lesson modules built and the grad modes of the module forwards during it"),
    Op(BACKWARD, "judge", {"h": _HID, "name": (str, type(None)), "args": (list,), "kwargs": (list,),
                             "weights": (list,)}, "gradients of sum(output_i * weight_i) for the tensor ARGS"),
    Op(PUT, "judge", {"name": _NAME, "data": (list,)},
       "write the bytes DATA to the file NAME of the worker's folder (the worker writes, never the judge)"),
    Op(GET, "judge", {"name": _NAME},
       "the bytes of the regular file NAME of the worker's folder (no link followed, at most MAX_FILE bytes)"),
    Op(CB_OK, "judge", {"value": VALUE}, "what the test's function returned to a call back"),
    Op(CB_ERR, "judge", {"message": _NAME}, "the test's function raised: the student code gets an error"),
    Op(HELLO, "worker", {"pid": (int,), "protections": (dict,)}, "the worker is up (no id: it answers a spawn)"),
    Op(OK, "worker", {"value": VALUE}, "the request's value"),
    Op(ERR, "worker", {"type": _NAME, "base": _NAME, "message": _NAME, "frames": (list,)},
       "the request raised (the nearest built-in class, the student's frames)"),
    Op(CB, "worker", {"cb": (int,), "args": (list,), "kwargs": (list,), "grad": (bool,)},
       "call the test's function number CB (a callable the test handed over)"),
)}
OPTIONAL = {"release": (list,), "seed": (int,), "id": (int,), "exit_code": (str,), "lineno": (int, type(None))}


def check(header: object, sender: str) -> Op:
    """The operation of a decoded header from ``sender``, once its fields have the types the table says."""
    if type(header) is not dict:
        raise WireError("a message that is not a dict")
    op = OPS.get((sender, header.get("op" if sender == "judge" else "r")))
    if op is None:
        raise WireError("an operation that is not part of the protocol")
    if op.name != HELLO and type(header.get("id")) is not int:
        raise WireError(f"a {op.name!r} message without a request id")
    for name, types in op.fields.items():
        if type(header.get(name)) not in types:
            raise WireError(f"a {op.name!r} message whose {name!r} is missing or malformed")
    for name, value in header.items():
        if name in OPTIONAL and type(value) not in OPTIONAL[name]:
            raise WireError(f"a {op.name!r} message whose {name!r} is malformed")
    return op


# ----------------------------------------------------------------------------------------------------------
# framing
# ----------------------------------------------------------------------------------------------------------


def send(sock: socket.socket, header: object, buffers: list[bytes | memoryview] = ()) -> None:
    head = json.dumps(header, separators=(",", ":")).encode()
    parts = [_HEAD.pack(len(head), len(buffers)), head]
    for buf in buffers:
        parts += [_LEN.pack(len(buf)), buf]
    sock.sendall(b"".join(parts))


def _recv_exact(sock: socket.socket, n: int, deadline: float | None = None) -> bytearray:
    out = bytearray(n)
    view = memoryview(out)
    got = 0
    while got < n:
        if deadline is not None:  # one deadline for the whole message: a byte at a time cannot stretch it
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the message did not arrive whole in time")
            sock.settimeout(left)
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError("the other side closed the connection")
        got += k
    return out


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def measure(head: bytes | bytearray) -> tuple[int, int]:
    """(items, depth) a JSON header can hold at most, found without decoding it: strings are cut out, then every
    comma separates two items and the brackets left say how deep it nests."""
    bare = _STRING.sub(b'""', bytes(head))
    items = bare.count(b",") + 1
    codes = np.frombuffer(bare, dtype=np.uint8)
    steps = (codes == ord("[")).astype(np.int32) + (codes == ord("{"))
    steps -= (codes == ord("]")).astype(np.int32) + (codes == ord("}"))
    depth = int(np.cumsum(steps).max()) if len(steps) else 0
    return items, depth


def recv(sock: socket.socket, limit: int = MAX_MESSAGE, *, deadline: float | None = None
         ) -> tuple[object, list[bytearray]]:
    """One message: (decoded JSON header, buffers). Raises EOFError when the peer is gone, WireError for a message
    too large or nested too deep (checked before decoding), TimeoutError past ``deadline`` (time.monotonic())."""
    head_len, count = _HEAD.unpack(_recv_exact(sock, _HEAD.size, deadline))
    if head_len > min(limit, MAX_HEADER) or count > MAX_ITEMS:
        raise WireError(f"message too large ({head_len} bytes of header, {count} buffers)")
    total = head_len
    head = _recv_exact(sock, head_len, deadline)
    # a small header cannot hold many items, and json's own recursion limit stops a deep one: only a large one is
    # measured (a call's header is a few hundred bytes, and measuring costs microseconds it need not pay)
    items, depth = measure(head) if head_len > SMALL_HEADER else (0, 0)
    if items > MAX_ITEMS or depth > MAX_DEPTH + 8:
        raise WireError(f"message header too large to decode ({items} items, nested {depth} deep)")
    try:
        header = json.loads(head)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"malformed message header ({type(exc).__name__})") from None
    buffers = []
    for _ in range(count):
        (n,) = _LEN.unpack(_recv_exact(sock, _LEN.size, deadline))
        total += n
        if total > limit:
            raise WireError(f"message larger than {limit // 2**20} MiB")
        buffers.append(_recv_exact(sock, n, deadline))
    return header, buffers


# ----------------------------------------------------------------------------------------------------------
# encoding: both sides (each side passes its own hooks for what is not plain data)
# ----------------------------------------------------------------------------------------------------------


class Encoder:
    """Turns a value into a JSON-able tree plus buffers. ``other(obj)`` encodes what is not plain data
    (a handle, a callback, a rebuildable object) or raises TypeError."""

    def __init__(self, other=None) -> None:
        self.buffers: list[bytes | memoryview] = []
        self.other = other

    def buffer(self, data) -> int:
        self.buffers.append(data)
        return len(self.buffers) - 1

    def encode(self, obj, depth: int = 0):
        t = type(obj)
        if obj is None or t is bool or t is str:
            return obj
        if t is int:
            return obj
        if t is float:
            return obj
        if depth > MAX_DEPTH:
            raise WireError(f"value nested deeper than {MAX_DEPTH} levels")
        d = depth + 1
        if t is list:
            return ["L", *[self.encode(x, d) for x in obj]]
        if t is tuple:
            return ["T", *[self.encode(x, d) for x in obj]]
        if t is dict:
            out = ["D"]
            for k, v in obj.items():
                out.append(self.encode(k, d))
                out.append(self.encode(v, d))
            return out
        if t is bytes or t is bytearray:
            return ["B", self.buffer(bytes(obj))]
        if isinstance(obj, torch.Tensor) and t in (torch.Tensor, torch.nn.Parameter):
            return self.tensor(obj)
        if isinstance(obj, torch.dtype):
            return ["Y", str(obj).removeprefix("torch.")]
        if isinstance(obj, PurePath):
            return ["P", str(obj)]
        if t is set:
            return ["S", *[self.encode(x, d) for x in obj]]
        if t is frozenset:
            return ["F", *[self.encode(x, d) for x in obj]]
        if self.other is not None:
            return self.other(self, obj, d)
        raise TypeError(f"cannot send a {t.__name__} to the other process")

    def tensor(self, obj: torch.Tensor):
        dtype = DTYPE_NAMES.get(obj.dtype)
        if dtype is None:
            raise TypeError(f"tensors of dtype {obj.dtype} are not supported")
        if obj.layout != torch.strided:
            obj = obj.to_dense()
        shape = list(obj.shape)
        if obj.device.type == "meta":
            return ["X", dtype, shape, -1, "meta"]
        # few torch calls: each costs microseconds, and a test sends thousands of small tensors
        data = obj.detach()
        if data.device.type != "cpu":
            data = data.cpu()
        if not data.is_contiguous():
            data = data.contiguous()
        if data.dtype == torch.bfloat16:  # numpy has no bfloat16: send the same bits as int16
            data = data.view(torch.int16)
        return ["X", dtype, shape, self.buffer(data.numpy().tobytes()), "cpu"]


class Decoder:
    """Strict inverse of Encoder. ``other(tag, item)`` builds handles, callbacks and rebuildable objects."""

    def __init__(self, buffers: list[bytearray], other=None) -> None:
        self.buffers = buffers
        self.other = other
        self.count = 0
        self.used: set[int] = set()  # buffers already decoded: the encoder makes one per value

    @staticmethod
    def _spread(items: list, what: str) -> None:
        """Refuse set items or dict keys that share their hashes beyond what honest data does (``-1`` and ``-2``
        share one): Python builds such a set in quadratic time, and every multiple of 2**61 - 1 hashes alike, so
        80,000 crafted ints cost the judge 69 s of CPU that no limit of the student's counted."""
        counts: dict[int, int] = {}
        for item in items:
            h = hash(item)  # TypeError (unhashable) is the caller's to report
            counts[h] = counts.get(h, 0) + 1
            if counts[h] > MAX_SHARED_HASH:
                raise WireError(f"{what} that share their hashes (a value built to slow the judge down)")

    def decode(self, x, depth: int = 0):
        t = type(x)
        if x is None or t is bool or t is int or t is float or t is str:
            return x
        self.count += 1
        if self.count > MAX_ITEMS or depth > MAX_DEPTH + 2:
            raise WireError("value too large or too deeply nested")
        if t is not list or not x or type(x[0]) is not str:
            raise WireError("malformed value")
        tag, d = x[0], depth + 1
        if tag == "L":
            return [self.decode(v, d) for v in x[1:]]
        if tag == "T":
            return tuple(self.decode(v, d) for v in x[1:])
        if tag == "D":
            if len(x) % 2 != 1:
                raise WireError("malformed dict")
            keys = [self.decode(k, d) for k in x[1::2]]
            values = [self.decode(v, d) for v in x[2::2]]
            try:
                self._spread(keys, "dict keys")
                return dict(zip(keys, values))
            except TypeError:
                raise WireError("unhashable dict key") from None
        if tag in ("S", "F"):
            try:
                items = [self.decode(v, d) for v in x[1:]]
                self._spread(items, "set items")
                return set(items) if tag == "S" else frozenset(items)
            except TypeError:
                raise WireError("unhashable set item") from None
        if tag == "B":
            return bytes(self._buffer(x, 1))
        if tag == "X":
            return self.tensor(x)
        if tag == "N":
            return self.ndarray(x)
        if tag == "Y" and len(x) == 2 and x[1] in DTYPES:
            return DTYPES[x[1]]
        if tag == "P" and len(x) == 2 and type(x[1]) is str:
            return Path(x[1])
        if self.other is not None:
            return self.other(self, tag, x, d)
        raise WireError(f"unknown value tag {tag!r}")

    def _buffer(self, x, at: int) -> bytearray:
        i = x[at] if len(x) > at else None
        if type(i) is not int or not 0 <= i < len(self.buffers):
            raise WireError("bad buffer reference")
        if i in self.used:  # one buffer named a million times would be copied a million times
            raise WireError("a buffer referenced twice")
        self.used.add(i)
        return self.buffers[i]

    @staticmethod
    def _shape(shape) -> list[int]:
        if type(shape) is not list or len(shape) > 16 or any(type(n) is not int or n < 0 for n in shape):
            raise WireError("bad tensor shape")
        return shape

    def tensor(self, x) -> torch.Tensor:
        if len(x) != 5 or x[1] not in DTYPES or x[4] not in ("cpu", "meta"):
            raise WireError("malformed tensor")
        dtype, shape = DTYPES[x[1]], self._shape(x[2])
        if x[4] == "meta":
            return torch.empty(shape, dtype=dtype, device="meta")
        raw = self._buffer(x, 3)
        count = math.prod(shape)
        if len(raw) != count * ITEMSIZE[x[1]]:
            raise WireError(f"tensor data of {len(raw)} bytes for shape {shape} and dtype {x[1]}")
        if count == 0:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(raw, dtype=dtype).reshape(shape)

    def ndarray(self, x) -> np.ndarray:
        if len(x) != 4 or x[1] not in NP_DTYPES:
            raise WireError("malformed array")
        shape, raw = self._shape(x[2]), self._buffer(x, 3)
        if len(raw) != math.prod(shape) * np.dtype(x[1]).itemsize:
            raise WireError("array data does not match its shape")
        return np.frombuffer(bytes(raw), dtype=x[1]).reshape(shape).copy()


def encode_ndarray(enc: Encoder, obj: np.ndarray):
    if obj.dtype.name not in NP_DTYPES:
        raise TypeError(f"numpy arrays of dtype {obj.dtype} are not supported")
    return ["N", obj.dtype.name, list(obj.shape), enc.buffer(np.ascontiguousarray(obj).tobytes())]
