"""Objects of the given lesson code that a test hands to student code, as plain data and back.

The judge turns a ``BPETokenizer``, a ``ModelConfig`` or a module of ``llm_basics`` (``TinyLM``,
``TransformerBlock``, ...) into plain data; the worker rebuilds an equal object with trusted code of
``llm_basics``. Modules travel as their constructor arguments, their device and (for real tensors) their
weights, so that the student code gets exactly the model the test built, never an object of the judge's.
"""

from __future__ import annotations

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
    if t.__name__ in MODULES and MODULES[t.__name__] is t:
        device = next((p.device.type for p in obj.parameters()), "cpu")
        state = {} if device == "meta" else {k: v.detach() for k, v in obj.state_dict().items()}
        return "module", {"class": t.__name__, "args": _module_args(obj), "device": device, "state": state,
                          "training": obj.training}
    return None


def from_plain(kind: str, value):
    """Rebuild what ``to_plain`` described (runs in the worker, on data from the judge)."""
    if kind == "ModelConfig":
        return ModelConfig(**value)
    if kind == "BPETokenizer":
        return BPETokenizer({(a, b): new for a, b, new in value})
    if kind == "module":
        cls = MODULES[value["class"]]
        args = dict(value["args"])
        if "cfg" in args:
            args["cfg"] = ModelConfig(**args["cfg"])
        with torch.device(value["device"]):
            module = cls(**args)
        if value["state"]:
            module.load_state_dict(value["state"])
        module.train(value["training"])
        return module
    raise ValueError(f"unknown kind {kind!r}")
