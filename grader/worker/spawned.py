"""A worker started as a fresh interpreter (``python -m grader.worker.spawned ADDRESS``): the portable path.

Where the judge cannot fork a worker from a zygote that already imported torch (no ``fork`` facility: macOS,
Windows, ``GRADER_WITHOUT=fork``), grader.portable starts this module instead. It imports torch and the lesson
code first, then waits for its configuration (usually while the judge is still collecting or running the test
before), so none of that start-up is in any test's time. Then, in order:

1. connect to the judge (a Unix socket it inherited, or a loopback port plus a token on Windows);
2. import torch with one thread (as the zygote does), then read the configuration the judge sends;
3. move into its private folder, send its output there, set the limits the platform offers (``resource``);
4. confine itself where the kernel offers it (Landlock, then the syscall filter on Linux), report which
   protections it got;
5. serve requests with grader.worker.worker's ``Worker``, as a forked worker does.

Where the judge cannot read the worker's CPU time (no /proc and no psutil), the worker watches its own
(``time.process_time``, portable) and leaves with ``portable.CPU_LIMIT_EXIT`` past the test's limit; the judge
reports that as a timeout, as it would have itself.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from grader import facilities, portable


def main(argv: list[str]) -> int:
    sock = portable.connect_back(json.loads(argv[0]))
    import torch

    torch.set_num_threads(1)  # as the zygote does: grading compares single-threaded results
    import grader.worker.rebuild  # noqa: F401 - llm_basics, as the zygote has it loaded
    from grader.worker import wire
    from grader.worker.worker import Worker

    config, _ = wire.recv(sock)
    if type(config) is not dict:
        return 72
    protections = _set_up(config)
    wire.send(sock, {"r": wire.HELLO, "pid": os.getpid(), "protections": protections})
    worker = _WatchedWorker(sock, Path(config["target"]))
    if config.get("watch_cpu"):
        worker.watch(float(config["cpu_seconds"]))
    worker.serve()
    return 0


def _set_up(config: dict) -> dict:
    """Steps 3 and 4: the private folder, output, limits, confinement; returns the protections in place."""
    private = Path(config["private"])
    from grader.worker.worker import settle_in

    settle_in(private)
    here = facilities.present()
    if here.rlimits:
        _rlimits(config)
    from grader.worker import confine

    install_filter: Callable[[], bool] | None = None
    if config.get("seccomp") and sys.platform.startswith("linux"):
        from grader.worker.seccomp import install as install_filter  # now: Landlock leaves grader/ unreadable
    protections = dict(confine.NONE)  # every protection named, False where absent (the results say which)
    if here.landlock and config.get("confine"):
        protections.update(confine.restrict(read=config["read"], write=[str(private)]))
    if install_filter is not None:
        # last, as in a forked worker: no new socket (Landlock leaves UDP and unix sockets open), no child process
        # (one that called setsid outlived the grading), no System V IPC (grader.worker.seccomp)
        protections["syscall_filter"] = install_filter()
        protections["no_new_privs"] = protections["no_new_privs"] or protections["syscall_filter"]
    return protections


def _rlimits(config: dict) -> None:
    """Output and core-file limits, and the memory cap where the address space in use can be read (psutil)."""
    if sys.platform == "win32":  # the rlimits facility is Unix only
        return
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (config["output_bytes"], config["output_bytes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if config.get("memory_bytes") and sys.platform.startswith("linux"):  # macOS does not enforce RLIMIT_AS
        try:
            import psutil

            cap = psutil.Process().memory_info().vms + config["memory_bytes"]
        except Exception:  # noqa: BLE001 - no /proc: no memory cap (reported nowhere as one)
            return
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


class _WatchedWorker:
    """grader.worker.worker's ``Worker``, told where each test begins (the judge seeds its first request) so that
    its own CPU watch can count from there."""

    def __init__(self, sock, target: Path) -> None:
        from grader.worker.worker import Worker

        outer = self

        class Watched(Worker):
            def dispatch(self, msg, bufs):  # noqa: D102 - a test's first request carries "seed"
                if isinstance(msg, dict) and "seed" in msg:
                    outer.test_began = time.process_time()
                return super().dispatch(msg, bufs)

        self.worker = Watched(sock, target)
        self.test_began = time.process_time()

    def watch(self, limit: float) -> None:
        def loop() -> None:
            while True:
                time.sleep(portable.POLL_SECONDS * 5)
                if time.process_time() - self.test_began > limit:
                    os._exit(portable.CPU_LIMIT_EXIT)

        threading.Thread(target=loop, daemon=True, name="cpu-watch").start()

    def serve(self) -> None:
        self.worker.serve()


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
    except BaseException:  # noqa: BLE001 - ours: printed on the output the judge reads, then leave
        import traceback

        traceback.print_exc()
        code = 72
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
