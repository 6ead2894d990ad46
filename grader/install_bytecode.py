"""The setup's last step: write the bytecode (``.pyc``) of the packages grading imports, once, into the venv.

pip compiles every file it installs; uv leaves it to the first import, which writes it then, unless
``PYTHONDONTWRITEBYTECODE`` is set (some shells, CI images and containers set it). There every process would
compile torch again, about 2 s more per process that imports it (4.7 s of CPU instead of 1.8 s, measured on 2
cores), and grading starts several such processes, the project's tests hundreds. Importing the packages once with
the variable unset writes the bytecode of exactly what is imported: for the student's set, about as long as one
first import takes anyway; compiling the whole venv (uv's ``--compile-bytecode``) took 30 s here.

Faster still where the lock fits the machine (its platform and Python, as for its hashes): ``make lock`` records
in ``requirements.imports`` the files under site-packages that these imports load, and the step compiles exactly
those, in one process per core, without importing anything (1.8 s for the student's set against 5.4 s for the
imports, 2 cores). Elsewhere, or where the list was made from another lock, the imports do it as above.

Standard library only, Python 3.8 and later: it runs from grader/install.py before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LIST = REPO_ROOT / "requirements.imports"
LIST_HEADER = """\
# requirements.imports: made by `make lock` (python -m grader.lockfile) with requirements.lock; do not edit.
# The files under site-packages that grading's imports load (grader/install_bytecode.py), by group of the
# project's dependencies: the setup compiles exactly these, in parallel, where the lock fits the machine.
# lock: {digest}
"""

# what each group of the project's dependencies brings into a grading (or test) process
IMPORTED = {
    "": ("torch", "numpy", "pytest", "pytest_timeout", "hypothesis", "rich", "watchfiles", "psutil"),
    "dev": ("torch._dynamo", "torch.optim", "jsonschema", "nbgrader", "matplotlib.pyplot", "copydetect"),
    "dask": ("distributed",),
    "bench": ("matplotlib.pyplot",),
}
# each import on its own: a package that fails to import leaves the others compiled (and the setup's check,
# after this step, names what is missing). torch's modules in this process, the others in a forked child at the
# same time: two cores take about the time of torch alone
_IMPORT_EACH = ("import importlib, os, sys\n"
                "names = sys.argv[1:]\n"
                "child = os.fork() if hasattr(os, 'fork') else None\n"
                "if child is not None:\n"
                "    names = [n for n in names if (n.split('.')[0] == 'torch') == (child != 0)]\n"
                "for name in names:\n"
                "    try:\n"
                "        importlib.import_module(name)\n"
                "    except Exception:\n"
                "        pass\n"
                "if child == 0:\n"
                "    os._exit(0)\n"
                "if child:\n"
                "    os.waitpid(child, 0)\n")


# the listed files, compiled without importing anything: the largest first, dealt out to one process per core
# (forked; one process where there is no fork), each file as the import system would write it (a timestamp .pyc,
# even where SOURCE_DATE_EPOCH would make py_compile write hash-checked ones, which every import then re-reads),
# and none whose .pyc is already up to date (a second setup over the same venv)
_COMPILE_EACH = ("import compileall, os, py_compile, sys, sysconfig\n"
                 "root = sysconfig.get_paths()['purelib']\n"
                 "paths = [os.path.join(root, line) for line in open(sys.argv[1], encoding='utf-8').read().splitlines()]\n"
                 "paths = sorted((p for p in paths if os.path.isfile(p)), key=os.path.getsize, reverse=True)\n"
                 "n = max(1, min(os.cpu_count() or 1, 16)) if hasattr(os, 'fork') else 1\n"
                 "children, mine = [], paths[0::n]\n"
                 "for k in range(1, n):\n"
                 "    pid = os.fork()\n"
                 "    if pid == 0:\n"
                 "        children, mine = None, paths[k::n]\n"
                 "        break\n"
                 "    children.append(pid)\n"
                 "for path in mine:\n"
                 "    try:\n"
                 "        compileall.compile_file(path, quiet=2,  # skips a file whose .pyc is up to date\n"
                 "                                invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)\n"
                 "    except Exception:\n"
                 "        pass\n"
                 "if children is None:\n"
                 "    os._exit(0)\n"
                 "for pid in children:\n"
                 "    os.waitpid(pid, 0)\n")


def groups(extras: str) -> list:
    """The groups of ``--extras`` (``dev,dask``), the student's own ("") first."""
    return list(dict.fromkeys(["", *(e.strip() for e in extras.split(",") if e.strip())]))


def modules(extras: str) -> list:
    """The modules to import for ``--extras`` (``dev,dask``), in order and once each."""
    return list(dict.fromkeys(m for group in groups(extras) for m in IMPORTED.get(group, ())))


def lock_digest(lock: Path) -> str:
    return hashlib.sha256(lock.read_bytes()).hexdigest()


def listed(extras: str, lock: Path, listing: Path = LIST) -> list | None:
    """The files (relative to site-packages) that ``extras``' imports load, as ``make lock`` recorded them with
    ``lock``; None without a list, or with one made from another lock."""
    try:
        text = listing.read_text(encoding="utf-8")
        made_with = text.split("# lock: ", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
    if not lock.is_file() or made_with != lock_digest(lock):
        return None
    wanted, files, group = set(groups(extras)), [], None
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
        elif line and not line.startswith("#") and group in wanted:
            files.append(line)
    return files


STUDENT_HEADER = """\
# requirements.imports: the files under site-packages that grading imports. The setup (grader/install.py)
# writes their bytecode once, in parallel, so that no grading process compiles torch again. Made with
# requirements.lock; do not edit.
# lock: {digest}
"""


def student_list(text: str) -> str:
    """A student's copy of ``requirements.imports`` (the release): the student's own group, and a header that names
    nothing the release leaves out."""
    digest = text.split("# lock: ", 1)[1].split()[0]
    own = text.split("\n[]\n", 1)[1].split("\n[", 1)[0]
    return STUDENT_HEADER.format(digest=digest) + "[]\n" + own.rstrip("\n") + "\n"


def command(python: Path, extras: str, *, files: list | None = None, scratch: Path | None = None) -> tuple:
    """(the command, its environment). With ``files`` (``listed``) and a ``scratch`` folder: the venv's Python
    compiles those files; else it imports ``extras``' modules with bytecode writing on."""
    if files and scratch is not None:
        names = scratch / "bytecode-files.txt"
        names.write_text("\n".join(files) + "\n", encoding="utf-8")
        return [str(python), "-c", _COMPILE_EACH, str(names)], {}
    # an empty value is "unset" to Python; the setup's run_step adds these to the environment it has
    return [str(python), "-c", _IMPORT_EACH, *modules(extras)], {"PYTHONDONTWRITEBYTECODE": "", "MPLBACKEND": "Agg"}


# what ``make lock`` runs in each group's own process: the files under site-packages its imports loaded
# (only files of the installed distributions other than the project: the project's own editable-install helpers
# are not in a student's venv)
_RECORD = ("import importlib, os, sys, sysconfig\n"
           "from importlib.metadata import packages_distributions\n"
           "root = sysconfig.get_paths()['purelib'] + os.sep\n"
           "for name in sys.argv[2:]:\n"
           "    try:\n"
           "        importlib.import_module(name)\n"
           "    except Exception:\n"
           "        pass\n"
           "owners, files = packages_distributions(), set()\n"
           "for module in list(sys.modules.values()):\n"
           "    path = getattr(module, '__file__', None)\n"
           "    if isinstance(path, str) and path.endswith('.py') and path.startswith(root):\n"
           "        name = os.path.relpath(path, root).replace(os.sep, '/')\n"
           "        top = name.split('/')[0]\n"
           "        top = top[:-3] if top.endswith('.py') else top\n"
           "        if [d for d in owners.get(top, []) if d.lower().replace('_', '-') != sys.argv[1]]:\n"
           "            files.add(name)\n"
           "print('\\n'.join(sorted(files)))\n")


def record(python: Path, lock: Path, project: str = "llm-basics-lesson1", only: tuple | None = None) -> str:
    """The text of ``requirements.imports`` for the venv of ``python`` (the tested one) and ``lock``: each group's
    files (of the groups in ``only``, else of all), in a fresh process per group, each file under the first group
    that loads it."""
    sections, seen = [], set()
    for group, names in IMPORTED.items():
        if only is not None and group not in only:
            continue
        # as in a student's process: setuptools' distutils shim loads at start-up unless told otherwise
        env = {k: v for k, v in os.environ.items() if k != "SETUPTOOLS_USE_DISTUTILS"}
        env["MPLBACKEND"] = "Agg"
        out = subprocess.run([str(python), "-c", _RECORD, project, *names], capture_output=True, text=True, check=True,
                             env=env).stdout.split()
        new = [f for f in out if f not in seen]
        seen.update(new)
        sections.append(f"[{group}]\n" + "".join(f + "\n" for f in new))
    return LIST_HEADER.format(digest=lock_digest(lock)) + "".join(sections)
