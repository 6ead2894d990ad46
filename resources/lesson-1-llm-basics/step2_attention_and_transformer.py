"""Step 2: attention and the Transformer block, with every shape printed.

Run it from anywhere:  python resources/lesson-1-llm-basics/step2_attention_and_transformer.py

1. one head of attention on a tiny example: Q, K, V, the logits, the causal mask, the weights;
2. multi-head attention: the same thing with H heads side by side;
3. one pre-norm Transformer block, and its parameter count from the formulas next to ``sum(p.numel())``.
"""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, wherever we run from

import torch  # noqa: E402

from llm_basics.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention  # noqa: E402
from llm_basics.model import ModelConfig, TransformerBlock, count_parameters  # noqa: E402

torch.manual_seed(0)
torch.set_printoptions(precision=2, sci_mode=False, linewidth=120)


def grid(mask: torch.Tensor) -> str:
    """Draw a bool mask: '#' = may attend, '.' = hidden."""
    return "\n".join("    " + " ".join("#" if m else "." for m in row) for row in mask.tolist())


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))


# ---------------------------------------------------------------------------------------------------------
section("1. one attention head on 5 tokens")
T, d_model, d_head = 5, 8, 4
x = torch.randn(T, d_model)  # (T, d_model): one vector per token
W_q, W_k, W_v = (torch.randn(d_model, d_head) / math.sqrt(d_model) for _ in range(3))
q, k, v = x @ W_q, x @ W_k, x @ W_v  # (T, d_head) each
print(f"x: {tuple(x.shape)}  ->  Q: {tuple(q.shape)}, K: {tuple(k.shape)}, V: {tuple(v.shape)}")

logits = q @ k.T / math.sqrt(d_head)  # (T, T): how much query i 'matches' key j
print(f"attention logits Q @ K^T / sqrt({d_head}): {tuple(logits.shape)}")
print(logits)

mask = causal_mask(T)  # (T, T)
print("causal mask (row = query, column = key; '#' = may look at):")
print(grid(mask))

out, weights = scaled_dot_product_attention(q, k, v, causal=True)  # (T, d_head), (T, T)
print("attention weights (softmax of the masked logits; lower-triangular, each row sums to 1):")
print(weights)
print("row sums:", weights.sum(-1))
print(f"output = weights @ V: {tuple(out.shape)}; token 0 can only see itself, so out[0] == V[0]:",
      torch.allclose(out[0], v[0]))

# ---------------------------------------------------------------------------------------------------------
section("2. multi-head attention (H heads of size d_model / H)")
B, T, d, H = 2, 6, 16, 4
mha = MultiHeadAttention(d, H)
xb = torch.randn(B, T, d)  # (B, T, d)
y, w = mha(xb, return_weights=True)
print(f"input (B, T, d) = {tuple(xb.shape)}")
print(f"per head: Q, K, V are (B, H, T, d/H) = {(B, H, T, d // H)}")
print(f"weights (B, H, T, T) = {tuple(w.shape)}, output (B, T, d) = {tuple(y.shape)}")
print("head 0 of batch 0 (every head has its own pattern, all causal):")
print(w[0, 0].detach())

# ---------------------------------------------------------------------------------------------------------
section("3. one pre-norm Transformer block: x + attn(norm1(x)), then + ffn(norm2(x))")
cfg = ModelConfig(d_model=64, n_heads=4, norm="layernorm", bias=True)
block = TransformerBlock(cfg)
d, d_ff = cfg.d_model, cfg.ffn_dim
print(f"d_model = {d}, d_ff = {d_ff}, heads = {cfg.n_heads}, norm = {cfg.norm}, bias = {cfg.bias}")
rows = [
    # (component, formula, value of the formula)
    ("attention weights", "4*d^2", 4 * d * d),
    ("attention biases", "4*d", 4 * d),
    ("ffn weights", "2*d*d_ff", 2 * d * d_ff),
    ("ffn biases", "d_ff + d", d_ff + d),
    ("norm1 + norm2", "2*(d + d)", 2 * 2 * d),
]
measured = {
    "attention weights": sum(lin.weight.numel() for lin in
                             (block.attn.q_proj, block.attn.k_proj, block.attn.v_proj, block.attn.out_proj)),
    "attention biases": sum(lin.bias.numel() for lin in
                            (block.attn.q_proj, block.attn.k_proj, block.attn.v_proj, block.attn.out_proj)),
    "ffn weights": block.ffn.fc1.weight.numel() + block.ffn.fc2.weight.numel(),
    "ffn biases": block.ffn.fc1.bias.numel() + block.ffn.fc2.bias.numel(),
    "norm1 + norm2": count_parameters(block.norm1) + count_parameters(block.norm2),
}
print(f"    {'component':<20} {'formula':<12} {'by formula':>11} {'by numel':>10}")
for name, text, value in rows:
    print(f"    {name:<20} {text:<12} {value:>11,} {measured[name]:>10,}")
total_formula = sum(r[2] for r in rows)
total_numel = count_parameters(block)
print(f"    {'total':<20} {'':<12} {total_formula:>11,} {total_numel:>10,}")
print("    (by numel = sum(p.numel() for p in ...parameters()) of the module that holds those weights)")
assert total_formula == total_numel, "the formulas should account for every parameter"

out = block(torch.randn(1, 10, d))  # (1, 10, d)
print(f"block(x): {(1, 10, d)} -> {tuple(out.shape)}: the block keeps the shape, so blocks stack.")
