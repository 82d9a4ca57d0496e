"""A broadcast feeding a matmul: materialized when it stretches a matrix axis (tract 0.23.9 contracts
a broadcast contraction axis as if K were 1), kept as a broadcast on batch axes (grouped-query
attention repeating its key/value heads), both matching torch in tract."""
from __future__ import annotations

import pytest
import torch

from fx2nnef import TractNNEF, export_model_to_nnef


class RepeatHeads(torch.nn.Module):
    """q @ k^T with k's 2 heads repeated to 4 (transformers' repeat_kv), or k's last axis expanded."""

    def __init__(self, onto: str):
        super().__init__()
        self.onto = onto

    def forward(self, q, k):
        if self.onto == "batch":
            k = k[:, :, None].expand(1, 2, 2, 5, 8).reshape(1, 4, 5, 8)
        else:
            k = k[:, :1, :, :1].expand(1, 4, 5, 8)
        return q @ k.transpose(-1, -2)


@pytest.mark.parametrize("onto, broadcasts", [("batch", 1), ("matrix", 0)])
def test_broadcast_into_matmul(tmp_path, onto, broadcasts):
    torch.manual_seed(0)
    report = export_model_to_nnef(RepeatHeads(onto), (torch.randn(1, 4, 3, 8), torch.randn(1, 2, 5, 8)),
                                  tmp_path / "model.nnef", TractNNEF())
    names = [op.name for op in report.graph.operations]
    assert names.count("tract_core_broadcast") == broadcasts
