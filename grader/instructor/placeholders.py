"""Placeholders: submissions that compute nothing, made from the reference's signatures, which must score 0.

``placeholder_source(module, kind)`` is the solution file with the body of every function that holds a solution
block replaced by one line (its signature and docstring kept): a call of ``_placeholder`` with the function's
name, its return annotation and its arguments. What comes back depends on ``kind`` and the annotation:

=============  ==================================================================================================
zeros          a zero of the annotated type: ``zeros_like`` of the first tensor argument, 0, 0.0, "", [], {}
empty          an empty result: a tensor of shape (0, 1, 1) (``allclose`` broadcasts it), [], "", {}, ()
constant       one fixed value of the annotated type, whatever the arguments: ones, 1, 1.0, "placeholder", [1]
echo           its first argument, unchanged
previous       the first argument of the previous call (so ``decode(encode(s))`` gives ``s`` back)
value_error    always raises ValueError (code that validates nothing and computes nothing)
type_error     always raises TypeError
always_equal   values of the annotated type whose ``==`` is always True (they cross the wire as plain values)
validates      the reference's argument checks (each block up to its last ``raise``, no ``return``), then zeros
=============  ==================================================================================================

A function whose annotation is ``None`` (``__init__``, ``save``) only leaves its mark (and raises, for the two
raising kinds). Every call prints ``MARK``, the function's name and the kind, so a test of the corpus can show
that the placeholder ran (a placeholder that fails to import proves nothing). The hand-written exploits of
``project_tests/placeholders/`` (one file each, named ``<exploit>.exN_name.py``) join the generated ones:
``corpus()`` lists both as submission folders' contents, ``check_placeholders`` grades them in one judge
session and reports any test one of them passes (``python -m grader check``).
"""

from __future__ import annotations

import ast
import tempfile
import textwrap
from pathlib import Path

from grader.course import REPO_ROOT, SOLUTIONS, TESTS_DIR, Block, segments
from grader.results import load_points

KINDS = ("zeros", "empty", "constant", "echo", "previous", "value_error", "type_error", "always_equal", "validates")
EXPLOITS = REPO_ROOT / "project_tests" / "placeholders"
MARK = "placeholder called:"

# Appended to every generated module: the one function each placeholder body calls.
PRELUDE = '''

_PREVIOUS = [None]


def _placeholder(kind, name, annotation, args):
    """What a placeholder returns (grader.instructor.placeholders): nothing computed from ``args``."""
    print("''' + MARK + ''' " + name + " (" + kind + ")")
    first = args[0] if args else None
    if kind == "value_error":
        raise ValueError("placeholder")
    if kind == "type_error":
        raise TypeError("placeholder")
    if annotation == "None":
        return None
    kind = "zeros" if kind == "validates" else kind
    if kind == "echo":
        return first
    if kind == "previous":
        before, _PREVIOUS[0] = _PREVIOUS[0], first
        return before
    return _value(kind, ast.parse(annotation, mode="eval").body, args)


class _Equal:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__


def _equal(value):
    cls = type(value)
    return type("AlwaysEqual" + cls.__name__.title(), (_Equal, cls), {"__hash__": cls.__hash__})(value)


def _value(kind, node, args):
    """A value of the type ``node`` (an annotation's AST) for ``kind``."""
    import torch

    node = node.left if isinstance(node, ast.BinOp) else node  # int | None: an int
    name = ast.unparse(node.value if isinstance(node, ast.Subscript) else node).split(".")[-1]
    inner = node.slice.elts if isinstance(getattr(node, "slice", None), ast.Tuple) else (
        [node.slice] if isinstance(node, ast.Subscript) else [])
    if name == "Tensor":
        like = next((a for a in args if isinstance(a, torch.Tensor)), torch.zeros(1))
        if kind == "empty":
            return torch.empty(0, 1, 1, dtype=like.dtype)
        return torch.ones_like(like) if kind == "constant" else torch.zeros_like(like)
    if name == "tuple":
        return () if kind == "empty" else tuple(_value(kind, n, args) for n in inner)
    plain = {"int": (0, 1), "float": (0.0, 1.0), "bool": (False, True), "str": ("", "placeholder")}
    if name in plain:
        value = plain[name][kind in ("constant", "always_equal")] if kind != "empty" else plain[name][0]
        return _equal(value) if kind == "always_equal" and name != "bool" else value
    if name in ("list", "Sequence"):
        value = [] if kind in ("zeros", "empty") else [_value(kind, inner[0] if inner else ast.Name("int"), args)]
        return _equal(value) if kind == "always_equal" else value
    if name == "dict":
        value = {} if kind in ("zeros", "empty") else {"placeholder": 1}
        return _equal(value) if kind == "always_equal" else value
    return None
'''


def _block_functions(tree: ast.Module, block_lines: set[int]) -> list[ast.FunctionDef]:
    """The outermost functions (and methods) whose body holds a line of a solution block."""
    found = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef):
                if any(child.lineno <= line <= child.end_lineno for line in block_lines):
                    found.append(child)
            elif isinstance(child, ast.ClassDef):
                visit(child)

    visit(tree)
    return found


def _call_line(function: ast.FunctionDef, kind: str) -> str:
    """``return _placeholder(kind, name, annotation, (arguments...))``, self and cls left out."""
    args = function.args
    names = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs] if a.arg not in ("self", "cls")]
    annotation = ast.unparse(function.returns) if function.returns is not None else "None"
    arguments = "(" + "".join(f"{n}, " for n in names) + ")"
    return f"return _placeholder({kind!r}, {function.name!r}, {annotation!r}, {arguments})"


def _checks(text: str, function: ast.FunctionDef) -> list[str]:
    """The argument checks of ``function``: each of its solution blocks that raises, up to its last raise."""
    out = []
    for block in segments(text):
        if not isinstance(block, Block) or not function.lineno < block.line < function.end_lineno:
            continue
        source = textwrap.dedent("".join(block.body))
        body = ast.parse(source).body
        raising = [i for i, node in enumerate(body) if any(isinstance(n, ast.Raise) for n in ast.walk(node))]
        if raising:  # the statements up to the last check, without those that return a computed answer
            kept = [node for node in body[:raising[-1] + 1]
                    if not any(isinstance(n, ast.Return) for n in ast.walk(node))]
            lines = block.body
            out += [line for node in kept for line in lines[node.lineno - 1:node.end_lineno]]
    return out


def placeholder_source(module: str, kind: str, text: str | None = None) -> str:
    """The solution of ``module`` with every function that holds a solution block replaced by a placeholder."""
    if kind not in KINDS:
        raise ValueError(f"no placeholder kind {kind!r} (one of {', '.join(KINDS)})")
    text = (SOLUTIONS / f"{module}.py").read_text(encoding="utf-8") if text is None else text
    lines = text.splitlines(keepends=True)
    block_lines = {part.line for part in segments(text) if isinstance(part, Block)}
    tree = ast.parse(text)
    for function in sorted(_block_functions(tree, block_lines), key=lambda f: f.lineno, reverse=True):
        body = function.body
        has_doc = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
        start = body[0].end_lineno if has_doc else body[0].lineno - 1  # the docstring stays, the steps go
        indent = " " * body[0].col_offset
        checks = _checks(text, function) if kind == "validates" else []
        lines[start:function.end_lineno] = [*checks, indent + _call_line(function, kind) + "\n"]
    return "".join(lines) + "\nimport ast  # noqa: E402 (the placeholder's own)\n" + PRELUDE


def modules() -> dict[str, str]:
    """Exercise id -> module name, in course order (the manifest)."""
    return {ex: meta["name"] for ex, meta in load_points().items()}


def corpus() -> dict[str, dict[str, str]]:
    """Submission name -> {file name: source}: one submission per generated kind (every exercise in it), one per
    hand-written exploit of ``project_tests/placeholders/`` (its exercise alone)."""
    out = {f"placeholder-{kind}": {f"{module}.py": placeholder_source(module, kind) for module in modules().values()}
           for kind in KINDS}
    for path in sorted(EXPLOITS.glob("*.ex*_*.py")):
        exploit, module = path.name.split(".")[:2]
        out[f"exploit-{exploit}"] = {f"{module}.py": path.read_text(encoding="utf-8")}
    return out


def _problems_of(name: str, files: dict[str, str], doc: dict) -> list[str]:
    """What the results document of one corpus submission shows wrong: a point earned, or a placeholder of a
    graded exercise that was never called in any of its tests."""
    problems = [f"{name} passed {t['extra_data']['nodeid']}" for t in doc["tests"] if t["score"]]
    graded = {f"{m}.py" for m in modules().values()}
    for file_name in files:
        exercise = file_name.split("_", 1)[0]
        outputs = "".join(t["extra_data"].get("captured_output", "") for t in doc["tests"]
                          if t["extra_data"].get("exercise") == exercise)
        if file_name in graded and MARK not in outputs:
            problems.append(f"{name}: no placeholder of {file_name} was called (did it import?)")
    return problems


def grade_submissions(submissions: dict[str, dict[str, str]], tests_dir: Path = TESTS_DIR, *,
                      server=None) -> dict[str, dict]:
    """Grade each submission (name -> {file name: source}) on the exercises of its files, hidden tests included,
    one after the other in one judge session (a judge forked per submission); returns name -> results document."""
    from grader.grading import grade
    from grader.judge.session import JudgeSession, Limits

    docs = {}
    with tempfile.TemporaryDirectory(prefix="placeholders-") as tmp:
        own = server is None
        if own:
            server = JudgeSession.for_suites(list(load_points(tests_dir)), hidden=True, tmpdir=Path(tmp),
                                             limits=Limits(), tests_dir=tests_dir, flop_counter=True)
        try:
            for name, files in submissions.items():
                folder = Path(tmp) / name
                folder.mkdir()
                for file_name, source in files.items():
                    (folder / file_name).write_text(source, encoding="utf-8")
                exercises = sorted({file_name.split("_", 1)[0] for file_name in files})
                docs[name] = grade(folder, exercises=exercises, hidden=True, tests_dir=tests_dir, server=server)
        finally:
            if own:
                server.close()
    return docs


def grade_corpus(tests_dir: Path = TESTS_DIR, *, server=None, only: list[str] | None = None) -> dict[str, dict]:
    """Grade every corpus submission (``only``: those names); returns name -> results document."""
    chosen = {name: files for name, files in corpus().items() if only is None or name in only}
    return grade_submissions(chosen, tests_dir, server=server)


def check_placeholders(tests_dir: Path = TESTS_DIR, *, server=None) -> tuple[bool, list[str]]:
    """Every placeholder scores 0 in every test of its exercise, and was called."""
    docs = grade_corpus(tests_dir, server=server)
    problems = [p for name, files in corpus().items() for p in _problems_of(name, files, docs[name])]
    return not problems, problems
