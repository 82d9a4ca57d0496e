"""Time scaled dot-product attention in tract: plain matmul/softmax/matmul against tract's fused sdpa.

    python benchmarks/bench_attention.py

For each shape (batch 2, 4 heads), the same module is exported twice with fx2nnef
(`TractNNEF(fused_attention=False)` and `=True`), loaded in tract, and run repeatedly after a
warm-up, the two archives taking turns; the table gives the median latency of each and the ratio.
This is the measurement behind fx2nnef's default (plain) attention lowering.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fx2nnef import TractNNEF, export_model_to_nnef

# (query length, key length, head dim, mask kind)
SHAPES = [(16, 16, 16, None), (4, 16, 16, None), (64, 64, 64, None), (64, 64, 64, "float"), (64, 64, 64, "causal"),
          (256, 256, 64, None), (256, 256, 64, "float"), (1, 256, 64, "float"), (1024, 1024, 64, None)]


class Attention(torch.nn.Module):
    """F.scaled_dot_product_attention with an optional additive mask or the causal flag."""

    def __init__(self, kind: str | None):
        super().__init__()
        self.kind = kind

    def forward(self, q, k, v, mask=None):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.kind == "causal")


def median_ms(runnables: dict, feeds: list, seconds: float = 1.0) -> dict[str, float]:
    """Return the median latency in ms of each runnable, run in turns for about `seconds`."""
    times = {name: [] for name in runnables}
    for runnable in runnables.values():
        for _ in range(3):
            runnable.run(feeds)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or min(len(t) for t in times.values()) < 10:
        for name, runnable in runnables.items():
            t = time.perf_counter()
            runnable.run(feeds)
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def main() -> None:
    import tract
    print("| q len | k len | head dim | mask | plain ms | fused ms | fused / plain |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for q_len, k_len, dim, kind in SHAPES:
            args = [torch.randn(2, 4, q_len, dim), torch.randn(2, 4, k_len, dim), torch.randn(2, 4, k_len, dim)]
            if kind == "float":
                args.append(torch.randn(2, 1, q_len, k_len))
            runnables = {}
            for fused in (False, True):
                path = Path(tmp) / f"{fused}.nnef.tar"
                export_model_to_nnef(Attention(kind).eval(), args, path,
                                     TractNNEF(check_io=False, fused_attention=fused))
                runnables["fused" if fused else "plain"] = tract.nnef().with_tract_transformers().load(
                    str(path)).into_runnable()
            ms = median_ms(runnables, [a.numpy() for a in args])
            print(f"| {q_len} | {k_len} | {dim} | {kind or '-'} | {ms['plain']:.3f} | {ms['fused']:.3f} | "
                  f"{ms['fused'] / ms['plain']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
