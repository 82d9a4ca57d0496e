"""check_io_onnx: the archive's outputs are cross-checked against torch.onnx.export run in tract."""
from __future__ import annotations

import tarfile

import numpy as np
import pytest
import torch

from fx2nnef import LoweringRegistry, TractCheckError, TractNNEF, export_model_to_nnef
from fx2nnef.onnx_check import cross_check, raise_unless_agree


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up, self.down = torch.nn.Linear(8, 16), torch.nn.Linear(16, 4)

    def forward(self, x):
        return self.down(torch.nn.functional.gelu(self.up(x)))


@pytest.fixture
def mlp():
    torch.manual_seed(0)
    return MLP().eval()


def test_check_io_onnx_passes_on_an_mlp(mlp, tmp_path):
    report = export_model_to_nnef(mlp, torch.randn(3, 8), tmp_path / "mlp.nnef.tgz",
                                  TractNNEF(check_io=True, check_io_onnx=True))
    assert all(r.ok for r in report.check)


def test_disagreement_names_the_output():
    nnef = [np.zeros((2, 3), np.float32), np.ones(4, np.float32)]
    onnx = [np.zeros((2, 3), np.float32), np.full(4, 2.0, np.float32)]
    check = cross_check(["a", "b"], nnef, onnx, "approx")
    assert [r.ok for r in check.reports] == [True, False]
    with pytest.raises(TractCheckError, match="disagree in tract on b"):
        raise_unless_agree(check)


def test_failed_check_bundle_holds_the_onnx_outputs(mlp, tmp_path):
    registry = LoweringRegistry.from_default()

    @registry.lower("aten::gelu")
    def wrong_gelu(b, self, approximate="none"):
        """gelu(Tensor self, *, str approximate='none') -> Tensor (deliberately wrong: relu)"""
        return b.op("relu", self)

    with pytest.raises(TractCheckError, match="differ from PyTorch"):
        export_model_to_nnef(mlp, torch.randn(3, 8), tmp_path / "mlp.nnef.tgz",
                             TractNNEF(check_io=True, check_io_onnx=True), registry=registry,
                             debug_bundle_path=tmp_path / "bundle.tgz")
    with tarfile.open(tmp_path / "bundle.tgz") as bundle:
        names = {member.name.split("/", 1)[-1] for member in bundle.getmembers()}
    assert {"got.npz", "onnx_got.npz", "expected.npz"} <= names
