"""The import graph of grader/: every grader -> grader import, at module level, inside functions, under
TYPE_CHECKING or a ``__main__`` guard, and the ``importlib.import_module`` table of grader/cli.py
(``_OPTIONAL_COMMANDS``). ``pytest -s`` prints it; the test fails on any cycle not in KNOWN.

``from grader.batch import scheduler`` counts as an edge to ``grader.batch.scheduler`` and to the package face
``grader.batch`` it runs first."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Cycles still to break, each as printed by cycles(): none (serve reads judge.suite/verdicts/student/state, never
# judge.plugin). A new cycle is broken where it appears, not listed here.
KNOWN: set[str] = set()


def modules(root: Path = REPO) -> dict[str, Path]:
    """Dotted name -> file, for every module and package of grader/."""
    found = {}
    for path in sorted((root / "grader").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def dynamic_imports(root: Path = REPO) -> dict[str, set[str]]:
    """importlib.import_module targets, read from the code: grader/cli.py's _OPTIONAL_COMMANDS table."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse((root / "grader" / "cli.py").read_text())):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_OPTIONAL_COMMANDS":
            found["grader.cli"] = {elt.elts[0].value for elt in node.value.elts}
    return found


def _targets(current: str, node: ast.Import | ast.ImportFrom, mods: dict[str, Path]):
    if isinstance(node, ast.Import):
        names = [(alias.name, None) for alias in node.names]
    else:
        if node.level:
            base = current.split(".") if mods[current].name == "__init__.py" else current.split(".")[:-1]
            module = ".".join(base[: len(base) - node.level + 1] + [node.module or ""]).strip(".")
        else:
            module = node.module or ""
        names = [(module, alias.name) for alias in node.names]
    for module, name in names:
        if name and f"{module}.{name}" in mods:  # from grader.batch import scheduler: the submodule and its face
            yield f"{module}.{name}"
            if module in mods and module != "grader":
                yield module
            continue
        while module and module not in mods:
            module = module.rpartition(".")[0]
        if module and module != "grader":
            yield module


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    """Module -> the grader modules it imports (lazy ones included)."""
    mods = modules(root)
    dynamic = dynamic_imports(root)
    graph = {m: set(dynamic.get(m, ())) for m in mods}
    for module, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[module] |= {t for t in _targets(module, node, mods) if t != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """Every elementary cycle, each once, starting from its smallest module name."""
    found: list[str] = []

    def visit(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                found.append(" -> ".join([*path, start]))
            elif nxt > start and nxt not in path:
                visit(start, nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, start, [start])
    return found


def test_import_graph_has_no_cycle():
    graph = import_graph()
    print(f"\nimport graph of grader/: {len(graph)} modules, {sum(map(len, graph.values()))} edges")
    for module in sorted(graph):
        print(f"  {module} -> {', '.join(sorted(graph[module])) or '-'}")
    found = cycles(graph)
    for cycle in found:
        print(f"  cycle: {cycle}{'  (known)' if cycle in KNOWN else ''}")
    assert not set(found) - KNOWN, f"import cycles: {sorted(set(found) - KNOWN)}"
    assert not KNOWN - set(found), f"cycles in KNOWN that are gone (take them out): {sorted(KNOWN - set(found))}"


def test_the_graph_sees_lazy_and_dynamic_imports(tmp_path):
    """Positive control: a cycle through a function-level import and one through cli's import table are found."""
    (tmp_path / "grader" / "pkg").mkdir(parents=True)
    (tmp_path / "grader" / "__init__.py").write_text("")
    (tmp_path / "grader" / "pkg" / "__init__.py").write_text("")
    (tmp_path / "grader" / "a.py").write_text("from grader import b\n")
    (tmp_path / "grader" / "b.py").write_text("def f():\n    from grader.a import x\n")
    (tmp_path / "grader" / "pkg" / "tool.py").write_text("def main():\n    from grader.cli import build_parser\n")
    (tmp_path / "grader" / "cli.py").write_text('_OPTIONAL_COMMANDS = (("grader.pkg.tool", "add"),)\n')
    found = cycles(import_graph(tmp_path))
    assert "grader.a -> grader.b -> grader.a" in found
    assert "grader.cli -> grader.pkg.tool -> grader.cli" in found
