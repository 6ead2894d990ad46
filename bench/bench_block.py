"""Benchmark (not a test): forward time of our TransformerBlock vs torch.nn.TransformerEncoderLayer.

Both are the same size and do the same work: d_model=256, 4 heads, d_ff=1024, pre-norm (norm_first=True),
GELU, no dropout, bias on, causal masking, eval mode, no gradients. Ours computes attention with explicit
matmuls (and returns the weights); torch's layer uses its fused attention kernel.

    python bench/bench_block.py            # seq 512, batch 1 and 8
    python bench/bench_block.py --seq 256 --batch 1 2 4

Timings are medians from ``torch.utils.benchmark.Timer.blocked_autorange`` and depend on the machine and
on whatever else runs on it; nothing here passes or fails.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.utils import benchmark  # noqa: E402

from llm_basics.model import ModelConfig, TransformerBlock, count_parameters  # noqa: E402

D_MODEL, N_HEADS, D_FF = 256, 4, 1024


def make_blocks() -> tuple[nn.Module, nn.Module]:
    ours = TransformerBlock(ModelConfig(d_model=D_MODEL, n_heads=N_HEADS, d_ff=D_FF, norm="layernorm", bias=True))
    ref = nn.TransformerEncoderLayer(
        d_model=D_MODEL, nhead=N_HEADS, dim_feedforward=D_FF, dropout=0.0, activation="gelu",
        batch_first=True, norm_first=True,
    )
    assert count_parameters(ours) == count_parameters(ref), "the two blocks should have the same size"
    return ours.eval(), ref.eval()


def time_forward(fn, label: str, sub_label: str, min_run_time: float) -> benchmark.Measurement:
    timer = benchmark.Timer(
        stmt="fn()", globals={"fn": fn}, label=label, sub_label=sub_label,
        num_threads=torch.get_num_threads(),
    )
    return timer.blocked_autorange(min_run_time=min_run_time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=512, help="sequence length (default 512)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    parser.add_argument("--min-run-time", type=float, default=1.0, help="seconds of timing per case")
    args = parser.parse_args()

    torch.manual_seed(0)
    ours, ref = make_blocks()
    T = args.seq
    # ours masks causally inside its attention (causal=True); torch's layer gets a float mask that is
    # added to the logits (0 where allowed, -inf where hidden) plus the is_causal hint
    additive = nn.Transformer.generate_square_subsequent_mask(T)  # (T, T)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; d_model={D_MODEL}, heads={N_HEADS}, "
          f"d_ff={D_FF}, seq={T}, {count_parameters(ours):,} parameters per block")
    print(f"{'batch':>5} {'ours (ms)':>10} {'torch (ms)':>11} {'ours/torch':>11}")
    with torch.no_grad():
        for B in args.batch:
            x = torch.randn(B, T, D_MODEL)  # (B, T, d)
            # the two layers must agree before we time them (copy ours' weights into torch's layer)
            copy_weights(ours, ref)
            y_ours = ours(x)
            y_ref = ref(x, src_mask=additive, is_causal=True)
            assert torch.allclose(y_ours, y_ref, atol=1e-4), (y_ours - y_ref).abs().max()

            m_ours = time_forward(lambda: ours(x), "block forward", f"ours B={B}", args.min_run_time)
            m_ref = time_forward(lambda: ref(x, src_mask=additive, is_causal=True), "block forward",
                                 f"torch B={B}", args.min_run_time)
            a, b = m_ours.median * 1e3, m_ref.median * 1e3
            print(f"{B:>5} {a:>10.2f} {b:>11.2f} {a / b:>10.2f}x", flush=True)


def copy_weights(ours: TransformerBlock, ref: nn.TransformerEncoderLayer) -> None:
    """Load our block's weights into torch's layer so that both compute the same function."""
    a = ours.attn
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]))
        ref.self_attn.in_proj_bias.copy_(torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]))
        ref.self_attn.out_proj.weight.copy_(a.out_proj.weight)
        ref.self_attn.out_proj.bias.copy_(a.out_proj.bias)
        for src, dst in ((ours.ffn.fc1, ref.linear1), (ours.ffn.fc2, ref.linear2),
                         (ours.norm1, ref.norm1), (ours.norm2, ref.norm2)):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)


if __name__ == "__main__":
    main()
