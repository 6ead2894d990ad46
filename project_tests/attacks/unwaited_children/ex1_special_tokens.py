"""ATTACK unwaited_children (kind: unwaited children: a child burning CPU past the limit, moved to another CPU).

What it tries: at import, fork a child the worker never waits for; the child names itself
``atk-unwaited_children``, moves itself to every CPU (off the one the batch pinned its worker to) and burns
CPU for up to 25 s, longer than a test's 10 s limit, which counts only the worker's own CPU time. It first
tries to move the worker itself to another CPU. Bounded: the child stops after 25 s whatever happens.

Why it must fail under the new design: the syscall filter refuses ``fork``/``clone`` without ``CLONE_THREAD``
and ``sched_setaffinity`` (EPERM); the import then fails with a message that carries the mark
``atk-unwaited_children: ...`` saying what was refused, and the exercise scores 0.
"""

import ctypes
import os
import time

TAG = "atk-unwaited_children"


def _burn() -> None:
    ctypes.CDLL(None).prctl(15, TAG[:15].encode(), 0, 0, 0)  # PR_SET_NAME
    try:
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    except OSError:
        pass
    end = time.monotonic() + 25  # the bound: this child never outlives 25 s
    while time.monotonic() < end:
        sum(i * i for i in range(10_000))


def _attack() -> str:
    marks = []
    try:
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
        marks.append("affinity moved")
    except OSError as exc:
        marks.append(f"affinity refused ({type(exc).__name__})")
    try:
        pid = os.fork()
    except OSError as exc:
        marks.append(f"fork refused ({type(exc).__name__})")
    else:
        if pid == 0:
            try:
                _burn()
            finally:
                os._exit(0)
        marks.append(f"child {pid} started")
    return ", ".join(marks)


raise RuntimeError(f"{TAG}: {_attack()}")
