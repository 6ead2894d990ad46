"""How many CPU threads torch should use for a piece of work (for this lesson's tiny models: one).

torch splits every large enough operation over one thread per core. That pays for big matrix products. A tiny
model's products are done in microseconds, before the threads have finished handing out the work, and on a
busy laptop each thread also has to wait for a core that another program holds: the slowest thread sets the
pace of every product. Measured on 2 cores: training step 3's model (d_model 64, batches of 16 x 64 tokens)
took 95-110 ms a step with 1 thread and 850-1000 ms with torch's default 2 threads while other programs kept
the cores busy. So the thread count is chosen from the size of the work: one thread for small products, and
for big ones as many as there are idle cores.

Example::

    >>> threads_for(matmul_flops(16 * 64, 64, 512))      # step 3: (1024 x 64) @ (64 x 512), 67 MFLOP
    1
    >>> threads_for(matmul_flops(4096, 4096, 4096), cores=8, load=0.0)    # 137 GFLOP on an idle 8-core machine
    8
"""

from __future__ import annotations

import os

import torch

__all__ = ["PARALLEL_MIN_FLOPS", "matmul_flops", "threads_for", "use_threads_for"]

# Below this many FLOPs per matrix product, extra threads cost more than they save (a product this size takes
# ~5 ms on one core; handing it out and waiting for every thread costs tens of microseconds when the cores are
# free, and milliseconds when other programs hold them).
PARALLEL_MIN_FLOPS = 1e8


def matmul_flops(m: int, k: int, n: int) -> int:
    """FLOPs of an ``(m, k) @ (k, n)`` product: one multiply and one add per term, ``2*m*k*n``."""
    return 2 * m * k * n


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (a container may allow fewer)
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _load() -> float:
    try:
        return os.getloadavg()[0]  # processes running or waiting for a core, averaged over the last minute
    except (AttributeError, OSError):  # Windows
        return 0.0


def threads_for(flops: float, *, cores: int | None = None, load: float | None = None) -> int:
    """Threads worth using for work whose typical matrix product costs ``flops`` FLOPs.

    One below ``PARALLEL_MIN_FLOPS``; above it, the cores nobody else is using (cores minus the one-minute load
    average), at least one.
    """
    cores = _cores() if cores is None else cores
    if flops < PARALLEL_MIN_FLOPS or cores <= 1:
        return 1
    load = _load() if load is None else load
    return max(1, min(cores, int(cores - load + 0.5)))


def use_threads_for(flops: float) -> int:
    """Set torch's thread count with :func:`threads_for` and return it. If ``OMP_NUM_THREADS`` is set, that
    choice is kept (it is yours to make) and returned."""
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    threads = threads_for(flops)
    torch.set_num_threads(threads)
    return threads
