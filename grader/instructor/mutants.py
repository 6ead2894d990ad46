"""Mutants of the reference solutions: mutmut's operators and a few of our own, applied only inside the solution
blocks of ``solutions/exN_*.py`` (``generate``). ``grader.instructor.mutation`` grades, triages and counts them.

A mutant's id is stable across unrelated edits: ``exN-<hash>`` of the enclosing function, the changed source
line(s) before and after, and an occurrence number. libcst and mutmut are imported only when mutants are made,
so that ``python -m grader`` starts without them.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from grader import results
from grader.course import SOLUTIONS, TESTS_DIR, Block, segments


@dataclass(frozen=True)
class Mutant:
    id: str  # exN-<8 hex>
    exercise: str  # exN
    module: str  # exN_name
    function: str  # qualified name of the enclosing function, e.g. SpecialTokenizer.encode
    operator: str  # which operator made it
    line: int  # first changed line in the reference
    before: str  # the changed line(s) of the reference
    after: str  # the same line(s) in the mutant
    source: str  # the whole mutated file

    @property
    def change(self) -> str:
        return f"{self.before}  ->  {self.after}"


def solution_block_lines(text: str) -> set[int]:
    """1-based line numbers strictly inside a solution block (the markers themselves excluded)."""
    return {block.line + 1 + i for block in segments(text) if isinstance(block, Block) for i in range(len(block.body))}


def _extra_operators():
    """Operators mutmut does not have: statement removal, argument swap, integer - 1, slice off-by-one."""
    import libcst as cst

    def remove_statement(node):
        yield cst.SimpleStatementLine(body=[cst.Pass()], leading_lines=node.leading_lines)

    def swap_arguments(node):
        args = list(node.args)
        positional = [i for i, a in enumerate(args) if a.keyword is None and not a.star]
        for i, j in zip(positional, positional[1:]):
            swapped = list(args)
            swapped[i] = args[i].with_changes(value=args[j].value)
            swapped[j] = args[j].with_changes(value=args[i].value)
            yield node.with_changes(args=swapped)

    def integer_minus_one(node):
        value = node.evaluated_value
        if isinstance(value, int) and value > 0:
            yield node.with_changes(value=str(value - 1))

    def slice_off_by_one(node):
        for part in ("lower", "upper"):
            bound = getattr(node, part)
            if bound is None or isinstance(bound, cst.Integer):
                continue  # integers already get +1 and -1
            for op in (cst.Add(), cst.Subtract()):
                yield node.with_changes(**{part: cst.BinaryOperation(bound, op, cst.Integer("1"))})

    return [
        ("remove statement", (cst.SimpleStatementLine, cst.If, cst.For, cst.With, cst.Try), remove_statement),
        ("swap arguments", (cst.Call,), swap_arguments),
        ("integer - 1", (cst.Integer,), integer_minus_one),
        ("slice off by one", (cst.Slice,), slice_off_by_one),
    ]


def _operators():
    from mutmut.mutation.mutators import mutation_operators

    ops = [(f"mutmut {fn.__name__.removeprefix('operator_')}", (node_type,), fn) for node_type, fn in mutation_operators]
    return ops + _extra_operators() + _mistake_operators()


# -- the mistakes of issue 23: each class a student makes that mutmut's operators do not -------------------------

COPIES = {"list", "dict", "copy", "deepcopy"}  # f(x) that copies x (copy.copy, copy.deepcopy too)
CONSUMERS = {"list", "tuple", "set", "sorted", "sum", "max", "min", "any", "all"}  # f(x) that walks x to its end
IN_PLACE = {"masked_fill", "add", "sub", "mul", "div", "clamp", "fill"}  # tensor methods with an x_() twin


def _parameters(parents) -> set[str]:
    """The parameter names of the function ``parents`` end in (none at module level)."""
    import libcst as cst

    function = next((p for p in reversed(parents) if isinstance(p, cst.FunctionDef)), None)
    if function is None:
        return set()
    params = function.params
    return {p.name.value for p in [*params.posonly_params, *params.params, *params.kwonly_params]} - {"self"}


def _one_argument(node):
    """The single positional argument of a call, or None."""
    return node.args[0].value if len(node.args) == 1 and node.args[0].keyword is None and not node.args[0].star \
        else None


def _infinity(node) -> int:
    """+1 or -1 for an infinity (float("-inf"), math.inf, -torch.inf, ...), else 0."""
    import libcst as cst

    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        return -_infinity(node.expression)
    if isinstance(node, cst.Attribute) and node.attr.value == "inf" and isinstance(node.value, cst.Name):
        return 1 if node.value.value in ("math", "torch", "np", "numpy") else 0
    arg = _one_argument(node) if isinstance(node, cst.Call) else None
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "float" \
            and isinstance(arg, cst.SimpleString):
        word = str(arg.evaluated_value).strip().lower()
        return {"inf": 1, "+inf": 1, "infinity": 1, "-inf": -1, "-infinity": -1}.get(word, 0)
    return 0


def finite_sentinel(node):
    """-inf written as a large finite number (the -1e9 of many tutorials), +inf likewise."""
    import libcst as cst

    sign = _infinity(node)
    if sign:
        yield cst.parse_expression("-1e9" if sign < 0 else "1e9")


def edit_in_place(node, parents):
    """A copy dropped (list(x), dict(x), x.copy(), x.clone() -> x), a list concatenation made in place
    (row + [...] -> row.__iadd__([...])), a tensor method on an argument made in place (x.add(...) -> x.add_(...))."""
    import libcst as cst

    if isinstance(node, cst.BinaryOperation):
        if isinstance(node.operator, cst.Add) and isinstance(node.left, cst.Name) and \
                any(isinstance(n, cst.List) for n in _descendants(node.right)):
            yield cst.parse_expression(f"{node.left.value}.__iadd__({cst.Module([]).code_for_node(node.right)})")
        return
    func, arg = node.func, _one_argument(node)
    name = func.value if isinstance(func, cst.Name) else func.attr.value if isinstance(func, cst.Attribute) else ""
    if name in COPIES and isinstance(arg, (cst.Name, cst.Attribute)):
        yield arg
    elif isinstance(func, cst.Attribute) and name in ("copy", "clone") and not node.args:
        yield func.value
    elif isinstance(func, cst.Attribute) and name in IN_PLACE and isinstance(func.value, cst.Name) \
            and func.value.value in _parameters(parents):
        yield node.with_changes(func=func.with_changes(attr=cst.Name(name + "_")))


edit_in_place.parents = True


def consumed_twice(node, parents):
    """An iterable argument walked twice: f(ids) -> (f(ids), f(ids))[1] (a generator is empty the second time)."""
    import libcst as cst

    arg = _one_argument(node)
    if isinstance(node.func, cst.Name) and node.func.value in CONSUMERS and isinstance(arg, cst.Name) \
            and arg.value in _parameters(parents):
        code = cst.Module([]).code_for_node(node)
        yield cst.parse_expression(f"({code}, {code})[1]")


consumed_twice.parents = True


def default_dtype_or_device(node):
    """dtype=<the parameters' dtype> -> dtype=torch.float32, device=<...> -> device="cpu" (the defaults)."""
    import libcst as cst

    for i, arg in enumerate(node.args):
        keyword = arg.keyword.value if arg.keyword is not None else ""
        if keyword not in ("dtype", "device") or isinstance(arg.value, cst.SimpleString) or (
                isinstance(arg.value, cst.Attribute) and isinstance(arg.value.value, cst.Name)
                and arg.value.value.value == "torch"):
            continue  # a constant already (torch.bool, "cpu"): no default to fall back to
        default = cst.parse_expression("torch.float32" if keyword == "dtype" else '"cpu"')
        args = list(node.args)
        args[i] = arg.with_changes(value=default)
        yield node.with_changes(args=args)


class _IntoLoop:
    """What construction_into_loop yields: ``_splice`` moves the statement into the loop that follows it."""

    def deep_equals(self, other) -> bool:
        return False


def construction_into_loop(node):
    """x = SomeClass(...) before a loop moved to the top of the loop's body: one object per iteration."""
    import libcst as cst

    if len(node.body) != 1 or not isinstance(node.body[0], cst.Assign) or not isinstance(node.body[0].value, cst.Call):
        return
    func = node.body[0].value.func
    name = func.value if isinstance(func, cst.Name) else func.attr.value if isinstance(func, cst.Attribute) else ""
    if name[:1].isupper():
        yield _IntoLoop()


def _descendants(node):
    yield node
    for child in node.children:
        yield from _descendants(child)


def _mistake_operators():
    import libcst as cst

    return [
        ("finite sentinel for inf", (cst.Call, cst.UnaryOperation, cst.Attribute), finite_sentinel),
        ("in place instead of a copy", (cst.Call, cst.BinaryOperation), edit_in_place),
        ("iterable consumed twice", (cst.Call,), consumed_twice),
        ("default dtype or device", (cst.Call,), default_dtype_or_device),
        ("construction into a loop", (cst.SimpleStatementLine,), construction_into_loop),
    ]


def _skip(node, parents) -> bool:
    """Nodes whose mutants say nothing about the tests: docstrings, error message strings, annotations."""
    import libcst as cst

    in_raise = any(isinstance(p, cst.Raise) for p in parents)
    if in_raise and (isinstance(node, cst.BaseString) or any(isinstance(p, cst.BaseString) for p in parents)):
        return True  # the wording of an error message (a whole message dropped is still a mutant)
    if isinstance(node, cst.BaseString) and parents and isinstance(parents[-1], cst.Expr):
        return True  # a bare string statement (a docstring)
    return any(isinstance(p, cst.Annotation) for p in parents)


@dataclass
class _Parsed:
    """A solution file parsed once for every mutant made from it: the tree, node positions, and line offsets."""

    module: str
    text: str
    tree: object  # libcst.Module
    positions: object  # node -> CodeRange, without surrounding whitespace
    spans: object  # node -> CodeRange, whitespace included (what a replacement overwrites)
    lines: list[str]
    starts: list[int]  # offset of each line's first character in ``text``

    @classmethod
    def of(cls, module: str, text: str) -> "_Parsed":
        import libcst as cst
        from libcst.metadata import MetadataWrapper, PositionProvider, WhitespaceInclusivePositionProvider

        wrapper = MetadataWrapper(cst.parse_module(text))
        lines = text.splitlines(keepends=True)
        starts = [0]
        for line in lines:
            starts.append(starts[-1] + len(line))
        return cls(module, text, wrapper.module, wrapper.resolve(PositionProvider),
                   wrapper.resolve(WhitespaceInclusivePositionProvider), lines, starts)


def _walk(node, parents: list, qualname: list[str]) -> Iterator[tuple]:
    """Every node with its ancestors and the qualified name of the function or class it sits in."""
    import libcst as cst

    yield node, parents, qualname
    if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
        qualname = [*qualname, node.name.value]
    for child in node.children:
        yield from _walk(child, [*parents, node], qualname)


def _into_loop(parsed: _Parsed, node) -> str | None:
    """The file with the statement ``node`` moved to the top of the body of the first loop after it at its own
    indentation (None when no loop follows it there)."""
    import re

    lines = parsed.lines
    first, last = parsed.positions[node].start.line, parsed.positions[node].end.line
    indent = lines[first - 1][: len(lines[first - 1]) - len(lines[first - 1].lstrip())]
    for i in range(last, len(lines)):
        text = lines[i]
        if text.strip() and not text.startswith(indent):
            return None  # out of the statement's block: no loop follows it
        if re.match(rf"{re.escape(indent)}(for|while)\b.*:\s*(#.*)?$", text):
            body = next((t for t in lines[i + 1:] if t.strip()), "")
            inner = body[: len(body) - len(body.lstrip())]
            moved = [inner + t[len(indent):] if t.strip() else t for t in lines[first - 1:last]]
            return "".join(lines[: first - 1] + lines[last: i + 1] + moved + lines[i + 1:])
    return None


def _splice(parsed: _Parsed, node, new) -> str | None:
    """The file with ``node`` replaced by ``new``: text surgery at the node's span (no tree re-render)."""
    import libcst as cst

    if isinstance(new, _IntoLoop):
        return _into_loop(parsed, node)
    lines = parsed.lines
    if isinstance(new, cst.SimpleStatementLine) and isinstance(new.body[0], cst.Pass):
        first, last = parsed.positions[node].start.line, parsed.positions[node].end.line
        indent = lines[first - 1][: len(lines[first - 1]) - len(lines[first - 1].lstrip())]
        return "".join(lines[: first - 1]) + indent + "pass\n" + "".join(lines[last:])
    span = parsed.spans[node]
    start = parsed.starts[span.start.line - 1] + span.start.column
    end = parsed.starts[span.end.line - 1] + span.end.column
    return parsed.text[:start] + parsed.tree.code_for_node(new) + parsed.text[end:]


def _mutable(parsed: _Parsed, node, parents: list, block: set[int]) -> bool:
    """Whether ``node`` lies wholly inside a solution block and its mutants can say something about the tests."""
    import libcst as cst

    pos = parsed.positions.get(node)
    if pos is None or not all(line in block for line in range(pos.start.line, pos.end.line + 1)):
        return False
    if _skip(node, parents):
        return False
    # an elif: removing the whole if statement covers it
    return not (parents and isinstance(node, cst.If) and isinstance(parents[-1], cst.If))


def _sources_at(parsed: _Parsed, node, parents, operators, seen: set[str]) -> Iterator[tuple[str, str]]:
    """(operator name, mutated file) for each new mutant of ``node`` that still compiles."""
    for name, types, fn in operators:
        if not isinstance(node, types):
            continue
        for new in (fn(node, parents) if getattr(fn, "parents", False) else fn(node)):
            if new is node or new.deep_equals(node):
                continue
            source = _splice(parsed, node, new)
            if source is None or source in seen:
                continue
            seen.add(source)
            try:
                compile(source, f"{parsed.module}.py", "exec")
            except SyntaxError:
                continue
            yield name, source


def generate(module: str, text: str | None = None) -> list[Mutant]:
    """Every mutant of the solution blocks of ``solutions/<module>.py`` (or of ``text``), deduplicated."""
    text = (SOLUTIONS / f"{module}.py").read_text(encoding="utf-8") if text is None else text
    exercise = module.split("_", 1)[0]
    block = solution_block_lines(text)
    parsed = _Parsed.of(module, text)
    operators = _operators()
    seen: set[str] = {text}
    ids: dict[str, int] = {}  # how many mutants share a hash so far: the later ones get -2, -3...
    mutants: list[Mutant] = []
    for node, parents, qualname in _walk(parsed.tree, [], []):
        if not _mutable(parsed, node, parents, block):
            continue
        for name, source in _sources_at(parsed, node, parents, operators, seen):
            before, after, line = _changed_lines(text.splitlines(), source.splitlines())
            function = ".".join(qualname) or "<module>"
            key = hashlib.sha1(f"{module}\0{function}\0{before}\0{after}".encode()).hexdigest()[:8]
            n = ids.get(key, 0)
            ids[key] = n + 1
            mutant_id = f"{exercise}-{key}" + (f"-{n + 1}" if n else "")
            mutants.append(Mutant(mutant_id, exercise, module, function, name, line, before, after, source))
    return mutants

def _changed_lines(old: list[str], new: list[str]) -> tuple[str, str, int]:
    """The lines that differ (stripped, joined with ' / ') before and after, and the first one's number."""
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    a_lines, b_lines, first = [], [], 0
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            first = first or i1 + 1
            a_lines += [line.strip() for line in old[i1:i2]]
            b_lines += [line.strip() for line in new[j1:j2]]
    return " / ".join(a_lines), " / ".join(b_lines), first


def exercise_modules(exercises: Iterable[str] | None = None, tests_dir: Path = TESTS_DIR) -> dict[str, str]:
    points = results.load_points(tests_dir)
    chosen = list(exercises) if exercises else list(points)
    return {ex: points[ex]["name"] for ex in chosen}
