"""ATTACK disk_filler (kind: disk filler: files written until the disk under OUT is full).

What it tries: at import, write files of 32 MiB (each one just under RLIMIT_FSIZE, which caps one file, not
a total) into the working directory, its one writable folder, one after the other. Bounded, so that a failed
defence cannot fill the machine: at most 12 files (384 MiB), removed again before the import ends.

Why it must fail under the new design: the worker's writable folder is a tmpfs of 64 MiB in its own mount
namespace: the third file fails with ENOSPC. The import fails with the mark ``atk-disk_filler: ...`` saying
how much was written before the refusal, and the exercise scores 0.
"""

import os

TAG = "atk-disk_filler"
CHUNK = b"\0" * 2**20


def _attack() -> str:
    written, names, outcome = 0, [], "not refused"
    try:
        for i in range(12):  # the bound: 384 MiB at most
            name = f"fill-{i}.bin"
            names.append(name)
            with open(name, "wb") as f:
                for _ in range(32):
                    f.write(CHUNK)
                    written += len(CHUNK)
                f.flush()
                os.fsync(f.fileno())
    except OSError as exc:
        outcome = f"refused ({type(exc).__name__} errno {exc.errno})"
    finally:
        for name in names:
            try:
                os.unlink(name)
            except OSError:
                pass
    return f"{written // 2**20} MiB written, {outcome}"


raise RuntimeError(f"{TAG}: {_attack()}")
