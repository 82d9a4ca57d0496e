"""Scaled dot-product attention against PyTorch, plain (default) and fused, in the cases where tract's
fused operator differs from torch."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fx2nnef import TractNNEF, export_model_to_nnef


class Attention(torch.nn.Module):
    def __init__(self, **options):
        super().__init__()
        self.options = options

    def forward(self, q, k, v, mask=None):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **self.options)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("options, q_len, k_len, mask", [
    ({"is_causal": True}, 5, 5, None),
    ({"is_causal": True}, 3, 6, None),   # torch aligns top-left, tract's causal flag bottom-right
    ({"scale": 0.3}, 4, 6, None),
    ({}, 4, 6, "bool"),
    ({}, 4, 6, "float"),
])
def test_sdpa_matches(tmp_path, options, q_len, k_len, mask, fused):
    q, k, v = torch.randn(2, 4, q_len, 8), torch.randn(2, 4, k_len, 8), torch.randn(2, 4, k_len, 8)
    args = [q, k, v]
    if mask == "bool":
        args.append(torch.rand(q_len, k_len) > 0.3)
    elif mask == "float":
        args.append(torch.randn(q_len, k_len))
    report = export_model_to_nnef(Attention(**options).eval(), args, tmp_path / "a", TractNNEF(fused_attention=fused))
    assert all(r.ok for r in report.check)
    assert ("tract_transformers_sdpa" in (tmp_path / "a" / "graph.nnef").read_text()) == fused


def test_grouped_query_attention_uses_the_fused_operator(tmp_path):
    q, k, v = torch.randn(1, 4, 5, 8), torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8)
    report = export_model_to_nnef(Attention(enable_gqa=True).eval(), [q, k, v], tmp_path / "a", TractNNEF())
    assert all(r.ok for r in report.check)
    assert "tract_transformers_sdpa" in (tmp_path / "a" / "graph.nnef").read_text()


def test_single_query_row_uses_the_fused_operator(tmp_path):
    q, k, v = torch.randn(1, 4, 1, 8), torch.randn(1, 4, 6, 8), torch.randn(1, 4, 6, 8)
    report = export_model_to_nnef(Attention().eval(), [q, k, v], tmp_path / "a", TractNNEF())
    assert all(r.ok for r in report.check)
    assert "tract_transformers_sdpa" in (tmp_path / "a" / "graph.nnef").read_text()
