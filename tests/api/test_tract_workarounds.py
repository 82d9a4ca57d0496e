"""Patterns that tract 0.23.9 cannot load or runs wrong when written the obvious way, and that
fx2nnef therefore writes another way."""
from __future__ import annotations

import pytest
import torch

from fx2nnef import TractNNEF, UnsupportedOpError, export_model_to_nnef


class StridedSliceOfAReshape(torch.nn.Module):
    """LeViT's subsampling: a strided slice right after a view (tract: "Invalid axis" at load)."""

    def forward(self, x):
        batch, _, channels = x.shape
        return x.view(batch, 4, 4, channels)[:, ::2, 1::2].reshape(batch, -1, channels)


def test_strided_slice_of_a_reshape_loads_and_matches(tmp_path):
    report = export_model_to_nnef(StridedSliceOfAReshape().eval(), torch.randn(2, 16, 8), tmp_path / "m", TractNNEF())
    assert all(r.ok for r in report.check)


class UnsqueezedFilter(torch.nn.Module):
    """Mamba's depthwise conv with its filter rebuilt by view + unsqueeze (tract: wrong outputs)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(8, 8, 4, groups=8, padding=3)

    def forward(self, x):
        kernel = self.conv.weight.view(8, 4).unsqueeze(1)
        return torch.nn.functional.conv1d(x, kernel, self.conv.bias, padding=3, groups=8)[..., :9]


def test_conv_with_an_unsqueezed_filter_matches(tmp_path):
    report = export_model_to_nnef(UnsqueezedFilter().eval(), torch.randn(2, 8, 9), tmp_path / "m", TractNNEF())
    assert all(r.ok for r in report.check)


def test_a_strided_view_past_the_tensor_is_refused_not_a_process_abort(tmp_path):
    class Past(torch.nn.Module):  # fine in eager on a view of a larger storage; an NNEF input has no more
        def forward(self, x):
            return torch.as_strided(x, (2, 2), (1, 2), 10)

    with pytest.raises(UnsupportedOpError, match="reads storage position 13 of a tensor of 10 elements"):
        export_model_to_nnef(Past(), torch.randn(20)[:10], tmp_path / "m.nnef", TractNNEF())
    assert list(tmp_path.iterdir()) == []
