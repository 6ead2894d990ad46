"""Process control shared by the runner, the judge, the worker and the batch: children that never return into
their parent's code, that die with their parent, and wait statuses in words."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import traceback

PR_SET_PDEATHSIG = 1
# SIGKILL where there is one; Windows has none (os.kill with SIGTERM there is TerminateProcess)
KILL_SIGNAL = getattr(signal, "SIGKILL", signal.SIGTERM)


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies: nothing we fork outlives its parent.
    Linux only (forked children are Linux only: grader.facilities); nothing elsewhere."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def run_child(body, *, error_code: int = 70):
    """Run ``body()`` in a forked child and leave with its exit code (an int it returns, else 0); a failure is
    printed to this child's stderr and leaves with ``error_code``. Never returns: a forked child must not run
    its parent's clean-up (pytest's, say) on the way out."""
    code = error_code
    try:
        result = body()
        code = result if isinstance(result, int) and not isinstance(result, bool) else 0
    except BaseException:  # noqa: BLE001 - report anything, then leave
        try:
            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def pin_to_cpu(cpu: int | None) -> None:
    """Run this process on ``cpu`` only (nothing when None, or when the CPU is not ours to use).

    A batch's judge and its worker take turns (one waits while the other computes), so they lose nothing by
    sharing one CPU, and a reply then wakes the other process on the CPU it is already on: on this project's
    2-core machine a round trip costs 11 us instead of 45 us, and a submission makes hundreds of them. A single
    grading is not pinned: the caller's own work may share its CPU (pinned to it, the project suite ran 50%
    slower)."""
    from grader import facilities

    if cpu is None or sys.platform != "linux" or not facilities.present().affinity:
        return
    try:
        os.sched_setaffinity(0, {cpu})
    except (OSError, AttributeError, ValueError, OverflowError, TypeError):
        pass


def kill(pid: int | None, *, group: bool = False) -> None:
    """SIGKILL ``pid`` (and its process group), ignoring a process that is already gone."""
    if not pid:
        return
    sends = [os.kill]
    if group and sys.platform != "win32":
        sends.append(os.killpg)
    for send in sends:
        try:
            send(pid, KILL_SIGNAL)
        except (ProcessLookupError, PermissionError, OSError):
            pass


def describe_status(status: int) -> str:
    """A wait status in words: 'exit code 3' or 'killed by signal SIGSEGV'."""
    if sys.platform == "win32":  # no wait statuses there: the judge session reports an exit code (grader.judge.session)
        return f"exit code {status}"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return f"killed by signal {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
