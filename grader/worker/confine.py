"""Confine the worker, the one process that runs student code: namespaces first, then Landlock.

The worker is forked from a zygote that already imported torch, so everything here goes through ctypes and
raw syscalls (no extra dependency, no ``os.unshare`` before Python 3.12). Two steps, in two processes::

    ns = confine.enter_namespaces()    # in the first forked child W (single-threaded): user + pid + net
    ... W forks again; that grandchild is PID 1 of the new PID namespace ...
    prot = confine.restrict(read=confine.default_read_paths(exclude=[REPO]) + [...], write=[workdir])

Both return plain dicts of what is active (for the results document, contract 8) and, by default, never
raise: a platform without Landlock or namespaces still grades, and the report says so.

What each layer buys:
- PID namespace: when its PID 1 exits, the kernel kills everything inside, so nothing the student started
  outlives grading (no double fork escapes it, unlike a process group).
- Network namespace: only a loopback that is down; nothing reaches the judge's or anyone's sockets.
- User namespace: makes the two above possible without root; as root, capabilities then count only inside
  it (no module loading, no host mounts). The mapping keeps the same uid/gid inside, so ownership reads the
  same; uid 0 still owns root's files, which is why Landlock, not the namespace, guards the filesystem.
- Landlock: files (read-only runtime, one writable folder, no exec), TCP bind/connect, and (ABI >= 6)
  signals and abstract unix sockets aimed outside the sandbox. File descriptors opened before
  ``restrict`` (the socket to the judge) keep working: Landlock checks rights at open time.
"""

from __future__ import annotations

import ctypes
import os
import platform
import site
import stat
import sys
from pathlib import Path

from grader.worker.uid import ConfinementError  # raised here too (Landlock, namespaces)

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
CLONE_NEWIPC = 0x08000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x8, 0x4000, 0x40000
PR_GET_DUMPABLE, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 3, 4, 38

# Landlock's syscalls came after the 5.1 unification of syscall tables: the same numbers on x86_64 and on
# the generic table (aarch64, riscv64). Elsewhere (alpha, mips) they differ: we report ABI 0 there.
_SYSCALLS = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446), "riscv64": (444, 445, 446)}
LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
LANDLOCK_RULE_PATH_BENEATH = 1

# Filesystem rights, in the order the kernel numbers them (include/uapi/linux/landlock.h).
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3 and 5
# Rights that make sense on a non-directory: a rule on a file (or device) carrying any other right is EINVAL.
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
READ_RIGHTS = READ_FILE | READ_DIR
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4: handled with no rule = denied
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6: only within the sandbox


# Every protection the worker reports, all off: what a platform without any of them gets (contract 8: the
# results document says which protections were active, so an absent one reads False, not missing).
NONE = {"user_namespace": False, "pid_namespace": False, "network_namespace": False, "mount_namespace": False,
        "landlock_abi": 0, "filesystem": False, "network": False, "signals": False, "abstract_unix_socket": False,
        "no_new_privs": False, "syscall_filter": False, "disk_cap": False, "uid": False}


class _RulesetAttr(ctypes.Structure):
    # The kernel reads the first `size` bytes we pass and refuses non-zero bytes it does not know (E2BIG):
    # we pass exactly the part this ABI understands, so an older kernel never sees a field it lacks.
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in the uapi header: 12 bytes, not 16
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


# Linux only; elsewhere (Windows has no CDLL(None)) the module still imports, for its NONE and read paths
_libc = ctypes.CDLL(None, use_errno=True) if os.name == "posix" else None
if _libc is not None:
    _libc.syscall.restype = ctypes.c_long


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise ConfinementError(err, f"{what}: {os.strerror(err)}")
    return result


def _prctl(option: int, arg: int = 0) -> int:
    return _libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0),
                       ctypes.c_ulong(0))


# ---------------------------------------------------------------------------------------------- namespaces
def enter_namespaces(*, user: bool = True) -> dict[str, bool]:
    """unshare() user, PID, network, mount and IPC namespaces; call in a freshly forked, single-threaded child.

    ``user=False`` (root only): no user namespace, so that the worker can still drop to another uid (inside a
    user namespace that maps only our own uid, there is no other uid to drop to). The mount namespace lets the
    worker mount its own size-capped folder (``private_tmpfs``) that nobody else sees.

    The calling process stays in its PID namespace: its NEXT child is PID 1 of the new one (later children
    join as 2, 3, ...). Once PID 1 exits, the kernel kills the rest and the caller's forks fail (ENOMEM).
    PID 1 ignores signals it has no handler for when they come from inside the namespace (SIGTERM, SIGINT,
    even SIGKILL): a student's ``os.kill(os.getpid(), SIGTERM)`` in PID 1 does nothing.
    """
    # Read the ids BEFORE unshare: inside an unmapped user namespace they read as the overflow id 65534.
    uid, gid = os.geteuid(), os.getegid()
    # IPC too: System V shared memory and message queues are reached by number, not path (no Landlock rule covers
    # them), and outlive the process; in a namespace of its own the worker sees none of the host's, and the
    # kernel removes its own when the namespace ends (the syscall filter also refuses them: grader.worker.seccomp)
    others = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC
    attempts = [CLONE_NEWUSER | others] if user else []
    if uid == 0:  # user namespaces may be disabled (sysctl, seccomp); root can create the others without one
        attempts.append(others)
    # unshare(CLONE_NEWUSER) is EINVAL in a multi-threaded process: hence a fresh fork of the zygote.
    flags = next((f for f in attempts if _libc.unshare(ctypes.c_int(f)) == 0), 0)
    if flags & CLONE_NEWUSER:
        _map_ids(uid, gid)
    return {"user_namespace": bool(flags & CLONE_NEWUSER), "pid_namespace": bool(flags & CLONE_NEWPID),
            "network_namespace": bool(flags & CLONE_NEWNET), "mount_namespace": bool(flags & CLONE_NEWNS)}


def private_tmpfs(folder, size_bytes: int, *, uid: int | None = None) -> bool:
    """Mount a tmpfs of ``size_bytes`` over ``folder``, in this process's own mount namespace; False if we
    cannot (no mount namespace, no privilege in it). Call in the worker before it drops privileges.

    This is what caps the TOTAL bytes the worker writes (RLIMIT_FSIZE caps one file: a loop of files at the
    limit would fill the disk under OUT): a write past the size fails with ENOSPC, and the pages are the
    worker's memory only while it lives. Files already open in ``folder`` (its output) stay on the disk below,
    under RLIMIT_FSIZE. The judge reaches the folder through ``/proc/<worker>/root``, the worker's own view.
    """
    path = os.fsencode(folder)
    # first, make every mount private to this namespace: nothing we mount may propagate back to the host
    if _libc.mount(None, b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None) != 0:
        return False
    owner = f",uid={uid},gid={uid}" if uid is not None else ""
    options = f"size={int(size_bytes)},mode=0700,nr_inodes=4096{owner}".encode()
    return _libc.mount(b"grader-worker", path, b"tmpfs", ctypes.c_ulong(MS_NOSUID | MS_NODEV | MS_NOEXEC),
                       options) == 0


def _map_ids(uid: int, gid: int) -> None:
    """Map our own uid/gid to themselves: files keep their owners, nobody gains an id it did not have."""
    # A process that changed uid (root dropping to nobody) is not dumpable, and then its /proc/self files
    # belong to root: the writes below would fail with EACCES. Dumpable for the three writes, then restore.
    dumpable = _prctl(PR_GET_DUMPABLE)
    if dumpable != 1:
        _prctl(PR_SET_DUMPABLE, 1)
    try:
        # "deny" first: an unprivileged process may write gid_map only once setgroups() is off for good
        # (else it could drop a supplementary group that a file's permissions deny it).
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            fd = os.open(f"/proc/self/{name}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, text.encode())  # one write(2): the kernel parses a map only in a single write
            finally:
                os.close(fd)
    except OSError:
        pass  # still inside the namespaces, seen as 65534: less privilege, not more
    finally:
        if dumpable != 1:
            _prctl(PR_SET_DUMPABLE, max(dumpable, 0))


# ------------------------------------------------------------------------------------------------ Landlock
def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is missing, disabled at boot or on an unknown arch."""
    numbers = _SYSCALLS.get(platform.machine())
    if numbers is None:
        return 0
    return max(0, _libc.syscall(ctypes.c_long(numbers[0]), None, ctypes.c_size_t(0),
                                ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION)))


def restrict(read=(), write=(), *, strict: bool = False) -> dict:
    """Landlock the calling process: ``read`` paths read-only, ``write`` paths read-write, nothing else.

    No path gets EXECUTE (no subprocess can run; loading a shared library needs only READ_FILE). TCP bind and
    connect are denied (ABI >= 4), as are signals and abstract unix sockets aimed outside (ABI >= 6). Missing
    paths are skipped. Irreversible, and inherited by every child. Landlock confines only the calling thread
    (before ABI 8): call it single-threaded, before any thread starts; ``single_thread`` says whether it was.

    Returns ``{"landlock_abi", "filesystem", "network", "signals", "abstract_unix_socket", "no_new_privs",
    "single_thread"}``. With ``strict=True`` raises ConfinementError instead of returning less than the kernel
    offers (no Landlock, a rule that fails, several threads).
    """
    abi = landlock_abi()
    report = {"landlock_abi": abi, "filesystem": False, "network": False, "signals": False,
              "abstract_unix_socket": False, "no_new_privs": False, "single_thread": _thread_count() == 1}
    try:
        if not report["single_thread"] and strict:
            raise ConfinementError("restrict: the process has several threads; only this one would be confined")
        if abi == 0:
            raise ConfinementError("restrict: Landlock is not available on this kernel")
        _restrict(abi, read, write, strict, report)
    except OSError:
        if strict:
            raise
    return report


def _restrict(abi: int, read, write, strict: bool, report: dict) -> None:
    create, add_rule, restrict_self = _SYSCALLS[platform.machine()]
    # Handle every right this ABI knows: a right left unhandled is allowed everywhere.
    handled_fs = (1 << {1: 13, 2: 14, 3: 15, 4: 15}.get(abi, 16)) - 1
    attr = _RulesetAttr(handled_fs, NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0,
                        SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = _check(_libc.syscall(ctypes.c_long(create), ctypes.byref(attr), ctypes.c_size_t(size),
                                   ctypes.c_uint32(0)), "landlock_create_ruleset")
    try:
        rules = [(p, READ_RIGHTS) for p in read] + [(p, handled_fs & ~EXECUTE) for p in write]
        for path, rights in rules:
            try:
                _add_path_rule(add_rule, ruleset, path, rights & handled_fs)
            except OSError:
                if strict:
                    raise
                # a rule we could not add is a grant we did not make: fail closed, keep going
        # Without no_new_privs an unprivileged process may not restrict itself (EPERM), and a setuid binary
        # must never run with rights the sandbox cannot see.
        _check(_prctl(PR_SET_NO_NEW_PRIVS, 1), "prctl(PR_SET_NO_NEW_PRIVS)")
        report["no_new_privs"] = True
        _check(_libc.syscall(ctypes.c_long(restrict_self), ctypes.c_int(ruleset), ctypes.c_uint32(0)),
               "landlock_restrict_self")
    finally:
        os.close(ruleset)
    report.update(filesystem=True, network=abi >= 4, signals=abi >= 6, abstract_unix_socket=abi >= 6)


def _add_path_rule(add_rule: int, ruleset: int, path, rights: int) -> None:
    try:
        # O_PATH: a handle on the inode that needs no read permission (the rule is about the path beneath it)
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= FILE_RIGHTS  # READ_DIR, MAKE_*, REMOVE_*, REFER on a file: EINVAL
        if rights:  # an empty rule is ENOMSG
            attr = _PathBeneathAttr(rights, fd)
            _check(_libc.syscall(ctypes.c_long(add_rule), ctypes.c_int(ruleset),
                                 ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH), ctypes.byref(attr), ctypes.c_uint32(0)),
                   f"landlock_add_rule({path})")
    finally:
        os.close(fd)


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0  # no /proc: unknown, reported as not single-threaded


def default_read_paths(exclude=()) -> list[str]:
    """Folders and files the Python runtime (and torch, numpy) reads after confinement: real paths, existing.

    The interpreter's prefixes and site-packages (a ``.venv`` inside the repository is fine: Landlock only
    grants, so granting ``REPO/.venv`` grants nothing of ``REPO/tests``), the folder of the real
    ``sys.executable``, the system libraries, ``/etc/ld.so.cache`` (dlopen), ``/dev/null``, ``/dev/urandom``,
    ``/proc/cpuinfo`` (torch's CPU probe) and ``/sys/devices/system/cpu``.

    ``exclude``: folders that must stay unreadable (the repository root). A candidate equal to one of them, or
    containing one (``/``, the repository's parent), is dropped; candidates inside them are kept. A path
    inside another candidate is dropped as redundant (a rule covers everything beneath it).
    """
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  *getattr(site, "getsitepackages", lambda: [])()]
    if site.ENABLE_USER_SITE:
        candidates.append(site.getusersitepackages())
    if sys.executable:
        candidates.append(os.path.dirname(os.path.realpath(sys.executable)))
    candidates += ["/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/dev/null", "/dev/urandom", "/proc/cpuinfo",
                   "/sys/devices/system/cpu"]
    banned = [Path(os.path.realpath(e)) for e in exclude]
    real = {Path(os.path.realpath(c)) for c in candidates if c and os.path.exists(c)}
    kept: list[Path] = []
    for path in sorted(real, key=lambda p: (len(p.parts), str(p))):  # parents before children
        if any(b.is_relative_to(path) for b in banned):
            continue
        if any(path.is_relative_to(k) for k in kept):
            continue
        kept.append(path)
    return [str(p) for p in kept]
