"""The compiler engineer's API: compile(), a custom pass in a few lines, a custom lowering, IR dumps."""
from __future__ import annotations

import torch

import fx2nnef
from fx2nnef import LoweringRegistry, Pass, PassResult, TractNNEF, export_model_to_nnef
from fx2nnef.compiler.pass_base import count_ops

aten = torch.ops.aten


@torch.library.custom_op("fx2nnef_demo::scale_shift", mutates_args=())
def scale_shift(x: torch.Tensor, scale: float) -> torch.Tensor:
    return x * scale + 1


@scale_shift.register_fake
def _(x, scale):
    return torch.empty_like(x)


class Model(torch.nn.Module):
    def forward(self, x):
        return scale_shift(torch.relu(x), 3.0)


class ReluToClampPass(Pass):
    """After it, no aten.relu is left: each is clamp(x, min=0)."""

    def call(self, program):
        modified = False
        for node in program.graph.nodes:
            if node.target is aten.relu.default:
                node.target, node.args = aten.clamp.default, (node.args[0], 0.0)
                modified = True
        program.graph_module.recompile()
        return PassResult(program, modified)


def registry_with_scale_shift() -> LoweringRegistry:
    registry = LoweringRegistry.from_default()

    @registry.lower("fx2nnef_demo::scale_shift")
    def fx2nnef_demo_scale_shift(b, x, scale):
        """scale_shift(Tensor x, float scale) -> Tensor"""
        return b.op("add", b.op("mul", x, float(scale)), 1.0)

    return registry


def test_compile_returns_the_ir_after_every_pass():
    result = fx2nnef.compile(torch.nn.Linear(3, 2), torch.randn(1, 3))
    assert [r.name for r in result.records] == ["capture", "DecomposePass", "FlattenIOPass", "RollCellLoopsPass",
                                                "FuseConvBatchNormPass", "FoldPrimitivesPass", "LegalizeComplexPass",
                                                "LegalizeDtypesPass", "DedupeConstantsPass", "CommonSubexpressionPass"]
    assert "aten.linear" in result.ir("CommonSubexpressionPass")
    assert result.input_names == ["input"] and result.output_names == ["output"]


def test_custom_pass_and_custom_lowering(tmp_path):
    registry = registry_with_scale_shift()
    passes = fx2nnef.default_passes(registry=registry) + [ReluToClampPass()]
    result = fx2nnef.compile(Model(), torch.randn(4), passes=passes, registry=registry)
    assert count_ops(result.program).get("aten::clamp") == 1 and "aten::relu" not in count_ops(result.program)

    report = export_model_to_nnef(Model(), torch.randn(2, 4), tmp_path / "m.nnef.tgz", TractNNEF(),
                                  registry=registry, passes=passes, dump_ir_dir=tmp_path / "ir")
    assert all(r.ok for r in report.check)
    assert sorted(p.name for p in (tmp_path / "ir").iterdir()) == [
        "00_capture.txt", "01_DecomposePass.txt", "02_FlattenIOPass.txt", "03_RollCellLoopsPass.txt",
        "04_FuseConvBatchNormPass.txt", "05_FoldPrimitivesPass.txt", "06_LegalizeComplexPass.txt",
        "07_LegalizeDtypesPass.txt", "08_DedupeConstantsPass.txt", "09_CommonSubexpressionPass.txt",
        "10_ReluToClampPass.txt"]


def test_a_plain_function_is_a_pass():
    seen = []

    def record_op_count(program):
        seen.append(len(program.graph.nodes))
        return program

    fx2nnef.compile(torch.nn.Linear(3, 2), torch.randn(1, 3), passes=fx2nnef.default_passes() + [record_op_count])
    assert seen and seen[0] > 0
