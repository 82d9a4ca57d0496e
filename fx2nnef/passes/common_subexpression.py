"""CommonSubexpressionPass: an op applied twice to the same arguments is computed once."""
from __future__ import annotations

from typing import Any

import torch
from torch.export import ExportedProgram

from ..compiler.pass_base import Pass, PassResult
from ..compiler.program import renamed_outputs, replace


class _Unhashable(Exception):
    """An argument has no stable key (a slice, a tensor constant): its node is left alone."""


def _freeze(value: Any) -> Any:
    """Return a hashable key for an fx argument that equals another's only when they are the same
    argument: nodes by identity, scalars with their type (1, 1.0 and True differ, as do 0.0 and -0.0)."""
    if isinstance(value, torch.fx.Node):
        return value
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, *(_freeze(v) for v in value))
    if isinstance(value, dict):
        return ("dict", *((k, _freeze(v)) for k, v in sorted(value.items())))
    if isinstance(value, float):
        return (float, repr(value))
    if value is None or isinstance(value, (bool, int, str, torch.dtype, torch.device, torch.layout,
                                           torch.memory_format)):
        return (type(value), value)
    raise _Unhashable


def _pure(node: torch.fx.Node) -> bool:
    """Tell whether two calls of the node's op on the same arguments give the same result."""
    if node.op != "call_function" or node.is_impure():
        return False
    return torch.Tag.nondeterministic_seeded not in getattr(node.target, "tags", ())


class CommonSubexpressionPass(Pass):
    """After it, no two deterministic, side-effect-free call_function nodes have the same target
    and arguments: the users of the later one read the earlier one. (A model at its
    initialization applies equal norms to one input; with DedupeConstantsPass first, they merge.)"""

    def call(self, program: ExportedProgram) -> PassResult:
        seen: dict[tuple, torch.fx.Node] = {}
        modified = False
        for node in list(program.graph.nodes):
            if not _pure(node):
                continue
            try:
                key = (node.target, _freeze(node.args), _freeze(node.kwargs))
            except _Unhashable:
                continue
            first = seen.setdefault(key, node)
            if first is not node:
                node.replace_all_uses_with(first)
                program.graph.erase_node(node)
                modified = True
        if not modified:
            return PassResult(program, False)
        signature = renamed_outputs(program)
        return PassResult(replace(program, graph_signature=signature), True)
