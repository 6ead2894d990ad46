"""Read what students hand in: the code of a notebook's ``%%exercise`` cells, as the modules a kernel run saves
(``exercise_sources``), written out as ``.py`` files (``extract_submission``), and which notebook is whose in a
``submitted/`` folder (``find_notebooks``). A notebook is the student's: it is read as JSON, never run here.
"""

from __future__ import annotations

import json
from pathlib import Path

from grader.platforms.nbgrader.cell import MODULE_RE
from grader.platforms.nbgrader.notebook import ASSIGNMENT, NOTEBOOK


def exercise_sources(notebook: Path | str) -> dict[str, str]:
    """NAME -> code of the notebook's ``%%exercise NAME`` cells: the module a kernel run saves and grades.

    The cells of one name are joined in notebook order; a ``%%exercise NAME --start`` cell begins the module
    afresh (as running the notebook from the top does). A name that is not an exercise module name (``ex2_x``)
    is left out: the notebook is the student's, and ``%%exercise ../../x`` must not become a path.
    """
    try:
        return sources_of_cells(json.loads(Path(notebook).read_text())["cells"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{notebook}: not a readable notebook ({type(exc).__name__}: {exc})"[:300]) from None


def source_of(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def sources_of_cells(cells: list[dict]) -> dict[str, str]:
    """``exercise_sources`` of a notebook's cells (raises KeyError, TypeError... on a malformed cell)."""
    pieces: dict[str, list[str]] = {}
    for cell in cells:
        source = source_of(cell)
        first, _, body = source.partition("\n")
        words = first.split()
        if cell["cell_type"] != "code" or words[:1] != ["%%exercise"] or len(words) not in (2, 3):
            continue
        if not MODULE_RE.match(words[1]) or (len(words) == 3 and words[2] != "--start"):
            continue
        if len(words) == 3:
            pieces[words[1]] = []
        pieces.setdefault(words[1], []).append(body.strip("\n"))
    return {name: "\n\n\n".join(parts) + "\n" for name, parts in pieces.items()}


def extract_submission(notebook: Path | str, out_dir: Path | str) -> list[Path]:
    """Write every ``%%exercise`` cell of a notebook as ``<out_dir>/<name>.py``: the same code a cell grades."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, body in exercise_sources(notebook).items():
        path = out / f"{name}.py"
        path.write_text(body)
        written.append(path)
    return written


def find_notebooks(paths: list[Path | str]) -> tuple[dict[str, Path], list[str]]:
    """(student id -> notebook, problems) from notebook files and ``submitted/`` folders.

    A folder holds one subfolder per student (nbgrader's ``submitted/<student>/<assignment>/<notebook>``); the
    student's notebook is the one named ``lesson1.ipynb``, or else the only one. A notebook file given directly
    is the student named by its path (``submitted/<student>/lesson1/...``) or else by its file name.
    """
    found: dict[str, Path] = {}
    problems: list[str] = []

    def add(student: str, notebook: Path) -> None:
        if student in found:  # never two notebooks into one folder, where the second would overwrite files
            problems.append(f"{student}: {notebook} left out, {found[student]} was taken for this student")
        else:
            found[student] = notebook

    for path in map(Path, paths):
        if path.is_file():
            add(path.parent.parent.name if path.parent.name == ASSIGNMENT else path.stem, path)
            continue
        if not path.is_dir():
            problems.append(f"{path}: no such notebook or folder")
            continue
        for folder in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
            notebooks = [p for p in sorted(folder.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts]
            named = [p for p in notebooks if p.name == NOTEBOOK]
            chosen = named if len(named) == 1 else notebooks
            if len(chosen) == 1:
                add(folder.name, chosen[0])
            else:
                problems.append(f"{folder.name}: {len(notebooks)} notebooks in {folder}, expected one {NOTEBOOK}")
    return found, problems
