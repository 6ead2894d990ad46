"""The setup's last step: write the bytecode (``.pyc``) of the packages grading imports, once, into the venv.

pip compiles every file it installs; uv leaves it to the first import, which writes it then, unless
``PYTHONDONTWRITEBYTECODE`` is set (some shells, CI images and containers set it). There every process would
compile torch again, about 2 s more per process that imports it (4.7 s of CPU instead of 1.8 s, measured on 2
cores), and grading starts several such processes, the project's tests hundreds. Importing the packages once with
the variable unset writes the bytecode of exactly what is imported: for the student's set, about as long as one
first import takes anyway; compiling the whole venv (uv's ``--compile-bytecode``) took 30 s here.

Standard library only, Python 3.8 and later: it runs from grader/install.py before anything is installed.
"""

from __future__ import annotations

from pathlib import Path

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


def modules(extras: str) -> list:
    """The modules to import for ``--extras`` (``dev,dask``), in order and once each."""
    groups = ["", *(e.strip() for e in extras.split(",") if e.strip())]
    return list(dict.fromkeys(m for group in groups for m in IMPORTED.get(group, ())))


def command(python: Path, extras: str) -> tuple:
    """(the command, its environment): the venv's Python imports them with bytecode writing on."""
    # an empty value is "unset" to Python; the setup's run_step adds these to the environment it has
    return [str(python), "-c", _IMPORT_EACH, *modules(extras)], {"PYTHONDONTWRITEBYTECODE": "", "MPLBACKEND": "Agg"}
