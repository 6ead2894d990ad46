"""Run the student's loop on the portable path with the Linux-only facilities truly unavailable (test_portable).

Run as ``python project_tests/portable_loop.py SUBMISSIONS_JSON`` inside a fresh mount namespace whose /proc is an
empty tmpfs (test_portable sets that up with ``unshare``). Before anything else it installs a syscall filter
(libseccomp, through ctypes) that answers ENOSYS for pidfd_open, Landlock's three calls and unshare, as a kernel
without them would; then it proves that each is gone (the hostile step, refused), grades every submission (hidden tests included) with
``GRADER_WITHOUT=fork,affinity`` (the spawn start method: fork exists on Linux but not on Windows, and is unsafe
on macOS), re-grades one exercise twice through ``watch``'s open session (two saves), draws the plots and runs
``check``'s reference and stub gradings (in the submissions' judge session). It prints one JSON document: what was refused, the facilities seen, and
the verdicts, for the test to compare with the Linux path's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

BLOCKED = ("pidfd_open", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self", "unshare")
SCMP_ACT_ALLOW = 0x7FFF0000


def block_syscalls() -> None:
    """A seccomp filter: each call of BLOCKED fails with ENOSYS, everything else is allowed (inherited by
    every process started later: the judge session and the workers)."""
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2")
    lib.seccomp_init.restype = ctypes.c_void_p
    ctx = ctypes.c_void_p(lib.seccomp_init(ctypes.c_uint32(SCMP_ACT_ALLOW)))
    for name in BLOCKED:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        action = 0x00050000 | errno.ENOSYS  # SCMP_ACT_ERRNO(ENOSYS)
        if lib.seccomp_rule_add(ctx, ctypes.c_uint32(action), ctypes.c_int(number), ctypes.c_uint(0)) != 0:
            raise OSError(f"seccomp_rule_add({name}) failed")
    if lib.seccomp_load(ctx) != 0:
        raise OSError("seccomp_load failed")


def refused() -> dict:
    """Each Linux facility, tried: what happened (the test asserts every one was refused)."""
    out = {"proc_entries": os.listdir("/proc")}
    try:
        os.close(os.pidfd_open(os.getpid()))
        out["pidfd_open"] = "worked"
    except OSError as exc:
        out["pidfd_open"] = errno.errorcode.get(exc.errno, str(exc.errno))
    libc = ctypes.CDLL(None, use_errno=True)
    out["unshare"] = "worked" if libc.unshare(0x10000000) == 0 else errno.errorcode[ctypes.get_errno()]  # NEWUSER
    from grader.worker import confine

    out["landlock_abi"] = confine.landlock_abi()
    return out


def verdicts(doc: dict) -> dict:
    """name -> (status, score, kind): what the comparison holds equal on both paths."""
    return {t["name"]: [t["status"], t["score"], t["extra_data"]["kind"], t["extra_data"]["reason"]]
            for t in doc["tests"]}


def main(spec: dict) -> dict:
    block_syscalls()
    os.environ["GRADER_WITHOUT"] = "fork,affinity"
    from grader.instructor import check
    from grader import facilities, grading, plots, results, watch
    from grader.judge import session as runner
    from grader.judge.session import Limits

    out = {"refused": refused(), "facilities": facilities.present().record(), "grade": {}, "seconds": {}}
    clock = time.monotonic()

    def lap(step: str) -> None:  # wall-clock seconds per step, for whoever wants to cut the test's cost
        nonlocal clock
        out["seconds"][step], clock = round(time.monotonic() - clock, 1), time.monotonic()

    limits = Limits(**spec["limits"])
    # one judge session (every suite, hidden included) grades the submissions and check's reference and stubs:
    # each session started on this path imports torch and collects by itself
    with tempfile.TemporaryDirectory(prefix="portable-session-") as tmp:
        files = grading.suite_files(list(results.load_points(grading.TESTS_DIR)), hidden=True)
        server = runner.JudgeServer(files, rootdir=grading.TESTS_DIR.parent, tmpdir=Path(tmp), limits=limits)
        try:
            for name, target in spec["targets"].items():
                doc = grading.grade(target, exercises=spec["exercises"], hidden=True, limits=limits, server=server)
                out["grade"][name] = verdicts(doc)
                out["protections"] = doc["lesson"].get("protections")
                lap(name)
            out["check"] = ([check.check_reference(server=server)[0], check.check_stubs(server=server)[0]]
                            if spec.get("check") else None)
            lap("check")
        finally:
            server.close()
    # watch: one open session, two saves of ex1 (the stub, then the reference), each graded in turn
    work = Path(tempfile.mkdtemp(prefix="portable-watch-"))
    shutil.copy(spec["stub_ex1"], work / "ex1_special_tokens.py")
    sitting = watch.Sitting(work, ["ex1"], limits)
    sitting.start()
    try:
        out["watch"] = [verdicts(sitting.grade(["ex1"]))]
        shutil.copy(spec["reference_ex1"], work / "ex1_special_tokens.py")
        out["watch"].append(verdicts(sitting.grade(["ex1"])))
    finally:
        sitting.close()
    lap("watch")
    out["plots"] = [[name, str(path)] for name, path in plots.make_plots("solutions", work)]
    lap("plots")
    return out


if __name__ == "__main__":
    result = main(json.loads(sys.argv[1]))
    sys.stdout.write("\nPORTABLE-RESULT " + json.dumps(result) + "\n")
