"""Average pooling where ceil_mode windows reach past the padding (Funnel Transformer's pooling)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fx2nnef import TractNNEF, export_model_to_nnef


class AvgPool(torch.nn.Module):
    def __init__(self, **options):
        super().__init__()
        self.options = options

    def forward(self, x):
        return F.avg_pool2d(x, **self.options)


@pytest.mark.parametrize("options, shape", [
    (dict(kernel_size=(2, 1), stride=(2, 1), ceil_mode=True), (1, 2, 5, 3)),
    (dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (2, 3, 8, 7)),
    (dict(kernel_size=2, stride=2, ceil_mode=True, count_include_pad=False), (2, 3, 5, 5)),
])
def test_avg_pool_ceil_mode_divisors_match(tmp_path, options, shape):
    report = export_model_to_nnef(AvgPool(**options).eval(), torch.randn(*shape), tmp_path / "m", TractNNEF())
    assert all(r.ok for r in report.check)
