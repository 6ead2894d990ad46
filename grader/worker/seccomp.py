"""A syscall filter for the worker: no way out but the socket it already holds.

A raw classic-BPF program installed with ``seccomp(SECCOMP_SET_MODE_FILTER)`` through ctypes (no library:
libseccomp would be one more thing to install on a student's laptop and on Gradescope). What it refuses, and
why Landlock and the namespaces do not already cover it:

- ``socket``/``socketpair``: a unix socket reached by its path (``connect()`` to a socket file) is outside
  Landlock ABI 7 and outside the network namespace; with no new socket at all, nothing is reachable. The
  socket to the judge was made before the filter and keeps working.
- ``fork``/``vfork``/``clone`` without ``CLONE_THREAD``, and ``clone3``: no child process, so no fork bomb, no
  child that burns CPU the judge does not count, and the worker's RLIMIT_AS caps the memory of everything the
  submission runs (threads share the one address space). ``clone3`` passes its flags in memory, which BPF
  cannot read: it answers ENOSYS, and glibc then falls back to ``clone``, whose flags are checked. Threads
  (Python's, torch's) keep working.
- ``execve``/``execveat``: no other program (Landlock already denies EXECUTE; this holds without Landlock).
- io_uring: its requests are performed by the kernel on the process's behalf without passing through this
  filter (a socket or a connect through io_uring would step around it).
- ``sched_setaffinity``: a batch pins each judge and its worker to one CPU (``sched_getaffinity`` stays
  allowed: torch reads it).
- What would step around the filter or the sandbox: ptrace, unshare/setns, mount and the new mount API,
  chroot/pivot_root, bpf, perf_event_open, process_vm_*, pidfd_getfd, keyctl and friends, userfaultfd,
  open_by_handle_at, memfd_create (memory outside RLIMIT_AS), module and kexec loading, seccomp itself.
- System V IPC (shared memory, semaphores, message queues) and POSIX message queues: kernel objects reached by a
  number or a name, not a path (Landlock does not see them), that outlive the process. A segment made by one
  grading was read by a later one (a hidden test's input carried to a student-visible grading, or from one
  submission to another), and segments of a gigabyte each sat outside every worker's RLIMIT_AS. The worker's
  IPC namespace (grader.worker.confine) already hides the host's objects; this holds without namespaces (a
  worker of its own uid, the portable path's worker).
- ``fallocate``: it reserves gigabytes in a millisecond without writing them, where only the judge's disk watch
  caps the total (a worker of its own uid, no tmpfs: grader.worker.uid.disk_usage); writes themselves go no
  faster than the disk takes them.

Denied calls fail with EPERM (ENOSYS for ``clone3``), so student code sees an ordinary ``PermissionError``. A
call made under another ABI (i386 through ``int 0x80``, x32 numbers on x86_64) kills the process: its
numbers are not the ones checked here.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

from grader.worker.confine import PR_SET_NO_NEW_PRIVS, _libc, _prctl

# linux/audit.h: the arch word the kernel puts in seccomp_data.arch
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000
CLONE_THREAD = 0x00010000

# linux/seccomp.h
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
RET_KILL_PROCESS, RET_ERRNO, RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
_SECCOMP_SYSCALL = {"x86_64": 317, "aarch64": 277}

# the names each architecture's numbers cover (the same list: a name missing on an architecture, like fork on
# aarch64, simply is not there to call)
DENIED = (
    "socket", "socketpair", "fork", "vfork", "execve", "execveat",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "sched_setaffinity",
    "ptrace", "unshare", "setns", "mount", "umount2", "pivot_root", "chroot",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "bpf", "perf_event_open", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
    "keyctl", "add_key", "request_key", "userfaultfd", "open_by_handle_at", "name_to_handle_at",
    "memfd_create", "memfd_secret", "init_module", "finit_module", "delete_module", "kexec_load",
    "kexec_file_load", "seccomp", "fanotify_init", "swapon", "swapoff", "reboot", "acct", "quotactl",
    "iopl", "ioperm", "fallocate",
    "shmget", "shmat", "shmctl", "shmdt", "semget", "semop", "semtimedop", "semctl", "msgget", "msgsnd", "msgrcv",
    "msgctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
)
# arch/x86/entry/syscalls/syscall_64.tbl
_X86_64 = {
    "socket": 41, "socketpair": 53, "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "execveat": 322,
    "clone3": 435, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "sched_setaffinity": 203, "ptrace": 101, "unshare": 272, "setns": 308, "mount": 165, "umount2": 166,
    "pivot_root": 155, "chroot": 161, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "mount_setattr": 442, "bpf": 321, "perf_event_open": 298,
    "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_getfd": 438, "keyctl": 250, "add_key": 248,
    "request_key": 249, "userfaultfd": 323, "open_by_handle_at": 304, "name_to_handle_at": 303,
    "memfd_create": 319, "memfd_secret": 447, "init_module": 175, "finit_module": 313, "delete_module": 176,
    "kexec_load": 246, "kexec_file_load": 320, "seccomp": 317, "fanotify_init": 300, "swapon": 167,
    "swapoff": 168, "reboot": 169, "acct": 163, "quotactl": 179, "iopl": 172, "ioperm": 173,
    "fallocate": 285, "shmget": 29, "shmat": 30, "shmctl": 31, "semget": 64, "semop": 65, "semctl": 66,
    "shmdt": 67, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71, "semtimedop": 220, "mq_open": 240,
    "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244, "mq_getsetattr": 245,
}
# include/uapi/asm-generic/unistd.h (aarch64 has no fork, vfork, iopl or ioperm)
_AARCH64 = {
    "socket": 198, "socketpair": 199, "clone": 220, "execve": 221, "execveat": 281, "clone3": 435,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "sched_setaffinity": 122,
    "ptrace": 117, "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "mount_setattr": 442, "bpf": 280, "perf_event_open": 241, "process_vm_readv": 270,
    "process_vm_writev": 271, "pidfd_getfd": 438, "keyctl": 219, "add_key": 217, "request_key": 218,
    "userfaultfd": 282, "open_by_handle_at": 265, "name_to_handle_at": 264, "memfd_create": 279,
    "memfd_secret": 447, "init_module": 105, "finit_module": 273, "delete_module": 106, "kexec_load": 104,
    "kexec_file_load": 294, "seccomp": 277, "fanotify_init": 262, "swapon": 224, "swapoff": 225,
    "reboot": 142, "acct": 89, "quotactl": 60, "fallocate": 47, "mq_open": 180, "mq_unlink": 181,
    "mq_timedsend": 182, "mq_timedreceive": 183, "mq_notify": 184, "mq_getsetattr": 185, "msgget": 186,
    "msgctl": 187, "msgrcv": 188, "msgsnd": 189, "semget": 190, "semctl": 191, "semtimedop": 192, "semop": 193,
    "shmget": 194, "shmctl": 195, "shmat": 196, "shmdt": 197,
}
NUMBERS = {"x86_64": _X86_64, "aarch64": _AARCH64}

# classic BPF opcodes (linux/bpf_common.h)
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K, _JGE_K, _JSET_K = 0x15, 0x35, 0x45  # BPF_JMP | BPF_JEQ/JGE/JSET | BPF_K
_RET_K = 0x06
# offsets in struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6]}: args[0]'s low word on little-endian
_NR, _ARCH, _ARG0_LOW = 0, 4, 16


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def available(machine: str | None = None) -> bool:
    """Whether this module knows the architecture's numbers (the kernel's support is tried by ``install``)."""
    return (machine or platform.machine()) in NUMBERS


def program(machine: str | None = None) -> bytes:
    """The filter for ``machine`` (default: this one), as the kernel's ``struct sock_filter`` array."""
    machine = machine or platform.machine()
    numbers = NUMBERS[machine]
    denied = sorted({numbers[name] for name in DENIED if name in numbers})
    eperm, enosys = RET_ERRNO | errno.EPERM, RET_ERRNO | errno.ENOSYS
    head = [
        _op(_LD_W_ABS, _ARCH),
        _op(_JEQ_K, AUDIT_ARCH[machine], jt=1),  # our architecture: go on; any other: its numbers mean other calls
        _op(_RET_K, RET_KILL_PROCESS),
        _op(_LD_W_ABS, _NR),
    ]
    if machine == "x86_64":  # x32 calls share the arch word and carry this bit: their numbers are not ours
        head += [_op(_JGE_K, X32_SYSCALL_BIT, jf=1), _op(_RET_K, RET_KILL_PROCESS)]
    # each denied number: "if nr == n: return EPERM" (jt skips nothing, jf skips the return)
    body = []
    for nr in denied:
        body += [_op(_JEQ_K, nr, jf=1), _op(_RET_K, eperm)]
    body += [_op(_JEQ_K, numbers["clone3"], jf=1), _op(_RET_K, enosys)]
    # clone: a thread (CLONE_THREAD set in the flags, args[0]) is allowed, a new process is not
    body += [
        _op(_JEQ_K, numbers["clone"], jf=3),
        _op(_LD_W_ABS, _ARG0_LOW),
        _op(_JSET_K, CLONE_THREAD, jt=1),
        _op(_RET_K, eperm),
        _op(_RET_K, RET_ALLOW),
    ]
    return b"".join(head + body)


def install() -> bool:
    """Filter every thread of the calling process for good (and its children, were any allowed); sets
    no_new_privs first (the kernel requires it of an unprivileged process). False where this architecture or
    kernel has no seccomp filter; never raises."""
    if not available():
        return False
    code = program()
    buffer = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.addressof(buffer))
    if _prctl(PR_SET_NO_NEW_PRIVS, 1) != 0:
        return False
    # TSYNC: every thread at once (a thread started before the filter would otherwise run unfiltered)
    result = _libc.syscall(ctypes.c_long(_SECCOMP_SYSCALL[platform.machine()]),
                           ctypes.c_uint(SECCOMP_SET_MODE_FILTER), ctypes.c_uint(SECCOMP_FILTER_FLAG_TSYNC),
                           ctypes.byref(prog))
    return result == 0
