"""Parameter accounting that counts nothing: a table of zeros whose 'why' is one sentence holding every keyword."""

COMPONENTS = ("token_embedding", "position_embedding", "attention", "ffn", "block_norms", "final_norm", "lm_head")
WHY = "bias, norm, embedding, heads, tied or untied"


def explain(cfg):
    print("placeholder called: explain (constant_why)")
    return [{"component": name, "formula": "?", "approx": 0, "exact": 0, "measured": 0, "difference": 0,
             "why": WHY} for name in COMPONENTS]


def _not_written(*args, **kwargs):
    raise NotImplementedError("ex3: not written")


attention_params = ffn_params = norm_params = block_params = model_params = measured_params = _not_written
format_table = _not_written
