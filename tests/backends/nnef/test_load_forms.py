"""Tests of the forms written for tract's reader to load fast: zero pads folded into convolutions,
attributes at their NNEF default left out, repeated expressions computed once (benchmarks/README.md "Load time")."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fx2nnef import TractNNEF, export_model_to_nnef
from fx2nnef.backends.nnef.graph import Graph, Operation, QuantParams, Tensor
from fx2nnef.backends.nnef.constants import share_expressions
from fx2nnef.backends.nnef.pads import fold_zero_pads_into_convs
from fx2nnef.backends.nnef.serializer import format_invocation

SPATIAL = [(0, 0), (0, 0), (0, 1), (1, 1)]


def conv_after_pad(padding=SPATIAL, dtype="f32", quant=None, **pad_attribs) -> Graph:
    """Return x -> pad -> conv -> y, the conv with explicit padding [(1, 1), (0, 0)]."""
    x, w = Tensor("x", dtype, (1, 2, 4, 4), quant=quant), Tensor("w", "f32", (3, 2, 3, 3))
    padded, y = Tensor("padded", dtype, (1, 2, 5, 6)), Tensor("y", "f32", (1, 3, 5, 4))
    pad = Operation("pad", (x,), {"padding": padding, "border": "constant", "value": 0.0, **pad_attribs}, (padded,))
    conv = Operation("conv", (padded, w, 0.0), {"border": "constant", "padding": [(1, 1), (0, 0)]}, (y,))
    return Graph(inputs=[x], outputs=[y], operations=[pad, conv])


def test_zero_spatial_pad_is_folded_into_the_conv():
    graph = conv_after_pad()
    assert fold_zero_pads_into_convs(graph) == 1
    [conv] = graph.operations
    assert conv.args[0] is graph.inputs[0]
    assert conv.attribs["padding"] == [(1, 2), (1, 1)]


@pytest.mark.parametrize("change", [
    dict(value=1.0), dict(border="reflect"), dict(padding=[(0, 0), (1, 0), (0, 1), (1, 1)]),
    dict(padding=[(0, 0), (0, 0), (-1, 1), (1, 1)]), dict(dtype="i64"),
    dict(quant=QuantParams(scale=0.1, zero_point=3)),
], ids=["value", "border", "channel-axis", "crop", "integer", "quantized"])
def test_other_pads_stay(change):
    graph = conv_after_pad(**change)
    assert fold_zero_pads_into_convs(graph) == 0
    assert [op.name for op in graph.operations] == ["pad", "conv"]


def test_pad_read_elsewhere_or_returned_stays():
    graph = conv_after_pad()
    padded = graph.operations[0].outputs[0]
    graph.operations.append(Operation("relu", (padded,), {}, (Tensor("z"),)))
    assert fold_zero_pads_into_convs(graph) == 0
    returned = conv_after_pad()
    returned.outputs.append(returned.operations[0].outputs[0])
    assert fold_zero_pads_into_convs(returned) == 0


def test_attributes_at_their_default_are_not_written():
    x, w, y = Tensor("x"), Tensor("w"), Tensor("y")
    conv = Operation("conv", (x, w, 0.0), {"border": "constant", "padding": [(0, 0), (1, 1)], "stride": [1, 1],
                                           "dilation": [1, 1], "groups": 1}, (y,))
    assert format_invocation(conv) == "y = conv(x, w, 0.0, padding = [(0, 0), (1, 1)]);"
    strided = Operation("conv", (x, w, 0.0), {"padding": [(0, 0)], "stride": [2], "dilation": [1], "groups": 2}, (y,))
    assert format_invocation(strided) == "y = conv(x, w, 0.0, padding = [(0, 0)], stride = [2], groups = 2);"
    pool = Operation("max_pool", (x,), {"size": [1, 1, 2, 2], "border": "ignore", "stride": [1, 1, 2, 2],
                                        "dilation": [1, 1, 1, 1]}, (y,))
    assert format_invocation(pool) == "y = max_pool(x, size = [1, 1, 2, 2], border = 'ignore', stride = [1, 1, 2, 2]);"
    assert format_invocation(Operation("pad", (x,), {"padding": [(0, 1)], "border": "constant"}, (y,))) == \
        "y = pad(x, padding = [(0, 1)], border = 'constant');"


class SamePadConv(torch.nn.Module):
    """TensorFlow-style "same" padding: an asymmetric zero pad, then an unpadded strided conv."""

    def __init__(self, value: float = 0.0, reuse: bool = False):
        super().__init__()
        self.conv, self.value, self.reuse = torch.nn.Conv2d(3, 4, 3, stride=2), value, reuse

    def forward(self, x):
        padded = F.pad(x, (0, 1, 0, 1), value=self.value)
        y = self.conv(padded)
        return (y, padded.sum()) if self.reuse else y


@pytest.mark.parametrize("value, reuse, pads", [(0.0, False, 0), (0.5, False, 1), (0.0, True, 1)],
                         ids=["zero", "nonzero", "reused"])
def test_same_padding_conv_matches_in_tract(tmp_path, value, reuse, pads):
    torch.manual_seed(0)
    path = tmp_path / "model.nnef"
    report = export_model_to_nnef(SamePadConv(value, reuse).eval(), torch.randn(1, 3, 9, 9), path, TractNNEF())
    assert [op.name for op in report.graph.operations].count("pad") == pads
    assert "stride = [2, 2]" in (path / "graph.nnef").read_text()


def test_repeated_expressions_are_computed_once():
    x = Tensor("x", "f32", (2, 3))
    first, again, noise, other = (Tensor(name, "f32", (2, 3)) for name in ("first", "again", "noise", "other"))
    y, z = Tensor("y", "f32", (2, 3)), Tensor("z", "f32", (2, 3))
    graph = Graph(inputs=[x], outputs=[y, z], operations=[
        Operation("max_reduce", (x,), {"axes": [1]}, (first,)),
        Operation("max_reduce", (x,), {"axes": [1]}, (again,)),
        Operation("tract_onnx_random", (), {"shape": [2, 3]}, (noise,)),
        Operation("tract_onnx_random", (), {"shape": [2, 3]}, (other,)),
        Operation("add", (first, noise), {}, (y,)),
        Operation("add", (again, other), {}, (z,)),
    ])
    assert share_expressions(graph) == 1
    assert [op.name for op in graph.operations].count("max_reduce") == 1
    assert graph.operations[-1].args == (first, other)   # random draws stay two
    quantized = Graph(inputs=[x], outputs=[y], operations=[
        Operation("copy", (x,), {}, (Tensor("a", "u8", (2, 3), quant=QuantParams(0.1, 3)),)),
        Operation("copy", (x,), {}, (Tensor("b", "u8", (2, 3), quant=QuantParams(0.2, 3)),)),
    ])
    assert share_expressions(quantized) == 0
