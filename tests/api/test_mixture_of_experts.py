"""transformers' mixture-of-experts grouped product (Mixtral and others) against PyTorch: uneven
groups, an empty expert and rows past the last group."""
from __future__ import annotations

import pytest
import torch

from fx2nnef import TractNNEF, export_model_to_nnef

moe = pytest.importorskip("transformers.integrations.moe")


class Grouped(torch.nn.Module):
    def __init__(self, experts: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(experts, 5, 3))

    def forward(self, x, offs):
        return torch.ops.transformers.grouped_mm_fallback(x, self.weight, offs)


@pytest.mark.parametrize("offs", [[2, 2, 5], [6], [0, 6, 6]])
def test_grouped_product_matches(tmp_path, offs):
    torch.manual_seed(0)
    model = Grouped(len(offs)).eval()
    report = export_model_to_nnef(model, [torch.randn(6, 5), torch.tensor(offs)], tmp_path / "m.nnef", TractNNEF())
    assert all(r.ok for r in report.check)
