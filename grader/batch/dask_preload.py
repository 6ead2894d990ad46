"""Warm a Dask worker before its first task: torch and the grading modules imported, torch on one thread.

``--scheduler local:N`` starts its workers from a forkserver that imports this module first, so each worker is
forked warm instead of importing torch itself (seconds of CPU each). On a cluster started elsewhere,
``dask worker ... --preload grader.batch.dask_preload`` warms each worker when it starts (``dask_setup``), before
any batch reaches it. Either way the first task still starts the judge session (the suites are collected then).
"""

from grader.judge.session import preload

# torch's symbolic shapes too (what grader.judge.session.preload(flop_counter=True) imports): a suite that counts FLOPs
# pays them here, a suite that does not loses nothing but half a second of this process's start-up.
preload(flop_counter=True)


def dask_setup(worker) -> None:
    """``dask worker --preload grader.batch.dask_preload``: the import above did the work."""
