"""ATTACK unix_socket (kind: unix-socket exfiltration: connect() to a socket file outside the sandbox).

What it tries: at import, find unix socket files (``/tmp/atk-unix_socket*.sock``, where a test plants a
listener, and any ``*.sock`` in /tmp and /run) and send each one a line through ``connect()`` by path: Landlock
ABI 7 does not cover connecting to a socket file, and a network namespace does not cover unix sockets. A
listener outside would receive what the worker knows (here a fixed line; in a real attack, hidden inputs).

Why it must fail under the new design: the syscall filter refuses ``socket`` and ``socketpair`` of every
family (the worker's socket to the judge was made before it); the import fails with the mark
``atk-unix_socket: ...`` and the exercise scores 0.
"""

import glob
import socket

TAG = "atk-unix_socket"


def _attack() -> str:
    paths = sorted(set(glob.glob("/tmp/atk-unix_socket*.sock") + glob.glob("/tmp/*.sock") + glob.glob("/run/*.sock")))
    try:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError as exc:
        return f"socket refused ({type(exc).__name__})"
    probe.close()
    sent = 0
    for path in paths[:20]:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1)
                s.connect(path)
                s.sendall(f"{TAG} was here\n".encode())
                sent += 1
        except OSError:
            pass
    return f"socket created, sent to {sent} of {len(paths)} socket files"


raise RuntimeError(f"{TAG}: {_attack()}")
