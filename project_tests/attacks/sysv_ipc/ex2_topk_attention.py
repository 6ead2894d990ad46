"""ATTACK sysv_ipc (kind: System V IPC: shared memory that outlives the worker and is reached by a number).

What it tries: at import, look for a System V shared-memory segment under a fixed key (one that an earlier
grading, or another submission graded beside it, would have left there holding what its worker saw: hidden
inputs), read it if there is one, else make one. Such a segment is a kernel object reached by its key, not by a
path, so Landlock does not see it; it outlives the process, and its memory is outside the worker's RLIMIT_AS.
The segment it makes is removed again at once (the attack is bounded: a failed defence leaves nothing behind).

Why it must fail under the new design: the worker has an IPC namespace of its own (it sees no segment of the
host's or of another grading's), and the syscall filter refuses shmget, shmat and the rest of System V IPC and
POSIX message queues; the import fails with the mark ``atk-sysv_ipc: shmget refused (PermissionError)`` and the
exercise scores 0.
"""

import ctypes
import errno

TAG = "atk-sysv_ipc"
KEY = 0x41544B32
IPC_CREAT, IPC_RMID = 0o1000, 0
SIZE = 4096


def _refused(what: str) -> str:
    err = ctypes.get_errno()
    return f"{what} refused ({type(OSError(err, '')).__name__})"


def _attack() -> str:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
    libc.shmdt.argtypes = (ctypes.c_void_p,)
    old = libc.shmget(KEY, 0, 0)
    if old < 0 and ctypes.get_errno() != errno.ENOENT:
        return _refused("shmget")
    if old >= 0:
        address = libc.shmat(old, None, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            return "found a segment left by another, " + _refused("shmat")
        text = ctypes.string_at(address, 64).split(b"\0")[0].decode(errors="replace")
        libc.shmdt(ctypes.c_void_p(address))
        return f"found a segment left by another ({text})"
    made = libc.shmget(KEY, SIZE, IPC_CREAT | 0o600)
    if made < 0:
        return "none left by another, " + _refused("shmget")
    libc.shmctl(made, IPC_RMID, None)  # bounded: nothing of this attack outlives it
    return "none left by another, segment made"


raise RuntimeError(f"{TAG}: {_attack()}")
