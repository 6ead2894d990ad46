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
    ["R", kind, value] an object of the given lesson code, rebuilt by trusted code (grader.judge.rebuild)

Decoding a worker's message never builds anything else: no pickle, no class of the student's. A tensor is
built by ``torch.frombuffer`` from its dtype, shape and bytes, so it is always a plain ``torch.Tensor``.
"""

from __future__ import annotations

import json
import math
import socket
import struct
from pathlib import Path, PurePath

import numpy as np
import torch

MAX_MESSAGE = 256 * 2**20  # bytes: a reply larger than this is refused (a memory bomb aimed at the judge)
MAX_DEPTH = 64  # nesting of lists/dicts in one value
MAX_ITEMS = 2_000_000  # scalars and containers in one message

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


def send(sock: socket.socket, header: object, buffers: list[bytes | memoryview] = ()) -> None:
    head = json.dumps(header, separators=(",", ":")).encode()
    parts = [_HEAD.pack(len(head), len(buffers)), head]
    for buf in buffers:
        parts += [_LEN.pack(len(buf)), buf]
    sock.sendall(b"".join(parts))


def _recv_exact(sock: socket.socket, n: int) -> bytearray:
    out = bytearray(n)
    view = memoryview(out)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError("the other side closed the connection")
        got += k
    return out


def recv(sock: socket.socket, limit: int = MAX_MESSAGE) -> tuple[object, list[bytearray]]:
    """One message: (decoded JSON header, buffers). Raises EOFError when the peer is gone."""
    head_len, count = _HEAD.unpack(_recv_exact(sock, _HEAD.size))
    if head_len > limit or count > MAX_ITEMS:
        raise WireError(f"message too large ({head_len} bytes of header, {count} buffers)")
    total = head_len
    try:
        header = json.loads(_recv_exact(sock, head_len))
    except (ValueError, RecursionError) as exc:
        raise WireError(f"malformed message header ({type(exc).__name__})") from None
    buffers = []
    for _ in range(count):
        (n,) = _LEN.unpack(_recv_exact(sock, _LEN.size))
        total += n
        if total > limit:
            raise WireError(f"message larger than {limit // 2**20} MiB")
        buffers.append(_recv_exact(sock, n))
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
                return dict(zip(keys, values))
            except TypeError:
                raise WireError("unhashable dict key") from None
        if tag in ("S", "F"):
            try:
                items = [self.decode(v, d) for v in x[1:]]
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
