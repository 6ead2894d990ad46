"""What does one call of student code through the judge's proxy cost?

The judge never runs student code: ``student("ex2_topk_attention").topk_attention(q, k, v, 2)`` is a request to
the confined worker and a reply of plain data. This measures the round trip for a call that does (almost)
nothing, for small tensors both ways, and for a method of an object that stays in the worker, with the worker
confined as in grading. Run from the repository root:

    .venv/bin/python bench/bench_call.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader.worker.client import WorkerClient  # noqa: E402
from grader.judge.student import worker_read_paths  # noqa: E402

MODULE = '''
import torch

def nothing():
    return None

def add(a, b):
    return a + b

class Box:
    def __init__(self):
        self.n = 0

    def bump(self, k):
        self.n += k
        return self.n
'''


def per_call(fn, calls: int, repeats: int = 5) -> float:
    """Median over ``repeats`` batches of the mean seconds per call."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "submission"
        target.mkdir()
        (target / "ex9_bench.py").write_text(MODULE)
        client = WorkerClient(target, Path(tmp) / "work", read_paths=worker_read_paths(target))
        try:
            client.begin_test()
            ex = client.module("ex9_bench")
            box = ex.Box()
            q, k = torch.randn(4, 8), torch.randn(4, 8)
            cases = {
                "nothing()": ex.nothing,
                "add(4x8 tensor, 4x8 tensor)": lambda: ex.add(q, k),
                "box.bump(1) (object in the worker)": lambda: box.bump(1),
            }
            for fn in cases.values():
                per_call(fn, 200, repeats=1)  # warm-up
            print(f"confinement: {client.protections}")
            for name, fn in cases.items():
                print(f"{name:38s} {per_call(fn, args.calls) * 1e6:8.1f} us per call")
        finally:
            client.close()


if __name__ == "__main__":
    main()
