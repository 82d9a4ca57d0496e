"""LegalizeDtypesPass: implicit promotions become casts; f64/bf16 become the target's dtype."""
from __future__ import annotations

import torch

from fx2nnef.compiler.pass_base import count_ops
from fx2nnef.compiler.program import user_inputs
from fx2nnef.passes import FlattenIOPass, LegalizeDtypesPass
from testing_utils import assert_same_numerics, captured


class Mixed(torch.nn.Module):
    def forward(self, ids, x):
        return x * ids + (ids > 0.5), torch.cat([x, ids.float()])


def test_promotions_become_casts():
    ids, x = torch.arange(4), torch.randn(4)
    program = captured(Mixed(), ids, x)
    casts_before = count_ops(program).get("aten::_to_copy", 0)
    result = LegalizeDtypesPass()(program)
    assert result.modified
    assert count_ops(result.program)["aten::_to_copy"] > casts_before
    for node in result.program.graph.nodes:
        if node.target in (torch.ops.aten.mul.Tensor, torch.ops.aten.add.Tensor):
            dtypes = {a.meta["val"].dtype for a in node.args if isinstance(a, torch.fx.Node)}
            assert dtypes == {torch.float32}
    assert_same_numerics(captured(Mixed(), ids, x), result.program, ids, x)


def test_float64_model_becomes_float32_without_touching_the_model():
    """Inside is f32; the f64 input and output keep f64 with a cast at each boundary (docs/dtypes.md)."""
    model = torch.nn.Linear(3, 2).double()
    x = torch.randn(2, 3, dtype=torch.float64)
    result = LegalizeDtypesPass()(FlattenIOPass()(captured(model, x)).program)
    boundary = user_inputs(result.program) + [n for n in result.program.graph.nodes
                                              if n.target == torch.ops.aten._to_copy.default]
    assert all(n.meta["val"].dtype == torch.float32 for n in result.program.graph.nodes
               if isinstance(n.meta.get("val"), torch.Tensor) and n not in boundary)
    assert [n.meta["val"].dtype for n in boundary] == [torch.float64, torch.float32, torch.float64]
    assert model.weight.dtype == torch.float64
    out = result.program.module()(x)[0]
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, model(x), atol=1e-6, rtol=1e-5)


def test_bfloat16_to_float16_on_request():
    model = torch.nn.Linear(3, 2).bfloat16()
    result = LegalizeDtypesPass(bfloat16=torch.float16)(captured(model, torch.randn(2, 3, dtype=torch.bfloat16)))
    dtypes = {n.meta["val"].dtype for n in result.program.graph.nodes if isinstance(n.meta.get("val"), torch.Tensor)}
    assert dtypes == {torch.float16}
