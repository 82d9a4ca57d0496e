"""DecomposePass: ops with a lowering stay whole, others are decomposed."""
from __future__ import annotations

import pytest
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


def test_private_in_place_ops_become_functional_without_a_retrace(monkeypatch):
    class Residual(torch.nn.Module):
        def forward(self, x):
            hidden = torch.relu(x)
            hidden += x  # in place on an intermediate nobody reads afterwards
            return torch.nn.functional.glu(hidden)

    x = torch.randn(2, 8)
    raw = captured(Residual(), x, decompose=False)
    monkeypatch.setattr(type(raw), "run_decompositions", lambda *a, **k: pytest.fail("retraced the program"))
    result = DecomposePass(registry_without("aten::glu"))(raw)
    ops = count_ops(result.program)
    assert "aten::add_.Tensor" not in ops and ops["aten::add.Tensor"] == 1
    monkeypatch.undo()
    assert_same_numerics(captured(Residual(), x, decompose=False), result.program, x)


def test_in_place_on_an_item_of_a_fresh_tuple_needs_no_retrace(monkeypatch):
    class Routing(torch.nn.Module):  # Mixtral's router: top-k weights normalized in place
        def forward(self, x):
            weights, _ = torch.topk(x, 2, dim=-1)
            weights /= weights.sum(dim=-1, keepdim=True)
            return torch.nn.functional.glu(weights)

    x = torch.rand(3, 5) + 0.1
    raw = captured(Routing(), x, decompose=False)
    monkeypatch.setattr(type(raw), "run_decompositions", lambda *a, **k: pytest.fail("retraced the program"))
    result = DecomposePass(registry_without("aten::glu"))(raw)
    assert "aten::div_.Tensor" not in count_ops(result.program)
    monkeypatch.undo()
    assert_same_numerics(captured(Routing(), x, decompose=False), result.program, x)


def test_observable_mutation_is_functionalized_by_torch(monkeypatch):
    class ThroughAView(torch.nn.Module):
        def forward(self, x):
            y = x.clone()
            flat = y.view(-1)
            y.mul_(2)  # visible through `flat`
            return torch.nn.functional.glu(flat.view(2, 8))

    x = torch.randn(2, 8)
    raw = captured(ThroughAView(), x, decompose=False)
    calls = []
    retrace = type(raw).run_decompositions
    monkeypatch.setattr(type(raw), "run_decompositions", lambda *a, **k: calls.append(1) or retrace(*a, **k))
    result = DecomposePass(registry_without("aten::glu"))(raw)
    assert calls == [1]
    ops = count_ops(result.program)
    assert "aten::glu" not in ops and "aten::mul_.Tensor" not in ops
    assert_same_numerics(captured(ThroughAView(), x, decompose=False), result.program, x)


class Converts(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.silu(x.to(torch.float32)) * 2


def _symbolic(module, x):
    """Capture `module` with its input's first axis symbolic."""
    from fx2nnef.compiler.frontend import capture
    return capture(module, (x,), {}, {"x": {0: torch.export.Dim("B", min=2, max=64)}})


def test_symbolic_graph_with_only_conversions_to_decompose_needs_no_retrace(monkeypatch):
    x = torch.randn(4, 8)
    raw = _symbolic(Converts(), x)
    assert "aten::to.dtype" in count_ops(raw)
    monkeypatch.setattr(type(raw), "run_decompositions", lambda *a, **k: pytest.fail("retraced the program"))
    result = DecomposePass()(raw)
    assert "aten::to.dtype" not in count_ops(result.program)
    monkeypatch.undo()
    assert_same_numerics(_symbolic(Converts(), x), result.program, x)


def test_symbolic_graph_with_other_ops_to_decompose_is_retraced(monkeypatch):
    raw = _symbolic(Converts(), torch.randn(4, 8))
    calls = []
    retrace = type(raw).run_decompositions
    monkeypatch.setattr(type(raw), "run_decompositions", lambda *a, **k: calls.append(1) or retrace(*a, **k))
    result = DecomposePass(registry_without("aten::silu"))(raw)   # silu's trace could guard on B
    assert calls == [1] and "aten::silu" not in count_ops(result.program)
