"""Exercise 3: parameter accounting -- count every parameter of TinyLM by hand, then check against PyTorch.

The lesson's headline says a Transformer block has about ``12·d²`` parameters: ``4d²`` in attention (the
query, key, value and output projections, each ``d × d``) and ``2·d·d_ff`` in the feed-forward layer (``8d²``
when ``d_ff = 4d``). That is an estimate. Here you write the exact count of every component, measure the real
count with ``numel``, and build a table that explains every difference between estimate and exact count.

Symbols used below (all read from a ``ModelConfig``)::

    V = cfg.vocab_size      T = cfg.context_length    d = cfg.d_model
    L = cfg.n_layers        d_ff = cfg.ffn_dim        (cfg.d_ff, or 4·d when cfg.d_ff is None)

Where the parameters are (see ``llm_basics/model.py`` and ``llm_basics/attention.py``)::

    TinyLM
      tok_emb   nn.Embedding(V, d)                 V·d
      pos_emb   nn.Embedding(T, d)                 T·d
      blocks    L × TransformerBlock
        norm1   LayerNorm(d) or RMSNorm(d)         2·d  (LayerNorm: weight + bias)
                                                   d    (LayerNorm with bias=False, or RMSNorm: weight only)
        attn    q_proj, k_proj, v_proj, out_proj   4·d² + 4·d   (each nn.Linear(d, d): d² weights + d biases)
        norm2   same as norm1
        ffn     fc1 = Linear(d, d_ff), fc2 = Linear(d_ff, d)   2·d·d_ff + d_ff + d
      norm_f    same as norm1
      lm_head   nn.Linear(d, V, bias=False)        V·d, or 0 when tied: with ``cfg.tie_weights`` the head uses
                                                   the very same tensor as tok_emb, and a tensor is counted once

``cfg.bias=False`` removes every bias: the Linear biases and the LayerNorm bias (RMSNorm never has one).
``n_heads`` changes nothing: the heads split the ``d`` columns of the projections among themselves; they do
not add weights.

Worked example, ``ModelConfig(vocab_size=10, context_length=4, d_model=4, n_heads=2, n_layers=1)``
(d_ff = 16, LayerNorm with bias, tied head)::

    attention   4·16 + 4·4          = 80      ffn    2·4·16 + 16 + 4 = 148
    norm1/norm2 2·4                 = 8 each  blocks 80 + 148 + 8 + 8 = 244
    token_embedding 10·4 = 40, position_embedding 4·4 = 16, final_norm 8, lm_head 0 (tied)
    total 40 + 16 + 244 + 8 + 0 = 308 == sum(p.numel() for p in TinyLM(cfg).parameters())

Every count below is an ``int`` (``80``, not ``80.0``), and every dict of counts holds ints.

Tip: ``with torch.device("meta"): model = TinyLM(cfg)`` builds a model whose tensors have shapes but no data,
so even a GPT-2 sized model costs no memory and no time to build, and ``p.numel()`` still works.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from llm_basics.model import ModelConfig, TinyLM

# The rows of the table made by explain(), in this order.
COMPONENTS = (
    "token_embedding",
    "position_embedding",
    "attention",
    "ffn",
    "block_norms",
    "final_norm",
    "lm_head",
)


def attention_params(d_model: int, *, bias: bool = True) -> int:
    """Exact number of parameters of one ``MultiHeadAttention(d_model, n_heads, bias=bias)``.

    Four ``nn.Linear(d, d)`` projections (q, k, v, out): each has ``d·d`` weights, plus ``d`` biases when
    ``bias`` is true. The number of heads does not appear: heads share out the columns, they add nothing.

    Example::

        >>> attention_params(4)                 # 4·16 + 4·4
        80
        >>> attention_params(4, bias=False)     # 4·16
        64
    """
    # 1. the weight matrices of the four projections
    # 2. plus one bias vector of length d per projection, only when bias is true
    # BEGIN SOLUTION TODO: return 4·d² weights, plus 4·d biases when bias is true
    weights = 4 * d_model * d_model
    biases = 4 * d_model if bias else 0
    return weights + biases
    # END SOLUTION


def ffn_params(d_model: int, d_ff: int, *, bias: bool = True) -> int:
    """Exact number of parameters of one ``FeedForward(d_model, d_ff, bias=bias)``.

    ``fc1 = Linear(d, d_ff)`` has ``d·d_ff`` weights and ``d_ff`` biases; ``fc2 = Linear(d_ff, d)`` has
    ``d_ff·d`` weights and ``d`` biases. The GELU between them has no parameters.

    Example::

        >>> ffn_params(4, 16)                  # 2·4·16 + 16 + 4
        148
        >>> ffn_params(4, 16, bias=False)      # 2·4·16
        128
    """
    # 1. the two weight matrices
    # 2. the two bias vectors (lengths d_ff and d), only when bias is true
    # BEGIN SOLUTION TODO: return 2·d·d_ff weights, plus d_ff + d biases when bias is true
    weights = 2 * d_model * d_ff
    biases = d_ff + d_model if bias else 0
    return weights + biases
    # END SOLUTION


def norm_params(d_model: int, *, kind: str = "layernorm", bias: bool = True) -> int:
    """Exact number of parameters of ``make_norm(kind, d_model, bias=bias)``.

    - ``"layernorm"``: a scale (weight) of length d, plus a shift (bias) of length d when ``bias`` is true.
    - ``"rmsnorm"``: a scale of length d only; RMSNorm has no bias whatever ``bias`` says.
    - any other kind: raise ``ValueError`` naming the kind (``str(kind)`` is in the message).

    Example::

        >>> norm_params(4, kind="layernorm", bias=True), norm_params(4, kind="layernorm", bias=False)
        (8, 4)
        >>> norm_params(4, kind="rmsnorm", bias=True)
        4
    """
    # 1. LayerNorm: weight, and bias when asked for
    # 2. RMSNorm: weight only
    # 3. anything else is a mistake in the config
    # BEGIN SOLUTION TODO: d for the weight, plus d for a LayerNorm bias; RMSNorm has no bias; else ValueError
    if kind == "layernorm":
        return 2 * d_model if bias else d_model
    if kind == "rmsnorm":
        return d_model
    raise ValueError(f"unknown norm kind {kind!r}; expected 'layernorm' or 'rmsnorm'")
    # END SOLUTION


def block_params(cfg: ModelConfig) -> dict[str, int]:
    """Exact parameter count of one ``TransformerBlock(cfg)``, per component, from the formulas above.

    Returns ``{"attention": ..., "ffn": ..., "norm1": ..., "norm2": ...}``. Use ``cfg.ffn_dim`` (not
    ``cfg.d_ff``, which may be None) for the hidden width of the FFN. ``cfg.n_heads`` plays no part.

    Example::

        >>> block_params(ModelConfig(vocab_size=10, context_length=4, d_model=4, n_heads=2, n_layers=1))
        {'attention': 80, 'ffn': 148, 'norm1': 8, 'norm2': 8}
    """
    # 1. one attention, one FFN, two norms (before attention and before the FFN)
    # BEGIN SOLUTION TODO: call attention_params, ffn_params and norm_params with the sizes from cfg
    d = cfg.d_model
    return {
        "attention": attention_params(d, bias=cfg.bias),
        "ffn": ffn_params(d, cfg.ffn_dim, bias=cfg.bias),
        "norm1": norm_params(d, kind=cfg.norm, bias=cfg.bias),
        "norm2": norm_params(d, kind=cfg.norm, bias=cfg.bias),
    }
    # END SOLUTION


def model_params(cfg: ModelConfig) -> dict[str, int]:
    """Exact parameter count of ``TinyLM(cfg)``, per component, from the formulas above.

    Returns ``{"token_embedding": V·d, "position_embedding": T·d, "blocks": L × one block,
    "final_norm": ..., "lm_head": ...}``.

    ``lm_head`` is ``V·d`` when the head is untied, and **0 when tied** (``cfg.tie_weights``): then the head
    multiplies by the token embedding matrix itself, the same tensor, so its numbers are already counted under
    ``token_embedding`` (``model.parameters()`` also yields a shared tensor only once). The head never has a
    bias. The values add up to ``sum(p.numel() for p in TinyLM(cfg).parameters())``.

    Example::

        >>> model_params(ModelConfig(vocab_size=10, context_length=4, d_model=4, n_heads=2, n_layers=1))
        {'token_embedding': 40, 'position_embedding': 16, 'blocks': 244, 'final_norm': 8, 'lm_head': 0}
    """
    # 1. the two embedding tables: one row of d numbers per token id, and per position
    # 2. L identical blocks (use block_params)
    # 3. the final norm, then the head: its own V x d matrix, or nothing new when tied
    # BEGIN SOLUTION TODO: embeddings V·d and T·d, L blocks, the final norm, and V·d for the head unless tied
    d = cfg.d_model
    return {
        "token_embedding": cfg.vocab_size * d,
        "position_embedding": cfg.context_length * d,
        "blocks": cfg.n_layers * sum(block_params(cfg).values()),
        "final_norm": norm_params(d, kind=cfg.norm, bias=cfg.bias),
        "lm_head": 0 if cfg.tie_weights else cfg.vocab_size * d,
    }
    # END SOLUTION


def measured_params(module: nn.Module) -> dict[str, int]:
    """Measured parameter count of each top-level child of ``module`` (a ``TinyLM`` or a ``TransformerBlock``).

    Returns ``{child_name: number of parameters}`` for every child in ``module.named_children()`` order, e.g.
    ``{"tok_emb": ..., "pos_emb": ..., "blocks": ..., "norm_f": ..., "lm_head": ...}`` for a TinyLM and
    ``{"norm1": ..., "attn": ..., "norm2": ..., "ffn": ...}`` for a block. A child without parameters gets 0.

    Count with ``p.numel()``, but count each tensor **once**: a tied head's weight *is* ``tok_emb.weight``
    (the same object), so it belongs to the first child that holds it (``tok_emb``) and the head gets 0. Keep
    a set of ``id(p)`` already counted, like ``module.parameters()`` does. Then the values add up to
    ``sum(p.numel() for p in module.parameters())``. Works on meta tensors too, and on any module: for a
    ``FeedForward`` it gives ``{"fc1": ..., "act": 0, "fc2": ...}`` (the GELU has no parameters).

    Example::

        >>> cfg = ModelConfig(vocab_size=10, context_length=4, d_model=4, n_heads=2, n_layers=1)
        >>> measured_params(TinyLM(cfg))
        {'tok_emb': 40, 'pos_emb': 16, 'blocks': 244, 'norm_f': 8, 'lm_head': 0}
    """
    # 1. walk the children in order, remembering which tensors were already counted
    # 2. add p.numel() of each tensor not seen before to the child's count
    # BEGIN SOLUTION TODO: sum p.numel() per named child, skipping tensors already counted (tied weights)
    seen: set[int] = set()
    counts: dict[str, int] = {}
    for name, child in module.named_children():
        counts[name] = 0
        for p in child.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            counts[name] += p.numel()
    return counts
    # END SOLUTION


def explain(cfg: ModelConfig) -> list[dict]:
    """A table that compares the headline estimate, the exact formula and the real model, one row per component.

    Returns one dict per name in ``COMPONENTS`` (in that order), each with the keys:

    - ``"component"``: the name (``"block_norms"`` is norm1 + norm2 of all L blocks; ``"attention"`` and
      ``"ffn"`` are summed over all L blocks too);
    - ``"formula"``: the exact formula as a readable string in the symbols V, T, d, d_ff, L, e.g.
      ``"L·(4·d² + 4·d)"`` (any readable spelling is fine);
    - ``"approx"``: the lesson's headline estimate, which ignores biases and norms: ``L·4·d²`` for attention,
      ``L·2·d·d_ff`` for the FFN, 0 for both norm rows, ``V·d`` and ``T·d`` for the embeddings, and for the
      head ``V·d`` when untied, 0 when tied;
    - ``"exact"``: the count from your formulas (``model_params`` / ``block_params``);
    - ``"measured"``: the count from a real ``TinyLM(cfg)`` with ``measured_params`` (build it on the meta
      device, see the module docstring, so a big config costs nothing);
    - ``"difference"``: ``exact - approx``;
    - ``"why"``: one sentence (a non-empty ``str``) that explains the difference, using these words (upper or
      lower case): ``"bias"`` when biases make the difference; ``"norm"`` in both norm rows; ``"embedding"``
      in both embedding rows; ``"heads"`` in the attention row (say that n_heads does not change the count);
      ``"tied"`` for a tied head (counted once, under token_embedding) and ``"untied"`` for an untied one.
      With ``cfg.bias=False`` no bias makes a difference: the attention and ffn rows then have a difference
      of 0, and their "why" says that the estimate is exact because there is no bias (e.g. "no bias, so the
      estimate is exact"; the attention row still says that n_heads does not change the count).

    The ``exact`` column and the ``measured`` column both add up to
    ``sum(p.numel() for p in TinyLM(cfg).parameters())``.

    Example (the config of the module docstring)::

        >>> cfg = ModelConfig(vocab_size=10, context_length=4, d_model=4, n_heads=2, n_layers=1)
        >>> [(r["component"], r["approx"], r["exact"], r["difference"]) for r in explain(cfg)]
        [('token_embedding', 40, 40, 0), ('position_embedding', 16, 16, 0), ('attention', 64, 80, 16),
         ('ffn', 128, 148, 20), ('block_norms', 0, 16, 16), ('final_norm', 0, 8, 8), ('lm_head', 0, 0, 0)]
    """
    # 1. exact counts from the formulas, measured counts from a model built on the meta device
    # 2. the measured block rows: add measured_params(block)["attn"] (and "ffn", "norm1" + "norm2") over the blocks
    # 3. one row per component: formula, approx, exact, measured, difference, why
    # BEGIN SOLUTION TODO: build the seven rows described above
    V, T, d, L, d_ff = cfg.vocab_size, cfg.context_length, cfg.d_model, cfg.n_layers, cfg.ffn_dim
    exact = model_params(cfg)
    block = block_params(cfg)

    with torch.device("meta"):
        model = TinyLM(cfg)
    top = measured_params(model)
    per_block = [measured_params(b) for b in model.blocks]

    if cfg.norm == "rmsnorm":
        norm_formula, norms_formula, norm_what = "d", "L·2·d", "RMSNorm has a weight of d numbers and no bias"
    elif cfg.bias:
        norm_formula, norms_formula, norm_what = "2·d", "L·4·d", "LayerNorm has a weight and a bias, d numbers each"
    else:
        norm_formula, norms_formula, norm_what = "d", "L·2·d", "LayerNorm without bias has a weight of d numbers"
    norm_why = "; norms are left out of the estimate"

    if cfg.bias:
        attention_why = "the four projections each have a bias of d numbers; n_heads does not change the count"
        ffn_why = "fc1 has a bias of d_ff numbers and fc2 a bias of d numbers"
    else:
        attention_why = "no bias, so the estimate is exact; n_heads does not change the count"
        ffn_why = "no bias, so the estimate is exact"

    if cfg.tie_weights:
        head = ("0 (tied: shares tok_emb)", 0, "tied: the head shares the token embedding matrix, counted once there")
    else:
        head = ("V·d", V * d, "untied: the head has its own V×d matrix and no bias, so the estimate is exact")

    rows = [
        ("token_embedding", "V·d", V * d, exact["token_embedding"], top["tok_emb"],
         "an embedding table is exactly one row of d numbers per token id"),
        ("position_embedding", "T·d", T * d, exact["position_embedding"], top["pos_emb"],
         "a position embedding table is exactly one row of d numbers per position"),
        ("attention", "L·(4·d² + 4·d)" if cfg.bias else "L·4·d²", L * 4 * d * d, L * block["attention"],
         sum(b["attn"] for b in per_block), attention_why),
        ("ffn", "L·(2·d·d_ff + d_ff + d)" if cfg.bias else "L·2·d·d_ff", L * 2 * d * d_ff, L * block["ffn"],
         sum(b["ffn"] for b in per_block), ffn_why),
        ("block_norms", norms_formula, 0, L * (block["norm1"] + block["norm2"]),
         sum(b["norm1"] + b["norm2"] for b in per_block), f"each block has two norms: each {norm_what}{norm_why}"),
        ("final_norm", norm_formula, 0, exact["final_norm"], top["norm_f"], f"the final {norm_what}{norm_why}"),
        ("lm_head", head[0], head[1], exact["lm_head"], top["lm_head"], head[2]),
    ]
    return [
        {
            "component": component,
            "formula": formula,
            "approx": approx,
            "exact": exact_count,
            "measured": measured,
            "difference": exact_count - approx,
            "why": why,
        }
        for component, formula, approx, exact_count, measured, why in rows
    ]
    # END SOLUTION


def format_table(rows: list[dict]) -> str:
    """Render the rows of :func:`explain` as a plain-text table (one ``str`` of lines).

    * the FIRST line is a header;
    * then one line per row, in the order given, that starts with the row's component and holds its formula,
      its approx, exact, measured and difference, and its why;
    * the LAST line starts with ``"total"`` (any case) and holds the sums of the approx, exact, measured and
      difference columns.

    Write every number with thousands separators: ``f"{n:,}"`` (``124,439,808``). Column widths and spacing
    are up to you. A Markdown table is fine too: "starts with" then ignores the leading ``|`` and spaces, and
    the separator line (``|---|---|...``) right after the header is the one extra line allowed.

    Example (abridged)::

        component           formula           approx     exact  measured  difference  why
        token_embedding     V·d                   40        40        40           0  an embedding table ...
        ...
        total                                    248       308       308          60
    """
    # 1. the header, then one line per row, then the total line
    # BEGIN SOLUTION TODO: join a header, one line per row and a "total" line with f"{n:,}" numbers
    columns = ("approx", "exact", "measured", "difference")
    names = [r["component"] for r in rows] + ["component", "total"]
    name_w = max(len(n) for n in names)
    formula_w = max([len(r["formula"]) for r in rows] + [len("formula")])
    totals = {c: sum(r[c] for r in rows) for c in columns}
    num_w = max([len(f"{r[c]:,}") for r in rows for c in columns] + [len(f"{v:,}") for v in totals.values()])
    num_w = max(num_w, len("difference"))

    def line(name: str, formula: str, numbers: list[str], why: str) -> str:
        cells = "  ".join(n.rjust(num_w) for n in numbers)
        return f"{name.ljust(name_w)}  {formula.ljust(formula_w)}  {cells}  {why}".rstrip()

    lines = [line("component", "formula", list(columns), "why")]
    for r in rows:
        lines.append(line(r["component"], r["formula"], [f"{r[c]:,}" for c in columns], r["why"]))
    lines.append(line("total", "", [f"{totals[c]:,}" for c in columns], ""))
    return "\n".join(lines)
    # END SOLUTION
