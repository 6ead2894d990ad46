"""ATTACK fork_bomb (kind: fork bomb: processes that multiply until the machine stops).

What it tries: at import, fork as many processes as it can, each forking again; every process names itself
``atk-fork_bomb`` and sleeps. Bounded, so that a failed defence cannot take the machine down: at most 64
processes in all (a counter the children inherit halves at each level), each sleeping at most 20 s. Root
ignores RLIMIT_NPROC, so no rlimit stops a real one.

Why it must fail under the new design: the syscall filter refuses ``fork``, ``vfork``, ``clone`` without
``CLONE_THREAD`` and answers ``clone3`` with ENOSYS; the first fork fails, the import fails with the mark
``atk-fork_bomb: ...`` and the exercise scores 0.
"""

import ctypes
import os
import time

TAG = "atk-fork_bomb"


def _bomb(budget: int) -> int:
    started = 0
    while budget > 1:
        budget //= 2
        pid = os.fork()  # raises where forking is refused
        if pid == 0:
            try:
                ctypes.CDLL(None).prctl(15, TAG.encode(), 0, 0, 0)
                _bomb(budget)
                time.sleep(20)  # the bound: gone after 20 s
            finally:
                os._exit(0)
        started += 1
    return started


def _attack() -> str:
    try:
        return f"{_bomb(64)} processes started"
    except OSError as exc:
        return f"fork refused ({type(exc).__name__})"


raise RuntimeError(f"{TAG}: {_attack()}")
