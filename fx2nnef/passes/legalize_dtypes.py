"""LegalizeDtypesPass: every dtype is one the target runs, every type promotion is an explicit cast."""
from __future__ import annotations

import logging

import torch
from torch._prims_common import ELEMENTWISE_TYPE_PROMOTION_KIND, elementwise_dtypes
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind

from ..compiler.pass_base import Pass, PassResult
from ..compiler.program import fake_mode, placeholders, propagate_meta, replace, source_line
from ..errors import UnsupportedOpError

log = logging.getLogger("fx2nnef")
aten = torch.ops.aten

COMPLEX = (torch.complex32, torch.complex64, torch.complex128)
# argument positions that are boolean conditions, not promoted operands
CONDITIONS = {aten.where.self: (0,), aten.masked_fill.Scalar: (1,), aten.masked_fill.Tensor: (1,)}
LOGICAL = {aten.logical_and.default, aten.logical_or.default, aten.logical_xor.default, aten.logical_not.default}
# non-pointwise ops whose tensor operands torch promotes to the output dtype
PROMOTING = {aten.cat.default, aten.stack.default}


def _tensor_args(node: torch.fx.Node) -> list[tuple[int | tuple[int, int], torch.fx.Node]]:
    """Return (position, node) for each tensor operand of a call, lists flattened as (pos, index)."""
    found = []
    for i, a in enumerate(node.args):
        if isinstance(a, torch.fx.Node) and isinstance(a.meta.get("val"), torch.Tensor):
            found.append((i, a))
        elif isinstance(a, (list, tuple)):
            found += [((i, j), x) for j, x in enumerate(a)
                      if isinstance(x, torch.fx.Node) and isinstance(x.meta.get("val"), torch.Tensor)]
    return found


def _operand_dtype(node: torch.fx.Node) -> torch.dtype | None:
    """Return the dtype all tensor operands of `node` must share, or None if it does not promote."""
    target, out = node.target, node.meta.get("val")
    if not isinstance(out, torch.Tensor):
        return None
    pointwise = isinstance(target, torch._ops.OpOverload) and torch.Tag.pointwise in target.tags
    if not pointwise and target not in PROMOTING:
        return None
    if target in LOGICAL:
        return torch.bool
    if out.dtype != torch.bool:
        return out.dtype
    skip = CONDITIONS.get(target, ())
    operands = [a.meta["val"] if isinstance(a, torch.fx.Node) else a for i, a in enumerate(node.args)
                if i not in skip and (isinstance(a, (int, float, bool)) or
                                      (isinstance(a, torch.fx.Node) and isinstance(a.meta.get("val"), torch.Tensor)))]
    if not any(isinstance(o, torch.Tensor) for o in operands):
        return None
    return elementwise_dtypes(*operands, type_promotion_kind=ELEMENTWISE_TYPE_PROMOTION_KIND.DEFAULT)[1]


class LegalizeDtypesPass(Pass):
    """After it, no tensor is f64 (unless kept), bf16 or complex, and every pointwise op (and cat/stack)
    reads tensor operands of the one dtype it computes in: implicit promotions are explicit casts
    (`aten._to_copy(x, dtype=...)`). Parameters are converted on copies; the user's model is untouched."""

    def __init__(self, float64: torch.dtype = torch.float32, bfloat16: torch.dtype = torch.float32):
        self.replacements = {torch.float64: float64, torch.bfloat16: bfloat16}
        self.replacements = {k: v for k, v in self.replacements.items() if k != v}

    def call(self, program: ExportedProgram) -> PassResult:
        self._reject_complex(program)
        program, modified = self._replace_dtypes(program)
        modified |= self._insert_casts(program)
        if modified:
            program.graph_module.recompile()
        return PassResult(program, modified)

    @staticmethod
    def _reject_complex(program: ExportedProgram) -> None:
        """Raise UnsupportedOpError naming every node that makes a complex tensor."""
        bad = [n for n in program.graph.nodes
               if isinstance(n.meta.get("val"), torch.Tensor) and n.meta["val"].dtype in COMPLEX]
        if bad:
            lines = "\n".join(f"  {n.format_node()}  {source_line(n)}" for n in bad[:10])
            raise UnsupportedOpError(f"complex tensors have no NNEF/tract equivalent; made by:\n{lines}")

    def _replace_dtypes(self, program: ExportedProgram) -> tuple[ExportedProgram, bool]:
        """Swap replaced dtypes in lifted tensors, placeholders and dtype arguments, then re-infer meta."""
        if not self.replacements:
            return program, False
        swap = self.replacements
        state_dict, constants, changed = dict(program.state_dict), dict(program.constants), False
        mode = fake_mode(program)
        for node, spec in placeholders(program):
            val = node.meta.get("val")
            if not isinstance(val, torch.Tensor) or val.dtype not in swap:
                continue
            changed = True
            new = swap[val.dtype]
            if spec.kind == InputKind.USER_INPUT:
                log.warning("input %s is %s: the NNEF graph takes it as %s", node.name, val.dtype, new)
            store = state_dict if spec.target in state_dict else constants
            if spec.target in store:
                converted = store[spec.target].detach().to(new)
                is_param = isinstance(store[spec.target], torch.nn.Parameter)
                store[spec.target] = torch.nn.Parameter(converted, requires_grad=False) if is_param else converted
            with mode:
                node.meta["val"] = val.to(new)
        for node in program.graph.nodes:
            if node.op != "call_function":
                continue
            dtype = node.kwargs.get("dtype")
            if dtype in swap:
                node.update_kwarg("dtype", swap[dtype])
                changed = True
            vals = node.meta.get("val")
            if isinstance(vals, torch.Tensor) and vals.dtype in swap:
                changed = True
        if not changed:
            return program, False
        log.warning("dtypes %s are computed as %s", ", ".join(map(str, swap)), ", ".join(map(str, swap.values())))
        propagate_meta(program)
        return replace(program, state_dict=state_dict, constants=constants), True

    @staticmethod
    def _insert_casts(program: ExportedProgram) -> bool:
        """Insert `_to_copy` casts so every promoting op reads operands of its computation dtype."""
        graph, new = program.graph, []
        for node in list(graph.nodes):
            if node.op != "call_function":
                continue
            dtype = _operand_dtype(node)
            if dtype is None:
                continue
            skip = CONDITIONS.get(node.target, ())
            for pos, arg in _tensor_args(node):
                if pos in skip or arg.meta["val"].dtype == dtype:
                    continue
                with graph.inserting_before(node):
                    cast = graph.call_function(aten._to_copy.default, (arg,), {"dtype": dtype})
                cast.meta.update({k: v for k, v in node.meta.items() if k in ("stack_trace", "nn_module_stack")})
                new.append(cast)
                if isinstance(pos, tuple):
                    items = list(node.args[pos[0]])
                    items[pos[1]] = cast
                    node.update_arg(pos[0], items)
                else:
                    node.update_arg(pos, cast)
        if new:
            propagate_meta(program, new)
        return bool(new)
