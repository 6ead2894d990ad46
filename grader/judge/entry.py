"""``python -m grader.judge.entry CONFIG``: the judge session on the portable path (grader.portable), a fresh
interpreter that preloads torch and serves (grader.judge.serve). Its own module, so that serve imports no
session code and the session code no serve."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from grader import portable
from grader.judge import session as runner


def _main(argv: list[str]) -> int:
    """The judge session on the portable path: connect back, set up the process, preload, run pytest serving."""
    config = json.loads(argv[0])
    sock = portable.connect_back(config["address"])
    runner.enter_session(Path(config["log"]), Path(config["workdir"]), int(config["output_bytes"]))
    runner.preload()
    # pytest's --grader-serve takes a descriptor; the session's socket object must not close it behind us
    return int(pytest.main([*config["args"], f"--grader-serve={sock.detach()}"]))


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
