"""DecomposePass: ops with a lowering stay whole, others are decomposed."""
from __future__ import annotations

import torch

from fx2nnef import LoweringRegistry
from fx2nnef.compiler.pass_base import count_ops
from fx2nnef.passes import DecomposePass
from fx2nnef.passes.decompose import decomposition_table
from testing_utils import assert_same_numerics, captured


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = torch.nn.LayerNorm(8)

    def forward(self, x):
        return torch.nn.functional.glu(self.norm(x))


def registry_without(*targets: str) -> LoweringRegistry:
    """Return a copy of the default registry without some lowerings."""
    default = LoweringRegistry.from_default()
    return LoweringRegistry({t: default.get(t) for t in default.targets() if t not in targets})


def test_lowered_ops_kept_others_decomposed():
    x = torch.randn(2, 8)
    raw = captured(Block(), x, decompose=False)
    result = DecomposePass(registry_without("aten::hardswish"))(raw)
    ops = count_ops(result.program)
    assert ops["aten::layer_norm"] == 1
    assert "aten::glu" not in ops
    assert result.modified
    assert_same_numerics(captured(Block(), x, decompose=False), result.program, x)


def test_table_follows_the_registry():
    registry = registry_without("aten::hardswish")
    table = decomposition_table(registry)
    assert torch.ops.aten.glu.default in table
    registry.register("aten::glu", lambda b, self: self)
    assert torch.ops.aten.glu.default not in decomposition_table(registry)


class Gated(torch.nn.Module):
    """GLU on the output (decomposed where it is returned) next to an op the registry lowers."""

    def forward(self, x):
        return torch.nn.functional.glu(x), torch.tanh(x)


def test_functional_graph_is_decomposed_in_place_node_by_node():
    x = torch.randn(2, 8)
    raw = captured(Gated(), x, decompose=False)
    tanh = next(n for n in raw.graph.nodes if n.target is torch.ops.aten.tanh.default)
    result = DecomposePass(registry_without("aten::glu"))(raw)
    assert result.modified
    assert tanh in result.program.graph.nodes  # untouched nodes are the same objects: no retrace
    assert "aten::glu" not in count_ops(result.program)
    result.program.validate()  # the output spec names the node that replaced the returned glu
    assert_same_numerics(captured(Gated(), x, decompose=False), result.program, x)


def test_mutating_graph_is_functionalized_whole():
    class InPlace(torch.nn.Module):
        def forward(self, x):
            y = x.clone()
            y.mul_(2)
            return torch.nn.functional.glu(y)

    x = torch.randn(2, 8)
    result = DecomposePass(registry_without("aten::glu"))(captured(InPlace(), x, decompose=False))
    ops = count_ops(result.program)
    assert "aten::glu" not in ops and "aten::mul_.Tensor" not in ops
    assert_same_numerics(captured(InPlace(), x, decompose=False), result.program, x)
