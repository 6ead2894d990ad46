"""Every limit and output cap of grading, written once: the session's ``Limits``, the worker client's, the plugin's
option defaults, the warm-up and the caps on what student code can put in a record all read these names.

Change a limit here and nowhere else."""

from __future__ import annotations

# per test, on the student's code
CPU_SECONDS = 10.0  # CPU time of the student's code per test (the reference needs well under 1 s)
WALL_SECONDS = 60.0  # wall-clock backstop per test, for code that sleeps or blocks rather than computes
MEMORY_BYTES = 4 * 2**30  # address space a worker may add: a runaway allocation is a MemoryError, not swapping
OUTPUT_BYTES = 32 * 2**20  # bytes a child may write to any file (captured prints included)
DISK_BYTES = 64 * 2**20  # every file the worker writes, together (its private tmpfs, grader.worker.confine)

# per judge
JUDGE_MEMORY_BYTES = 2 * 2**30  # what a forked judge may add to what it holds: its tests, oracles and replies

# what student text may take up in a record (grader.results escapes it; these keep it short)
OUTPUT_CHARS = 2000  # printed output kept per test
REASON_CHARS = 300  # the one-line reason a student reads for a lost point
MESSAGE_CHARS = 2000  # an exception's message, as the worker sends it back
