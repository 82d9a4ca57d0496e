"""What a user meets when things go wrong: typed errors, source lines, debug bundles, nothing half-written,
and a model left exactly as it was."""
from __future__ import annotations

import tarfile

import pytest
import torch

from fx2nnef import (CaptureError, LoweringRegistry, TractCheckError, TractNNEF, UnsupportedOpError,
                     export_model_to_nnef)


@torch.library.custom_op("fx2nnef_test::twice", mutates_args=())
def twice(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@twice.register_fake
def _(x):
    return torch.empty_like(x)


@torch.library.custom_op("fx2nnef_test::shift", mutates_args=())
def shift(x: torch.Tensor) -> torch.Tensor:
    return x + 1


@shift.register_fake
def _(x):
    return torch.empty_like(x)


class UsesCustomOps(torch.nn.Module):
    def forward(self, x):
        return shift(twice(twice(x)))


def test_unsupported_ops_are_all_listed_with_counts_and_source_lines(tmp_path):
    path = tmp_path / "m.nnef.tgz"
    with pytest.raises(UnsupportedOpError) as info:
        export_model_to_nnef(UsesCustomOps(), torch.randn(3), path, TractNNEF())
    message = str(info.value)
    assert "fx2nnef_test::twice  x2" in message
    assert "fx2nnef_test::shift  x1" in message
    assert "test_failures.py" in message and "return shift(twice(twice(x)))" in message
    assert list(tmp_path.iterdir()) == []


def test_stack_traces_are_recorded_only_for_a_failing_export(tmp_path, caplog):
    """Recording every node's stack costs a third of the capture: a successful export goes without,
    a failing one is captured again with them (to name source lines), and torch's flag is restored."""
    with caplog.at_level("INFO", logger="fx2nnef"):
        export_model_to_nnef(torch.nn.ReLU(), torch.randn(3), tmp_path / "ok.nnef", TractNNEF())
        assert "capturing again" not in caplog.text
        with pytest.raises(UnsupportedOpError):
            export_model_to_nnef(UsesCustomOps(), torch.randn(3), tmp_path / "bad.nnef", TractNNEF())
        assert "UnsupportedOpError: capturing again with stack traces" in caplog.text
    assert torch.fx.config.do_not_emit_stack_traces is False


def test_capture_failure_quotes_torch_and_the_user_line(tmp_path):
    class DataDependent(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x + 1
            return x - 1

    with pytest.raises(CaptureError) as info:
        export_model_to_nnef(DataDependent(), torch.randn(3), tmp_path / "m", TractNNEF())
    message = str(info.value)
    assert "torch.export could not capture DataDependent" in message
    assert "test_failures.py" in message and "if x.sum() > 0" in message


def test_mismatch_raises_names_the_output_and_writes_a_bundle(tmp_path):
    registry = LoweringRegistry.from_default()

    @registry.lower("aten::relu")
    def aten_relu_wrong(b, self):
        """relu(Tensor self) -> Tensor, wrongly lowered to exercise the check"""
        return b.op("abs", self)

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()).eval()
    path, bundle = tmp_path / "m.nnef.tgz", tmp_path / "debug.tgz"
    with pytest.raises(TractCheckError, match=r"output.*max abs"):
        export_model_to_nnef(model, torch.randn(2, 4), path, TractNNEF(), debug_bundle_path=bundle,
                             registry=registry, output_names=["y"])
    assert not path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["debug.tgz"]
    with tarfile.open(bundle) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for member in ("model.nnef.tgz", "inputs.npz", "expected.npz", "got.npz", "error.txt", "versions.json",
                   "README.txt"):
        assert member in names
    assert any(n.startswith("ir/") and "FoldPrimitivesPass" in n for n in names)


def test_model_is_left_untouched(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(8),
                                torch.nn.Linear(8, 2)).double()
    model.train()
    calls = []
    model[0].register_forward_hook(lambda *a: calls.append(1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = export_model_to_nnef(model, torch.randn(3, 4, dtype=torch.float64), tmp_path / "m", TractNNEF())
    assert all(r.ok for r in report.check)
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(after[k].dtype == before[k].dtype and torch.equal(before[k], after[k]) for k in before)
    assert model[0].weight.dtype == torch.float64
    assert len(model[0]._forward_hooks) == 1 and calls
