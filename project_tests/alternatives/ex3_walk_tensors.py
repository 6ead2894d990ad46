"""A correct ex3_parameter_accounting written differently from the reference (must score 25/25).

Differences: the formulas are written in factored form (``4·d·(d + bias)``, ``(d + 1)·d_ff + (d_ff + 1)·d``
minus the biases); the measured count assigns each tensor to its owner by walking ``module.parameters()`` once
and looking the tensor up in a map from id to child (built in reverse so the FIRST child wins for a shared
tensor); explain() measures attention and FFN by module type over ``model.modules()`` and gets the block norms
as what is left of the blocks; the rows are built from a dict of tuples.
"""

import torch

from llm_basics.attention import MultiHeadAttention
from llm_basics.model import FeedForward, TinyLM

COMPONENTS = ("token_embedding", "position_embedding", "attention", "ffn", "block_norms", "final_norm", "lm_head")


def attention_params(d_model, *, bias=True):
    return 4 * d_model * (d_model + int(bool(bias)))


def ffn_params(d_model, d_ff, *, bias=True):
    with_bias = (d_model + 1) * d_ff + (d_ff + 1) * d_model
    return with_bias if bias else with_bias - d_ff - d_model


def norm_params(d_model, *, kind="layernorm", bias=True):
    if kind == "rmsnorm":
        return d_model
    if kind != "layernorm":
        raise ValueError(f"norm kind {kind!r} is neither layernorm nor rmsnorm")
    return d_model * 2 if bias else d_model


def block_params(cfg):
    n = norm_params(cfg.d_model, kind=cfg.norm, bias=cfg.bias)
    return dict(attention=attention_params(cfg.d_model, bias=cfg.bias),
                ffn=ffn_params(cfg.d_model, cfg.ffn_dim, bias=cfg.bias), norm1=n, norm2=n)


def model_params(cfg):
    d = cfg.d_model
    out = dict(token_embedding=cfg.vocab_size * d, position_embedding=cfg.context_length * d)
    out["blocks"] = cfg.n_layers * sum(block_params(cfg).values())
    out["final_norm"] = norm_params(d, kind=cfg.norm, bias=cfg.bias)
    out["lm_head"] = 0 if cfg.tie_weights else d * cfg.vocab_size
    return out


def measured_params(module):
    children = list(module.named_children())
    owner = {}
    for name, child in reversed(children):
        for p in child.parameters():
            owner[id(p)] = name  # earlier children overwrite later ones: the first holder wins
    counts = {name: 0 for name, _ in children}
    for p in module.parameters():
        if id(p) in owner:
            counts[owner[id(p)]] += p.numel()
    return counts


def explain(cfg):
    V, T, d, L, f = cfg.vocab_size, cfg.context_length, cfg.d_model, cfg.n_layers, cfg.ffn_dim
    with torch.device("meta"):
        model = TinyLM(cfg)
    top = measured_params(model)
    attn = sum(sum(p.numel() for p in m.parameters()) for m in model.modules() if isinstance(m, MultiHeadAttention))
    ffn = sum(sum(p.numel() for p in m.parameters()) for m in model.modules() if isinstance(m, FeedForward))
    block_norms = top["blocks"] - attn - ffn
    ex = model_params(cfg)
    bp = block_params(cfg)
    table = {
        "token_embedding": ("V d", V * d, ex["token_embedding"], top["tok_emb"], "one embedding vector per token"),
        "position_embedding": ("T d", T * d, ex["position_embedding"], top["pos_emb"],
                               "one embedding vector per position"),
        "attention": ("L (4 d^2 + 4 d)", 4 * L * d * d, L * bp["attention"], attn,
                      "bias vectors of the four projections; splitting into heads adds nothing"),
        "ffn": ("L (2 d d_ff + d_ff + d)", 2 * L * d * f, L * bp["ffn"], ffn, "bias vectors of fc1 and fc2"),
        "block_norms": ("2 L d (x2 with LayerNorm bias)", 0, L * (bp["norm1"] + bp["norm2"]), block_norms,
                        "norm scales (and LayerNorm shifts) are not in the estimate"),
        "final_norm": ("d (x2 with LayerNorm bias)", 0, ex["final_norm"], top["norm_f"],
                       "the final norm is not in the estimate"),
        "lm_head": ("tied: 0" if cfg.tie_weights else "V d", 0 if cfg.tie_weights else V * d, ex["lm_head"],
                    top["lm_head"], "Tied to tok_emb" if cfg.tie_weights else "Untied output matrix"),
    }
    return [
        {"component": k, "formula": fo, "approx": a, "exact": e, "measured": m, "difference": e - a, "why": w}
        for k, (fo, a, e, m, w) in table.items()
    ]


def format_table(rows):
    total = {c: sum(r[c] for r in rows) for c in ("approx", "exact", "measured", "difference")}
    lines = ["component,formula,approx,exact,measured,difference,why"]
    lines += [f"{r['component']}\t{r['formula']}\t{r['approx']:,}\t{r['exact']:,}\t{r['measured']:,}\t"
              f"{r['difference']:,}\t{r['why']}" for r in rows]
    lines.append("TOTAL\t\t" + "\t".join(f"{v:,}" for v in total.values()))
    return "\n".join(lines)
