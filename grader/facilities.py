"""Which operating-system facilities the grader may use here: one record, read once, per facility.

The grading path prefers Linux facilities (fork after torch, pidfds, /proc, CPU affinity, Landlock, namespaces,
a syscall filter) and falls back to portable ones where a facility is missing (macOS, Windows, a container
that forbids some of them). Every such choice reads ``present()``, so one record says what this machine
offers, and the results document carries it (``lesson.facilities``) beside what the worker actually got
(``lesson.protections``).

``GRADER_WITHOUT`` switches facilities off, as if the platform lacked them (comma-separated names, or ``all``):
the project tests use it to grade as a Mac or a container would, and an instructor can use it to rule a
facility out. It can only take facilities away, never add one the machine lacks::

    GRADER_WITHOUT=landlock,namespaces python -m grader grade
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import asdict, dataclass

ENV = "GRADER_WITHOUT"
# name -> what it gives the grader (the README's platform table uses the same words)
NAMES = {
    "fork": "start the worker by fork after torch is loaded (else spawn: a fresh interpreter imports torch)",
    "pidfd": "wait on a process through a pidfd (else poll with waitpid and a short sleep)",
    "proc": "read CPU time, descriptors and memory from /proc (else psutil or resource)",
    "affinity": "pin a judge and its worker to one CPU (else the scheduler decides)",
    "rlimits": "limit a process's CPU, memory and file size with setrlimit (else the judge's CPU watch only)",
    "landlock": "confine the worker's files, TCP, signals and abstract sockets with Landlock",
    "namespaces": "user, PID, network and IPC namespaces: nothing outlives grading, no network",
    "seccomp": "a syscall filter: no new sockets, processes, io_uring, System V IPC or CPU moves",
    "setuid": "drop the worker to an unprivileged uid when the grader runs as root",
}


@dataclass(frozen=True)
class Facilities:
    platform: str
    fork: bool
    pidfd: bool
    proc: bool
    affinity: bool
    rlimits: bool
    landlock_abi: int  # 0: none
    namespaces: bool  # the kernel offers them; whether the worker got them is in lesson.protections
    seccomp: bool
    setuid: bool  # running as root with setuid available, so the worker can drop to another uid
    root: bool
    switched_off: tuple[str, ...] = ()

    @property
    def start_method(self) -> str:
        """How worker processes start: ``fork`` (from a zygote that has torch loaded) or ``spawn``."""
        return "fork" if self.fork else "spawn"

    @property
    def landlock(self) -> bool:
        return self.landlock_abi > 0

    def missing(self) -> list[str]:
        """The facilities of ``NAMES`` this machine lacks or that were switched off, in that order."""
        return [name for name in NAMES if not (self.landlock if name == "landlock" else getattr(self, name))]

    def record(self) -> dict:
        """Plain data for the results document."""
        doc = asdict(self)
        doc["switched_off"] = list(self.switched_off)
        doc["start_method"] = self.start_method
        return doc


def switched_off(environ=os.environ) -> tuple[str, ...]:
    """The names ``GRADER_WITHOUT`` turns off; an unknown name stops the run (a typo must not pass silently)."""
    words = [w.strip() for w in environ.get(ENV, "").split(",") if w.strip()]
    if "all" in words:
        return tuple(NAMES)
    unknown = sorted(set(words) - set(NAMES))
    if unknown:
        raise SystemExit(f"{ENV}: unknown facility {', '.join(unknown)} (known: {', '.join(NAMES)}, all)")
    return tuple(name for name in NAMES if name in words)


@functools.cache
def present() -> Facilities:
    """Probe once per process (cheap: no fork, no namespace); ``refresh()`` after changing ``GRADER_WITHOUT``."""
    off = switched_off()
    linux = sys.platform.startswith("linux")
    found = {
        # fork is missing on Windows and unsafe on macOS once system frameworks are loaded (torch loads them)
        "fork": linux and hasattr(os, "fork"),
        "pidfd": _pidfd_works(),
        "proc": linux and os.access("/proc/self/stat", os.R_OK),
        "affinity": hasattr(os, "sched_setaffinity"),
        "rlimits": _has_resource(),
        "namespaces": linux and os.path.exists("/proc/self/ns/user"),
        "seccomp": linux and _seccomp_in_status() and _seccomp_arch_known(),
        "setuid": _root(),
    }
    abi = _landlock_abi() if linux and "landlock" not in off else 0
    return Facilities(
        platform=sys.platform, landlock_abi=abi, root=_root(),
        switched_off=off, **{name: ok and name not in off for name, ok in found.items()},
    )


def refresh() -> Facilities:
    present.cache_clear()
    return present()


def _root() -> bool:
    return sys.platform != "win32" and os.geteuid() == 0


def _pidfd_works() -> bool:
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))  # a syscall filter may answer ENOSYS although the name exists
    except OSError:
        return False
    return True


def _has_resource() -> bool:
    try:
        import resource  # noqa: F401  (Unix only)
    except ImportError:
        return False
    return True


def _seccomp_in_status() -> bool:
    try:
        with open("/proc/self/status") as f:
            return any(line.startswith("Seccomp:") for line in f)
    except OSError:
        return False


def _seccomp_arch_known() -> bool:
    """grader.worker.seccomp carries the syscall numbers of x86_64 and aarch64 only."""
    import platform

    return platform.machine() in ("x86_64", "aarch64")


def _landlock_abi() -> int:
    try:
        from grader.worker import confine
    except (ImportError, OSError):  # ctypes without a libc (not Linux)
        return 0
    return confine.landlock_abi()


CONFINEMENT = ("landlock", "namespaces", "setuid")  # what keeps a worker from the instructor's files and network


def unconfined_warning(here: Facilities | None = None) -> str | None:
    """What a batch prints once at its start when the worker would run student code with no confinement at all:
    no Landlock, no namespaces (the fork path enters them; a spawned worker does not) and no uid drop. None when
    at least one of them is in use. A student's own machine is not a trust boundary: ``grade`` never warns."""
    here = here or present()
    confining = {"landlock": here.landlock, "namespaces": here.namespaces and here.fork,
                 # as root without the other two, a forked worker drops to a uid of its own (grader.worker.confine)
                 "setuid": here.setuid and here.fork}
    if any(confining.values()):
        return None
    why = []
    for name in CONFINEMENT:
        if name in here.switched_off:
            why.append(f"{name} (switched off by {ENV})")
        elif name == "namespaces" and here.namespaces:
            why.append("namespaces (not entered by a spawned worker)")
        elif name == "setuid" and here.setuid:
            why.append("setuid (a spawned worker does not drop its uid)")
        else:
            why.append(f"{name} (not offered here)")
    return ("warning: this batch runs student code UNCONFINED: " + ", ".join(why) + ". A submission can read the "
            "hidden tests, the solutions and every other file this user can, write outside its folder, use the "
            "network and leave processes running; only the CPU, memory and time limits apply. Grade on Linux "
            "5.13+ (Landlock), or as root in a container so the worker drops to its own uid.")
