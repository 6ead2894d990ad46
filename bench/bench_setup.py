"""How long is a student's first `make grade`, from a clean clone with only Python and pip? And CI's install?

Each variant is a git ref and an installer: ``uv`` (the setup's default), ``pip`` (the same ref with
``GRADER_SETUP=pip``: the path taken where uv cannot be had) or ``as-is`` (a ref from before uv, with
``--before REF``). For each, a scratch clone runs `make setup` (the venv and every dependency) and then `make
grade`, as a student's first `make grade` does, with pip's and uv's caches both empty (fresh folders). With
``--ci``, another clean clone of each variant times CI's install step (`make .venv/.installed-dev`: what
`.ci/run` -> `make test` installs before the tests). Variants run in turn, round after round, so that a change in
the machine's load hits each alike. Each timed run starts once the disk has written out what the run before it
left and the load average is under 1 (or after two minutes). Prints the median of each, with the load average at
its start and the system CPU seconds the setup took: other work on the machine changes these figures a lot, and so
does the kernel's speed at creating files, which a load average does not show. Run from the repository root:

    .venv/bin/python bench/bench_setup.py [--rounds 3] [--ci] [--before REF] [--also REF] [--installers uv,pip] [REF]

pip and uv use the machine's configuration (its index, --find-links, constraints: uv gets pip's, translated by
grader/install.py): on this project's machines the torch wheel comes from the local disk, so the figures leave
out its download (192 MB for the CPU build).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CI_INSTALL = ".venv/.installed-dev"  # the Makefile's DEV stamp: everything `make test` installs


def _clone(ref: str, scratch: Path) -> Path:
    clone = scratch / f"clone-{time.time_ns()}"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    subprocess.run(["git", "checkout", "-q", ref], cwd=clone, check=True)
    return clone


def _environment(installer: str, scratch: Path) -> dict:
    """Empty caches for pip and uv; pip's path forced for the ``pip`` variant."""
    stamp = time.time_ns()
    env = {**os.environ, "PIP_CACHE_DIR": str(scratch / f"pip-cache-{stamp}"),
           "UV_CACHE_DIR": str(scratch / f"uv-cache-{stamp}")}
    env.pop("GRADER_SETUP", None)
    if installer == "pip":
        env["GRADER_SETUP"] = "pip"
    return env


def _timed_make(targets: list[str], clone: Path, env: dict) -> list[tuple[float, float]]:
    """(seconds, the kernel's CPU seconds in them) of each target. The kernel's share is the figure that moves: on
    this project's machines the same unpack of torch's wheel (12,000 files) took 5 s of system CPU one minute and
    12 s a few minutes later, at a load under 1, and the setup's time follows it."""
    times = []
    for target in targets:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime
        start = time.perf_counter()
        subprocess.run(["make", target], cwd=clone, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime - before))
    return times


def _cleanup(clone: Path, env: dict) -> None:
    subprocess.run(["rm", "-rf", str(clone), env["PIP_CACHE_DIR"], env["UV_CACHE_DIR"]], check=True)


def _settle(patience: float = 120.0) -> float:
    """Wait until the disk has written out what the previous run left (its files, its removal) and the 1-minute load
    average is under 1, or ``patience`` seconds; the load average then. Each install writes about a gigabyte, and one
    timed while the previous one's writes still drain measured 13 s in one round and 22 s in the next."""
    os.sync()
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        dirty = 0
        try:
            with open("/proc/meminfo") as meminfo:
                dirty = sum(int(line.split()[1]) for line in meminfo if line.startswith(("Dirty:", "Writeback:")))
        except OSError:
            pass
        if dirty < 32_000 and os.getloadavg()[0] < 1.0:
            break
        time.sleep(2)
    return os.getloadavg()[0]


def first_grade(ref: str, installer: str, scratch: Path) -> tuple[float, float, float, float]:
    """(setup seconds, first grade seconds, the 1-minute load average at the start, the setup's system CPU seconds)
    for one clean clone."""
    clone, env = _clone(ref, scratch), _environment(installer, scratch)
    load = _settle()
    (setup, system), (grade, _) = _timed_make(["setup", "grade"], clone, env)
    _cleanup(clone, env)
    return setup, grade, load, system


def ci_install(ref: str, installer: str, scratch: Path) -> float:
    """Seconds of CI's install step (everything `make test` installs) in one clean clone, caches empty."""
    clone, env = _clone(ref, scratch), _environment(installer, scratch)
    _settle()
    ((seconds, _),) = _timed_make([CI_INSTALL], clone, env)
    _cleanup(clone, env)
    return seconds


def _variants(args) -> dict[str, tuple[str, str]]:
    """{label: (commit, installer)}."""
    def sha(ref: str) -> str:
        return subprocess.run(["git", "rev-parse", "--short", ref], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    out = {f"{ref} {installer}": (sha(ref), installer) for ref in [args.ref, *args.also]
           for installer in args.installers.split(",")}
    if args.before:
        out[f"{args.before} (before)"] = (sha(args.before), "as-is")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", nargs="?", default="HEAD")
    parser.add_argument("--before", help="a ref from before uv, timed as it is (pip)")
    parser.add_argument("--also", action="append", default=[], help="another ref timed like REF, in the same rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--installers", default="uv,pip", help="which of REF's paths to time (uv, pip)")
    parser.add_argument("--ci", action="store_true", help="also time CI's install step in its own clean clone")
    args = parser.parse_args()
    variants = _variants(args)
    got: dict[str, list[tuple[float, float, float, float]]] = {label: [] for label in variants}
    ci: dict[str, list[float]] = {label: [] for label in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for label, (sha, installer) in variants.items():
                setup, grade, load, system = first_grade(sha, installer, Path(tmp))
                got[label].append((setup, grade, load, system))
                print(f"round {round_ + 1} {label} ({sha}): setup {setup:5.1f} s (system CPU {system:4.1f} s),"
                      f" first grade {grade:4.1f} s, total {setup + grade:5.1f} s, load {load:.1f}", flush=True)
                if args.ci:
                    ci[label].append(ci_install(sha, installer, Path(tmp)))
                    print(f"round {round_ + 1} {label} ({sha}): CI install {ci[label][-1]:5.1f} s,"
                          f" load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"median of {args.rounds} clean clones, {os.cpu_count()} cores, pip's and uv's caches empty:")
    for label, rows in got.items():
        setup, grade = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
        total = statistics.median(r[0] + r[1] for r in rows)
        loads = ", ".join(f"{r[2]:.1f}" for r in rows)
        systems = ", ".join(f"{r[3]:.1f}" for r in rows)
        ci_part = f", CI install {statistics.median(ci[label]):5.1f} s" if ci[label] else ""
        print(f"  {label:22s} setup {setup:5.1f} s + first grade {grade:4.1f} s = {total:5.1f} s{ci_part}"
              f"   (load {loads}; the setup's system CPU {systems} s)")


if __name__ == "__main__":
    main()
