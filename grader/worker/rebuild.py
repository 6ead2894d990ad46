"""Objects of the given lesson code that a test hands to student code, as plain data and back, and what the worker
sees of them during a call.

The judge turns a ``BPETokenizer``, a ``ModelConfig`` or a module of ``llm_basics`` (``TinyLM``,
``TransformerBlock``, ...) into plain data; the worker rebuilds an equal object with trusted code of
``llm_basics``. Modules travel as their constructor arguments, their device, their dtype and (for real tensors)
their weights, so that the student code gets exactly the model the test built, never an object of the judge's.
A :class:`OneShot` travels as its items and is rebuilt as a generator: code that walks it twice finds it empty
the second time, as it would with any iterator (one message, not one call back per item).

:func:`watch` is what an observed call (``Worker.observe``) records in the worker: how many lesson modules the call
built, and the grad mode of every module forward it ran. The student code runs in the same process and could
change what is recorded: a test uses it only to take points from a mistake, never to award them.
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch

from llm_basics.attention import MultiHeadAttention
from llm_basics.model import FeedForward, ModelConfig, RMSNorm, TinyLM, TransformerBlock
from llm_basics.tokenizer import BPETokenizer


def _module_args(module: torch.nn.Module) -> dict:
    """The constructor arguments that rebuild ``module`` (recorded by the lesson classes themselves)."""
    if isinstance(module, (TinyLM, TransformerBlock)):
        return {"cfg": dataclasses.asdict(module.cfg)}
    if isinstance(module, MultiHeadAttention):
        return {"d_model": module.d_model, "n_heads": module.n_heads, "bias": module.q_proj.bias is not None,
                "causal": module.causal}
    if isinstance(module, FeedForward):
        return {"d": module.fc1.in_features, "d_ff": module.fc1.out_features, "bias": module.fc1.bias is not None}
    if isinstance(module, RMSNorm):
        return {"d": module.weight.numel(), "eps": module.eps}
    if isinstance(module, torch.nn.LayerNorm):
        return {"normalized_shape": list(module.normalized_shape), "eps": module.eps,
                "elementwise_affine": module.elementwise_affine, "bias": module.bias is not None}
    raise TypeError(f"cannot send a {type(module).__name__}")


class OneShot:
    """Items a test hands to the student code as a one-shot iterable (a generator in the worker)."""

    def __init__(self, items) -> None:
        self.items = list(items)

    def __repr__(self) -> str:
        return f"<one-shot iterable of {len(self.items)} items>"


MODULES = {
    cls.__name__: cls
    for cls in (TinyLM, TransformerBlock, MultiHeadAttention, FeedForward, RMSNorm, torch.nn.LayerNorm)
}


def to_plain(obj) -> tuple[str, object] | None:
    """(kind, plain value) for an object of the lesson code, or None when ``obj`` is not one."""
    t = type(obj)
    if t is ModelConfig:
        return "ModelConfig", dataclasses.asdict(obj)
    if t is BPETokenizer:
        return "BPETokenizer", [[a, b, new] for (a, b), new in obj.merges.items()]
    if t is OneShot:
        return "OneShot", obj.items
    if t.__name__ in MODULES and MODULES[t.__name__] is t:
        first = next(obj.parameters(), None)
        device = "cpu" if first is None else first.device.type
        state = {} if device == "meta" else {k: v.detach() for k, v in obj.state_dict().items()}
        return "module", {"class": t.__name__, "args": _module_args(obj), "device": device, "state": state,
                          "training": obj.training, "dtype": torch.float32 if first is None else first.dtype}
    return None


def from_plain(kind: str, value):
    """Rebuild what ``to_plain`` described (runs in the worker, on data from the judge)."""
    if kind == "ModelConfig":
        return ModelConfig(**value)
    if kind == "BPETokenizer":
        return BPETokenizer({(a, b): new for a, b, new in value})
    if kind == "OneShot":
        return (item for item in list(value))
    if kind == "module":
        cls = MODULES[value["class"]]
        args = dict(value["args"])
        if "cfg" in args:
            args["cfg"] = ModelConfig(**args["cfg"])
        with torch.device(value["device"]):
            module = cls(**args)
        if value.get("dtype", torch.float32) != torch.float32:  # a float64 or bfloat16 model stays one
            module.to(value["dtype"])
        if value["state"]:
            module.load_state_dict(value["state"])
        module.train(value["training"])
        return module
    raise ValueError(f"unknown kind {kind!r}")


@contextlib.contextmanager
def watch():
    """Record, while the block runs, the lesson modules built (class name -> count) and the grad mode of every
    module forward: ``{"built": {...}, "grad": [False]}`` (each grad mode seen once, in the order first seen)."""
    seen: dict = {"built": {}, "grad": []}
    inits = {cls: cls.__dict__["__init__"] for cls in MODULES.values()}

    def counting(cls, init):
        def __init__(self, *args, **kwargs):
            seen["built"][cls.__name__] = seen["built"].get(cls.__name__, 0) + 1
            init(self, *args, **kwargs)

        return __init__

    def forward_seen(module, args):
        mode = torch.is_grad_enabled()
        if mode not in seen["grad"]:
            seen["grad"].append(mode)

    hook = torch.nn.modules.module.register_module_forward_pre_hook(forward_seen)
    for cls, init in inits.items():
        cls.__init__ = counting(cls, init)
    try:
        yield seen
    finally:
        hook.remove()
        for cls, init in inits.items():
            cls.__init__ = init
