"""DynamicAxes: parsing the user's dynamic_axes, size-1 examples, specialization errors, tract expressions."""
from __future__ import annotations

import pytest
import fx2nnef
import sympy
import torch
from torch.utils._sympy.functions import FloorDiv, Mod

from fx2nnef import CaptureError, ExportInputError, LoweringError, TractNNEF, UnsupportedOpError, export_model_to_nnef
from fx2nnef.compiler.dynamic import DynamicAxes, DynamicDim, tract_expr


class TwoInputs(torch.nn.Module):
    def forward(self, x, mask):
        return x * mask.unsqueeze(-1)


X, MASK = torch.randn(2, 7, 4), torch.ones(2, 7)


def _axes(dynamic_axes, input_names=None) -> DynamicAxes:
    return DynamicAxes(TwoInputs(), (X, MASK), {}, dynamic_axes, input_names)


def test_names_ranges_and_generated_names():
    axes = _axes({"x": {0: "B", 1: ("S", 1, 512)}, "mask": {0: "B", -1: DynamicDim("S", max=512)}})
    assert axes.symbols == ["B", "S"] and axes.dims["S"] == DynamicDim("S", 1, 512)
    assert axes.leaves[1].axes == {0: "B", 1: "S"}
    assert _axes({"a": [1]}, input_names=["a", "b"]).symbols == ["a_1"]


@pytest.mark.parametrize("spec, message", [
    ({"y": {0: "B"}}, "not an input; the inputs are x, mask"),
    ({"x": {3: "B"}}, "rank 3, so axis 3 does not exist"),
    ({"x": {0: "2B"}}, "is not an identifier"),
    ({"x": {0: "B"}, "mask": {1: "B"}}, "example sizes differ (7 vs 2)"),
    ({"x": {1: ("S", 1, 4)}}, "outside the range [1, 4]"),
    ({"x": {1: ("S", 1, 64)}, "mask": {1: ("S", 1, 32)}}, "declared with max 64 and max 32"),
    ({"x": {1: ("S", 9, 2)}}, "min 9 > max 2"),
])
def test_bad_dynamic_axes(spec, message):
    with pytest.raises(ExportInputError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        _axes(spec)


def test_check_sizes_stay_in_range():
    axes = _axes({"x": {0: "B", 1: "S"}})
    assert axes.check_sizes({"B": (1, None), "S": (1, 8)}) == [{"B": 2, "S": 7}, {"B": 1, "S": 1}, {"B": 5, "S": 8}]


def test_resize_keeps_masks_and_value_ranges():
    ids = torch.randint(3, 9, (2, 7))
    model = TwoInputs()
    axes = DynamicAxes(model, (ids, MASK), {}, {"x": {1: "S"}, "mask": {1: "S"}})
    new_ids, new_mask = axes.resize(model, (ids, MASK), {}, {"S": 11})[0]
    assert new_ids.shape == (2, 11) and new_ids.dtype == ids.dtype and 3 <= new_ids.min() and new_ids.max() <= 8
    assert torch.equal(new_mask, torch.ones(2, 11))


def test_tract_expressions():
    s, b = sympy.Symbol("s0", integer=True, positive=True), sympy.Symbol("s1", integer=True, positive=True)
    names = {"s0": "S", "s1": "B"}
    assert tract_expr(s - 2, names) == "S - 2"
    assert tract_expr(2 * s * b, names) == "2 * S * B"
    assert tract_expr(64 - s, names) == "64 - S"
    assert tract_expr((s + 1) * b, names) == "B * (S + 1)"
    assert tract_expr(FloorDiv(s, 2), names) == "S / 2"
    with pytest.raises(LoweringError, match="Mod"):
        tract_expr(Mod(s, 3), names)
    with pytest.raises(LoweringError, match="not a declared dynamic axis"):
        tract_expr(sympy.Symbol("s2") + 1, names)
    with pytest.raises(UnsupportedOpError, match="computed from tensor data"):
        tract_expr(sympy.Symbol("u0") + 1, names)


class FixesLength(torch.nn.Module):
    def forward(self, x):
        return x.reshape(2, 7, 4)[:, :, 0]


def test_specialization_names_input_axis_and_line(tmp_path):
    with pytest.raises(CaptureError) as info:
        export_model_to_nnef(FixesLength(), X, tmp_path / "m.nnef", TractNNEF(dynamic_axes={"x": {1: "S"}}))
    text = str(info.value)
    assert "input 'x' axis 1 (S) is forced to 7" in text
    assert "test_dynamic_axes_spec.py" in text and "x.reshape(2, 7, 4)" in text
    assert not (tmp_path / "m.nnef").exists()


class RowSums(torch.nn.Module):
    def forward(self, x):
        return x.sum(-1, keepdim=True) * x


def test_size_one_example_is_widened_and_checked(tmp_path):
    report = export_model_to_nnef(RowSums(), torch.randn(1, 1, 4), tmp_path / "m.nnef",
                                  TractNNEF(dynamic_axes={"x": {0: "B", 1: "S"}}))
    assert report.graph.inputs[0].shape[:2] != (1, 1)
    assert list(report.checks) == ["B=1, S=1", "B=2, S=2", "B=3, S=3"]


class PositionTable(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("table", torch.randn(64, 4))

    def forward(self, x):
        return x + self.table[: x.shape[1]]


def test_user_range_becomes_assertions_and_check_sizes(tmp_path):
    report = export_model_to_nnef(PositionTable(), X, tmp_path / "m.nnef",
                                  TractNNEF(dynamic_axes={"x": {1: ("S", 4, 32)}}))
    assert report.graph.assertions == ["S >= 4", "S <= 32"]
    assert list(report.checks) == ["S=7", "S=4", "S=15"]


def test_range_beyond_what_the_model_supports_names_the_line(tmp_path):
    with pytest.raises(CaptureError) as info:
        export_model_to_nnef(PositionTable(), X, tmp_path / "m.nnef",
                             TractNNEF(dynamic_axes={"x": {1: ("S", 1, 512)}}))
    text = str(info.value)
    assert "input 'x' axis 1 (S): dynamic_axes asks for sizes up to 512, but the model only supports up to 64" in text
    assert "self.table[: x.shape[1]]" in text


def test_two_names_the_model_ties_together(tmp_path):
    with pytest.raises(CaptureError, match=r"forces T \(input 'mask' axis 1\) to equal S[\s\S]*x \* mask"):
        export_model_to_nnef(TwoInputs(), (X, MASK), tmp_path / "m.nnef",
                             TractNNEF(dynamic_axes={"x": {1: "S"}, "mask": {1: "T"}}))


class CausalSum(torch.nn.Module):
    def forward(self, x):
        steps = torch.arange(x.shape[1])
        weights = torch.arange(4).float() + 1.0
        causal = (steps[:, None] >= steps[None, :]).float()
        return causal @ x * weights


def test_fold_primitives_keeps_symbolic_values_and_folds_the_rest(tmp_path):
    x = torch.randn(2, 5, 4)
    compiled = fx2nnef.compile(CausalSum(), (x,), dynamic_shapes=({1: torch.export.Dim.DYNAMIC},))
    aranges = [n for n in compiled.program.graph.nodes if n.op == "call_function" and "arange" in str(n.target)]
    assert len(aranges) == 1  # arange(S) stays; arange(4) + 1.0 is folded into a constant
    report = export_model_to_nnef(CausalSum(), x, tmp_path / "m.nnef", TractNNEF(dynamic_axes={"x": {1: "S"}}))
    assert [op.name for op in report.graph.operations].count("tract_core_range") == 1
    assert list(report.checks) == ["S=5", "S=1", "S=11"]


def test_forgotten_input_axis_is_suggested(tmp_path):
    with pytest.raises(CaptureError, match=r"input 'x' axis 1 \(S\) is forced to 7[\s\S]*static axes of that size: "
                                           r"mask axis 1"):
        export_model_to_nnef(TwoInputs(), (X, MASK), tmp_path / "m.nnef", TractNNEF(dynamic_axes={"x": {1: "S"}}))
