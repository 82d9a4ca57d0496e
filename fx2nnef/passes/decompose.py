"""DecomposePass: decompose, with torch's own table, exactly the ops the registry cannot lower."""
from __future__ import annotations

import torch
from torch.export import ExportedProgram

from ..backends.nnef.registry import LoweringRegistry
from ..compiler.pass_base import Pass, PassResult, count_ops


def decomposition_table(registry: LoweringRegistry) -> dict:
    """Return torch.export's default decomposition table minus every op the registry lowers."""
    table = torch.export.default_decompositions()
    for op in list(table.keys()):
        if op.name() in registry:
            table.pop(op)
    return table


class DecomposePass(Pass):
    """After it, the graph is functional ATen, and every op with a lowering is kept whole while
    every other op that torch can decompose is decomposed (into ops that may have lowerings)."""

    def __init__(self, registry: LoweringRegistry | None = None):
        self.registry = registry or LoweringRegistry.from_default()

    def call(self, program: ExportedProgram) -> PassResult:
        before = count_ops(program)
        program = program.run_decompositions(decomposition_table(self.registry))
        return PassResult(program, count_ops(program) != before)
