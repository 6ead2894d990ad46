"""Opening files under a folder a submission could change.

Where Landlock is missing (a container, GRADER_WITHOUT=landlock), a worker can create or replace any name under
the folders of its grading: its own folder, the events file beside it, a batch sandbox. A name there may be a
symbolic link (to a file of the host, or of another submission), a FIFO (whose open blocks until someone writes)
or a device. So the judge and the trusted parent open such names through these functions only: never through a
link (O_NOFOLLOW), never waiting (O_NONBLOCK), and only when the name is a regular file. A file we create there is
made new (O_EXCL): a name the worker put first is removed, never written through.

Only the last component of a path is checked: the folders above are ours, made before any worker of the
grading ran (and removed with shutil.rmtree, which works from descriptors and follows no link)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

# Windows has none of these flags (and no FIFOs; a link there needs privileges): the S_ISREG check still holds
_NO_LINK = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class NotRegularFile(OSError):
    """A name that is a link, a FIFO, a device or a folder where a regular file was expected."""


def open_regular(path: str | Path, flags: int = os.O_RDONLY) -> int:
    """A descriptor of ``path`` opened with ``flags`` (no O_CREAT), when it is a regular file reached without
    following a link; OSError (NotRegularFile, or ELOOP for a link) otherwise."""
    try:
        fd = os.open(path, flags | _NO_LINK | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        if exc.errno == getattr(os, "ELOOP", None) or os.path.islink(path):
            raise NotRegularFile(f"{Path(path).name} is a symbolic link, not a regular file") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFile(f"{Path(path).name} is not a regular file")
    if hasattr(os, "set_blocking") and os.name == "posix":
        os.set_blocking(fd, True)  # a regular file never blocks; later reads and writes behave as usual
    return fd


def read_regular(path: str | Path, *, offset: int = 0, limit: int | None = None, tail: bool = False) -> bytes:
    """The bytes of the regular file ``path`` from ``offset`` (at most ``limit``; ``tail``: its last ``limit``)."""
    fd = open_regular(path)
    with open(fd, "rb") as f:
        if tail and limit is not None:
            offset = max(offset, os.fstat(fd).st_size - limit)
        f.seek(offset)
        return f.read() if limit is None else f.read(limit)


def create_new(path: str | Path, mode: int = 0o600) -> int:
    """A descriptor of a new, empty regular file ``path`` opened for writing. Whatever stood under the name (a
    link, a FIFO, an old file) is removed first, never followed; a folder there is an error."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_LINK | getattr(os, "O_BINARY", 0), mode)


def write_new(path: str | Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to a new regular file ``path`` (see create_new)."""
    with open(create_new(path, mode), "wb") as f:
        f.write(data)
