"""The kernel ``nbgrader autograde`` runs a student's notebook in: ipykernel, with the hidden tests out of reach.

The kernel runs every cell of the notebook, cells the student added included, as the instructor. It needs no
hidden test (``grader.platforms.nbgrader.preprocessors.JudgeBeforeKernel`` grades the notebook's code with the judge before the
kernel starts, and the test cells only show those results), so it gets none: the launcher enters a new user and
mount namespace, mounts an empty read-only folder over ``tests/hidden/`` and ``solutions/``, then runs the
kernel. A cell that opens a hidden test file finds an empty folder, and so does anything the kernel starts.

ipykernel talks to nbgrader over TCP sockets, so the kernel keeps the network (no syscall filter, no network
namespace). Whether the kernel can be confined is read from ``grader.facilities.present()`` (so
``GRADER_WITHOUT=namespaces`` grades as a container that forbids user namespaces would). Where it cannot (no user
namespaces: such a container, macOS, Windows) the grades are not affected, since the judge graded the code before
the kernel started, but a cell a student adds can read the hidden tests and print them into its feedback. Then
autograde says so once in its log (``grader.platforms.nbgrader.preprocessors.HiddenTestsExecute``) and the kernel runs unconfined,
or, with ``c.HiddenTestsExecute.require_confinement = True`` in ``nbgrader_config.py``, the launcher refuses to
start it (``--require``) and autograde fails that notebook rather than grade it unconfined.

    python -m grader.platforms.nbgrader.kernel [--require] -- python -m ipykernel_launcher -f CONNECTION_FILE
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

from grader.course import REPO_ROOT

HIDDEN_FROM_KERNEL = (REPO_ROOT / "tests" / "hidden", REPO_ROOT / "solutions")

CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 0x4000, 0x40000


def _libc():
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    return libc


def _call(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def hide(paths=HIDDEN_FROM_KERNEL) -> list[str]:
    """Enter a user and mount namespace (this process, before it starts any thread) where each folder of
    ``paths`` is an empty read-only tmpfs; returns the folders hidden. Raises OSError where it cannot."""
    if not sys.platform.startswith("linux"):
        raise OSError("user and mount namespaces are Linux only")
    libc = _libc()
    uid, gid = os.getuid(), os.getgid()
    _call(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(user, mount)")
    # the same ids inside as outside: the kernel reads and writes what the instructor can, but the hidden folders
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _call(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making mounts private")  # nothing leaks out
    hidden = []
    for path in paths:
        if Path(path).is_dir():
            _call(libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                             b"size=4k,mode=555"), f"mounting an empty folder over {path}")
            hidden.append(str(path))
    return hidden


REFUSED = 3  # the launcher's exit status when --require is given and the kernel cannot be confined
# Set by the launcher in the kernel's environment: "confined", or "unconfined" (said in autograde's log). A kernel
# autograde started without it was not started through the course's nbgrader_config.py (the config was not
# found, or another replaced it): grader.platforms.nbgrader.cell then stops that kernel before it grades anything.
LAUNCHED_ENV = "LESSON1_KERNEL_LAUNCHER"


def confinement() -> tuple[bool, str]:
    """(True, "") where the kernel can start with the hidden folders out of its reach, else (False, why not)."""
    from grader.facilities import ENV, present

    found = present()
    if found.namespaces:
        return True, ""
    if "namespaces" in found.switched_off:
        return False, f"user namespaces are switched off ({ENV})"
    return False, f"this system offers no user namespaces ({found.platform})"


_warned_unconfined: list[str] = []  # autograde's log says once per process that its kernels are unconfined


def warn_unconfined_once(log, why: str) -> bool:
    """Say once, in autograde's log, that the kernels run where they can read the hidden tests; True if said now."""
    if _warned_unconfined:
        return False
    _warned_unconfined.append(why)
    log.warning(
        "The notebooks' kernels are NOT confined here (%s): a cell a student adds can read tests/hidden/ and "
        "solutions/ and print them into its feedback. The grades are not affected (the judge grades each "
        "notebook's code before its kernel starts). Autograde as a user who cannot read those folders, or where "
        "user namespaces are allowed; c.HiddenTestsExecute.require_confinement = True refuses to grade instead.",
        why)
    return True


def main(argv: list[str]) -> None:
    options, command = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else ([], argv)
    if not command or set(options) - {"--require"}:
        raise SystemExit("usage: python -m grader.platforms.nbgrader.kernel [--require] -- KERNEL COMMAND...")
    confined, why = confinement()
    if confined:
        try:
            hide()
        except OSError as exc:  # the facility looked present, but this system refused it (autograde did not warn)
            confined, why = False, str(exc)
            if "--require" not in options:
                print(f"grader.platforms.nbgrader.kernel: the kernel runs UNCONFINED and can read the hidden tests ({why})",
                      file=sys.stderr)
    if not confined and "--require" in options:
        print(f"grader.platforms.nbgrader.kernel: refusing to start the kernel where it could read the hidden tests ({why})",
              file=sys.stderr)
        raise SystemExit(REFUSED)
    os.environ[LAUNCHED_ENV] = "confined" if confined else "unconfined"
    os.execvp(command[0], command)


def kernel_manager_class(require: bool = False):
    """jupyter_client's kernel manager, whose kernel starts through this module's launcher (``--require``: only
    confined). Made on first use: importing this module never imports jupyter_client."""
    name = "RequiredConfinementKernelManager" if require else "HiddenTestsKernelManager"
    if name in _managers:
        return _managers[name]
    from jupyter_client.manager import AsyncKernelManager

    class HiddenTestsKernelManager(AsyncKernelManager):
        """jupyter_client's kernel manager, whose kernel starts through this module's launcher."""

        def format_kernel_cmd(self, extra_arguments=None):
            command = super().format_kernel_cmd(extra_arguments)
            launcher = [sys.executable, "-m", "grader.platforms.nbgrader.kernel", *(["--require"] if require else [])]
            return [*launcher, "--", *command]

    HiddenTestsKernelManager.__name__ = HiddenTestsKernelManager.__qualname__ = name
    _managers[name] = HiddenTestsKernelManager
    return HiddenTestsKernelManager


_managers: dict[str, type] = {}


def __getattr__(name: str):
    if name == "HiddenTestsKernelManager":
        return kernel_manager_class()
    raise AttributeError(name)


if __name__ == "__main__":
    main(sys.argv[1:])
