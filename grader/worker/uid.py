"""An unprivileged uid for the worker, where nothing else confines it.

Where Landlock or namespaces are missing and the grader runs as root (a container, Gradescope), student code
would run as root beside the hidden tests. The worker then drops to a uid of its own, one per judge (so two
submissions graded side by side cannot signal or read each other), far above any uid a system hands out.
Such a uid owns nothing: the file modes decide, so the trusted parent seals what it must not read (``seal``).

The judge (trusted, as root) decides (``needs_uid_drop``, ``worker_uid``), seals what the uid must not read
(``seal``), opens the way to what it must (``open_ways``/``close_ways``, ``share_read_only``/``unshare``,
``grant_default``); the worker then drops to it for good (``drop_uid``, in grader.worker.zygote). Plain ``os``
calls only: no Landlock, no namespaces (those are grader.worker.confine).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import struct
from pathlib import Path


class ConfinementError(OSError):
    """A protection could not be put in place: ``confine.restrict(strict=True)`` could not put every protection
    the kernel offers in place, or ``drop_uid`` did not leave the process with the unprivileged uid."""


UID_BASE = 0x5EC00000


def needs_uid_drop(here) -> bool:
    """Whether workers drop to their own uid: the grader runs as root and Landlock or namespaces are missing
    (``here`` is ``grader.facilities.present()``)."""
    return here.setuid and here.root and not (here.landlock and here.namespaces)


def worker_uid(judge_pid: int) -> int:
    return UID_BASE + judge_pid


def seal(paths) -> list[str]:
    """Make ``paths`` (hidden tests, solutions, OUT, the grader's key) unreadable to every uid but their owner:
    group and others lose every right (a folder keeps nothing to list or to cross). Missing paths are skipped;
    a link is never followed. Returns the paths sealed. Called by the trusted parent when grading starts."""
    done = []
    for path in paths:
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISLNK(info.st_mode):
            continue
        os.chmod(path, stat.S_IMODE(info.st_mode) & 0o700)
        done.append(str(path))
    return done


# The search bits ``open_ways`` adds are recorded in one root-only file, with the pids of the grader processes
# that need them: the last one to leave (``close_ways``) puts every mode back. A holder that died without
# leaving is dropped by the next one that opens or closes, so a crash leaves the bits only until the next
# grading ends. /run is root's (a worker's uid cannot plant or change the record there).
WAYS_RECORD = "/run/grader-open-ways.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _ways_record(path: str | None = None):
    """The record of opened ways, locked for the ``with`` block and written back after it (dead holders
    dropped). Where it cannot be opened, a record that is kept nowhere: the ways then stay open."""
    try:
        fd = os.open(path or WAYS_RECORD, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        yield {"holders": [], "modes": {}}
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            raw = json.loads(os.pread(fd, 1 << 20, 0) or b"{}")
        except ValueError:
            raw = {}
        record = {"holders": [p for p in raw.get("holders", []) if type(p) is int and _alive(p)],
                  "modes": {str(k): v for k, v in raw.get("modes", {}).items() if type(v) is int}}
        yield record
        data = json.dumps(record).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)


def open_ways(folders, *, record: str | None = None) -> list[str]:
    """Let any uid cross every ancestor of each of ``folders`` (the search bit for others, never the read bit:
    nothing can be listed), and note each mode changed so that ``close_ways`` can put it back. Run by the
    trusted judge, as root, before it starts a worker that drops to its own uid: the Python installation may
    live where others cannot pass (``/root/.pyenv``: ``/root`` becomes 0701 while grading), and a sealed OUT
    becomes 0711, through which only a path already known leads. Returns the paths changed now."""
    changed = []
    with _ways_record(record) as ways:
        for folder in folders:
            for ancestor in reversed(Path(os.path.realpath(folder)).parents):
                info = os.lstat(ancestor)
                if not info.st_mode & stat.S_IXOTH:
                    os.chmod(ancestor, stat.S_IMODE(info.st_mode) | stat.S_IXOTH)
                    ways["modes"].setdefault(str(ancestor), stat.S_IMODE(info.st_mode))
                    changed.append(str(ancestor))
        ways["holders"].append(os.getpid())  # once per client: a judge may hold several (warm-up, grading)
    return changed


def close_ways(*, record: str | None = None) -> list[str]:
    """This process no longer needs the ways ``open_ways`` opened; the last holder alive puts back every mode
    that is still the one ``open_ways`` set (a mode someone changed since is left alone). Returns the paths
    restored."""
    restored = []
    with _ways_record(record) as ways:
        if os.getpid() in ways["holders"]:
            ways["holders"].remove(os.getpid())  # this client's hold only
        if ways["holders"]:
            return restored
        for path, mode in ways["modes"].items():
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == mode | stat.S_IXOTH:
                os.chmod(path, mode)
                restored.append(path)
        ways["modes"] = {}
    return restored


def share_read_only(folder, gid: int) -> list[tuple[str, int, int]]:
    """``folder`` and the files in it: the owner's, readable (not writable) by group ``gid`` alone. The worker
    of another judge has another gid, so it cannot read this submission; a link is left as it is. Run by the
    judge, as root. Returns what it changed, as (path, gid, mode) before, for ``unshare``: the folder may be
    the user's own (``grade --target exercises``)."""
    folder = Path(os.path.realpath(folder))
    before = []
    for entry in [folder, *(folder / name for name in os.listdir(folder))]:
        info = os.lstat(entry)
        if stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode):
            before.append((str(entry), info.st_gid, stat.S_IMODE(info.st_mode)))
            os.chown(entry, info.st_uid, gid, follow_symlinks=False)
            os.chmod(entry, 0o750 if stat.S_ISDIR(info.st_mode) else 0o640)
    return before


def unshare(before: list[tuple[str, int, int]], gid: int) -> None:
    """Put back the group and mode ``share_read_only`` changed, where the entry is still shared with ``gid``."""
    for path, old_gid, mode in before:
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if info.st_gid == gid and (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
            os.chown(path, info.st_uid, old_gid, follow_symlinks=False)
            os.chmod(path, mode)


SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # where any uid may create names (sticky, world-writable)


def _owned_in_shared(worker: int, folders=None) -> list:
    """(path, lstat) of each name ``worker`` owns at the top of the folders every uid may write to
    (``SHARED_WRITABLE`` and this process's temporary folder, or ``folders``)."""
    import tempfile

    return [(path, info) for folder in dict.fromkeys(folders or (*SHARED_WRITABLE, tempfile.gettempdir()))
            for path, info in _entries(folder) if info.st_uid == worker]


def _entries(folder: str) -> list:
    """(path, lstat) of each name in ``folder``; a name gone meanwhile, or a folder that cannot be read, is skipped."""
    try:
        listing = os.scandir(folder)
    except OSError:
        return []
    found = []
    with listing:
        for entry in listing:
            try:
                found.append((entry.path, entry.stat(follow_symlinks=False)))
            except OSError:
                continue
    return found


def sweep(worker: int, folders=None) -> list[str]:
    """Remove what ``worker`` (a worker's uid, its processes all gone) left in the folders every uid may write
    to (``SHARED_WRITABLE`` and this process's temporary folder): a file, a link or a folder tree it owns. A
    name another uid owns is left alone; links are removed, never followed. Returns the paths removed."""
    import shutil

    removed = []
    for path, info in _owned_in_shared(worker, folders):
        try:
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(path)  # removes links inside, never what they point to
            else:
                os.unlink(path)
        except OSError:
            continue
        removed.append(path)
    return removed


DISK_ENTRIES = 10_000  # names the watch looks at: a worker that makes more files than this is over any cap


def disk_usage(worker: int, folder, pid: int | None, *, folders=None, entries: int = DISK_ENTRIES) -> int | None:
    """Bytes on disk of what ``worker`` (a worker's uid) has written, while it runs: everything under ``folder``
    (its judge's folder: the current worker's and the earlier ones'), the names and trees it owns in the folders
    every uid may write to (as ``sweep`` finds them; links are never followed) and the files its process ``pid``
    keeps with no name left, open or mapped (/proc/<pid>/fd, /proc/<pid>/maps). Blocks (``st_blocks``), not
    lengths, folders' own included: a file with holes counts what it takes, a folder of a million names too.
    None when more than ``entries`` names are the worker's or under ``folder``: that many is over any cap.

    The judge's watch on the total a worker writes where no tmpfs caps it (its own uid, no mount namespace:
    grader.worker.process). Called between two looks at the worker's CPU time (every 0.1 s), so what it lets
    through is what the worker writes in that time (``fallocate`` is refused: grader.worker.seccomp); RLIMIT_FSIZE
    still caps each file. Root-owned files that anyone may write are not the worker's and are not counted."""
    pending = _owned_in_shared(worker, folders) + _entries(str(folder))
    total = 0
    seen = len(pending)
    while pending:
        if seen > entries:
            return None
        path, info = pending.pop()
        total += info.st_blocks * 512
        if stat.S_ISDIR(info.st_mode):
            inside = _entries(path)
            seen += len(inside)
            pending += inside
    return total + _kept_without_a_name(pid)


def _kept_without_a_name(pid: int | None) -> int:
    """Blocks of the regular files ``pid`` holds open or mapped with no name left (``st_nlink`` 0): written, then
    unlinked. Each file once, however many descriptors and mappings hold it."""
    if not pid:
        return 0
    paths = []
    try:
        paths += [f"/proc/{pid}/fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd")]
        with open(f"/proc/{pid}/maps") as maps:  # a mapping keeps a file after its descriptor is closed
            paths += [f"/proc/{pid}/map_files/{line.split(None, 1)[0]}" for line in maps
                      if line.rstrip().endswith("(deleted)")]
    except OSError:
        pass
    files = {}
    for path in paths:
        try:
            info = os.stat(path)  # the file itself, named or not (stat opens nothing)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_nlink == 0:
            files[info.st_dev, info.st_ino] = info.st_blocks * 512
    return sum(files.values())


# linux/posix_acl_xattr.h: a default ACL, as the kernel reads it from the system.posix_acl_default attribute
_ACL_VERSION, _ACL_UNDEFINED = 2, 0xFFFFFFFF
_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_MASK, _ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20


def grant_default(folder, uid: int) -> bool:
    """Give ``folder`` a default ACL under which every file created in it later is readable and writable by
    ``uid`` whatever the creator's umask (root's is 077 in a batch, as OUT is sealed): whatever is made in the
    worker's folder before the drop must stay the worker's to read and write. Group and others get nothing. False where the file system has no POSIX ACLs (those files then follow the umask)."""
    entries = [(_ACL_USER_OBJ, 7, _ACL_UNDEFINED), (_ACL_USER, 7, uid), (_ACL_GROUP_OBJ, 0, _ACL_UNDEFINED),
               (_ACL_MASK, 7, _ACL_UNDEFINED), (_ACL_OTHER, 0, _ACL_UNDEFINED)]  # sorted by tag, as required
    data = struct.pack("<I", _ACL_VERSION) + b"".join(struct.pack("<HHI", *e) for e in entries)
    try:
        os.setxattr(folder, "system.posix_acl_default", data, follow_symlinks=False)
    except OSError:
        return False
    return True


def drop_uid(uid: int) -> None:
    """Become ``uid`` (and gid ``uid``, no supplementary groups) for good: real, effective and saved ids."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise ConfinementError("drop_uid: still not the unprivileged uid")
