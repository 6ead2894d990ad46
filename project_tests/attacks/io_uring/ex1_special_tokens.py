"""ATTACK io_uring (kind: io_uring: syscalls performed by the kernel around the syscall filter).

What it tries: at import, set up an io_uring (``io_uring_setup``): its requests (socket, connect, openat, ...)
are carried out by the kernel without passing through a seccomp filter, so a ring would step around the
filter that denies ``socket``.

Why it must fail under the new design: the filter refuses ``io_uring_setup``, ``io_uring_enter`` and
``io_uring_register`` (EPERM); the import fails with the mark ``atk-io_uring: ...`` and the exercise scores 0.
"""

import ctypes
import os
import platform

TAG = "atk-io_uring"
SETUP = {"x86_64": 425, "aarch64": 425}.get(platform.machine(), 425)


def _attack() -> str:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    fd = libc.syscall(ctypes.c_long(SETUP), ctypes.c_uint(4), params)
    if fd < 0:
        err = ctypes.get_errno()
        return f"io_uring_setup refused (errno {err}, {os.strerror(err)})"
    os.close(fd)
    return "io_uring_setup gave a ring"


raise RuntimeError(f"{TAG}: {_attack()}")
