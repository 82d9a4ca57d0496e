"""Empty tensors: reductions over a zero-size axis are constants (tract would abort the process)."""
from __future__ import annotations

import pytest
import torch

from fx2nnef import TractNNEF, export_model_to_nnef


@pytest.mark.parametrize("reduce", [torch.sum, torch.prod, torch.any, torch.all])
def test_reduction_over_empty_axis(tmp_path, reduce):
    class Reduce(torch.nn.Module):
        def forward(self, x, y):
            return reduce(x * y, dim=1), reduce(x * y, dim=1, keepdim=True)

    report = export_model_to_nnef(Reduce().eval(), [torch.randn(3, 0), torch.randn(3, 0)], tmp_path / "r",
                                  TractNNEF())
    assert all(r.ok for r in report.check)


def test_vecdot_of_empty_vectors(tmp_path):
    class VecDot(torch.nn.Module):
        def forward(self, x, y):
            return torch.linalg.vecdot(x, y)

    report = export_model_to_nnef(VecDot().eval(), [torch.randn(0), torch.randn(0)], tmp_path / "v", TractNNEF())
    assert all(r.ok for r in report.check)
