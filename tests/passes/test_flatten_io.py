"""FlattenIOPass: nested inputs/outputs become flat named tensors; op counts and numerics unchanged."""
from __future__ import annotations

import torch

from fx2nnef.compiler.pass_base import count_ops
from fx2nnef.compiler.program import OUTPUT_NAMES, input_name, output_node, user_inputs
from fx2nnef.passes import FlattenIOPass
from testing_utils import captured


class Nested(torch.nn.Module):
    def forward(self, x, extra):
        return {"y": x + extra["a"], "z": [extra["b"] * 2, x]}


def test_flattens_and_names():
    x, a, b = torch.randn(3), torch.randn(3), torch.randn(2)
    program = captured(Nested(), x, {"a": a, "b": b})
    result = FlattenIOPass()(program)
    flat = result.program
    assert [input_name(n) for n in user_inputs(flat)] == ["x", "extra_a", "extra_b"]
    assert output_node(flat).meta[OUTPUT_NAMES] == ["y", "z_0", "z_1"]
    assert count_ops(flat) == count_ops(program)
    outs = flat.module()(x, a, b)
    torch.testing.assert_close(list(outs), [x + a, b * 2, x])


def test_user_names():
    program = captured(Nested(), torch.randn(3), {"a": torch.randn(3), "b": torch.randn(2)})
    flat = FlattenIOPass(["p", "q", "r"], ["out"]).call(program).program
    assert [input_name(n) for n in user_inputs(flat)] == ["p", "q", "r"]
    assert output_node(flat).meta[OUTPUT_NAMES] == ["out_y", "out_z_0", "out_z_1"]


def test_side_effect_ops_are_named():
    import pytest

    from fx2nnef import UnsupportedOpError

    class Factor(torch.nn.Module):  # the in-place add makes DecomposePass functionalize (effect tokens)
        def forward(self, x):
            return torch.linalg.ldl_factor(x.clone().add_(1)).LD

    with pytest.raises(UnsupportedOpError, match=r"(?s)side effects.*_linalg_check_errors"):
        FlattenIOPass()(captured(Factor(), torch.randn(3, 3)))
