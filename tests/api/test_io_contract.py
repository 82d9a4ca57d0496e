"""The archive's signature is the IO the user declared: every declared input stays (unused ones
with a warning), an export needs a tensor output, and inputs NNEF cannot hold are refused at
binding with an ExportInputError (also with check_io, which raises nothing but fx2nnef's errors)."""
from __future__ import annotations

import warnings

import pytest
import torch

from fx2nnef import TractNNEF, export_model_to_nnef
from fx2nnef.errors import ExportInputError


class IgnoresSecond(torch.nn.Module):
    def forward(self, x, y):
        return x * 2


def test_unused_input_stays_an_input(tmp_path):
    with pytest.warns(UserWarning, match="input mask is not used"):
        report = export_model_to_nnef(IgnoresSecond().eval(), [torch.randn(2), torch.randn(3, 1)], tmp_path / "m",
                                      TractNNEF(), input_names=["x", "mask"])
    assert report.input_names == ["x", "mask"]
    assert "graph network(x, mask)" in (tmp_path / "m" / "graph.nnef").read_text()
    assert all(r.ok for r in report.check)   # the check fed both inputs


class NoTensorOut(torch.nn.Module):
    def forward(self, x):
        return 3, None


def test_outputs_without_a_tensor_are_refused(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ExportInputError, match="returns no tensor"):
            export_model_to_nnef(NoTensorOut().eval(), [torch.randn(2)], tmp_path / "m", TractNNEF())
    assert not (tmp_path / "m").exists()


def _quantized():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.quantize_per_tensor(torch.randn(3), 0.1, 0, torch.quint8)


def _nested():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.nested.nested_tensor([torch.randn(2), torch.randn(3)])


@pytest.mark.parametrize("make, message", [
    (lambda: torch.eye(3).to_sparse(), "sparse tensor"),
    (lambda: torch.eye(3).to_sparse_csr(), "sparse tensor"),
    (_quantized, "quantized tensor"),
    (_nested, "nested tensor"),
    (lambda: torch.empty(2, 3, device="meta"), "meta device"),
])
@pytest.mark.parametrize("check_io", [True, False])
def test_inputs_nnef_cannot_hold_are_refused_at_binding(tmp_path, make, message, check_io):
    class Double(torch.nn.Module):
        def forward(self, x):
            return x * 2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ExportInputError, match=f"input 'x' is (a|on the) {message}"):
            export_model_to_nnef(Double().eval(), [make()], tmp_path / "m", TractNNEF(check_io=check_io))
