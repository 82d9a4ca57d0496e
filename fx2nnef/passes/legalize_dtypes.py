"""LegalizeDtypesPass: every dtype is one the target runs, every type promotion is an explicit cast."""
from __future__ import annotations

import logging
import operator

import torch
from torch._prims_common import ELEMENTWISE_TYPE_PROMOTION_KIND, elementwise_dtypes
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, TensorArgument

from ..compiler.pass_base import Pass, PassResult
from ..compiler.program import (OUTPUT_NAMES, fake_mode, input_name, output_node, placeholders, propagate_meta,
                                replace)
from ..compiler.weights import placeholder_like, source_of

log = logging.getLogger("fx2nnef")
aten = torch.ops.aten

# argument positions that are boolean conditions, not promoted operands
CONDITIONS = {aten.where.self: (0,), aten.masked_fill.Scalar: (1,), aten.masked_fill.Tensor: (1,)}
LOGICAL = {aten.logical_and.default, aten.logical_or.default, aten.logical_xor.default, aten.logical_not.default}
# non-pointwise ops whose tensor operands torch promotes to the output dtype
PROMOTING = {aten.cat.default, aten.stack.default}
# ops whose f16 results lose accuracy (long accumulations, exponentials over a row, variances), by
# group: the groups in `f16_in_f32` read f32 operands and their result is cast back to f16
# ("attention-without-sdpa" is "attention" when tract's fused sdpa accumulates in f32 itself)
SENSITIVE = {
    "attention": {aten.softmax.int, aten._softmax.default, aten.log_softmax.int, aten._log_softmax.default,
                  aten.scaled_dot_product_attention.default},
    "norm": {aten.layer_norm.default, aten.native_layer_norm.default, aten.group_norm.default,
             aten.native_group_norm.default, aten._native_batch_norm_legit_no_training.default,
             aten.linalg_vector_norm.default, aten.rms_norm.default},
    "linear": {aten.linear.default, aten.matmul.default, aten.mm.default, aten.bmm.default, aten.addmm.default,
               aten.baddbmm.default, aten.convolution.default},
}
SENSITIVE["all"] = set().union(*SENSITIVE.values())


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


def _dtype_of(value) -> torch.dtype | None:
    """Return the dtype of a tensor-valued fx node, else None."""
    val = value.meta.get("val") if isinstance(value, torch.fx.Node) else None
    return val.dtype if isinstance(val, torch.Tensor) else None


def _is_f16_result(node: torch.fx.Node) -> bool:
    """Tell whether a node's (first) result is an f16 tensor."""
    val = node.meta.get("val")
    first = val[0] if isinstance(val, (tuple, list)) and val else val
    return isinstance(first, torch.Tensor) and first.dtype == torch.float16


class LegalizeDtypesPass(Pass):
    """After it, every tensor has a dtype the target computes in: f64, bf16 and f16 are replaced as
    chosen (`float64`, `bfloat16`, `float16`), and every pointwise op (and cat/stack) reads tensor
    operands of the one dtype it computes in: implicit promotions are explicit casts (`aten._to_copy(x, dtype=...)`). User inputs and outputs whose dtype was replaced
    keep it when it is in `io_dtypes` (a cast follows the input, precedes the output). The
    SENSITIVE ops of the groups in `f16_in_f32` ("attention", "norm", "linear"; "all") compute on
    f16 in f32 between two casts. Parameters are converted on copies; the user's model is untouched."""

    def __init__(self, float64: torch.dtype = torch.float32, bfloat16: torch.dtype = torch.float32,
                 float16: torch.dtype = torch.float16, *,
                 io_dtypes: frozenset = frozenset({torch.float64, torch.float16}), f16_in_f32: frozenset = frozenset()):
        swap = {torch.float64: float64, torch.bfloat16: bfloat16, torch.float16: float16}
        self.replacements = {k: v for k, v in swap.items() if k != v}
        self.io_dtypes = frozenset(io_dtypes)
        self.sensitive = set().union(*(SENSITIVE[group] for group in f16_in_f32 if group in SENSITIVE))
        if "attention-without-sdpa" in f16_in_f32:
            self.sensitive.discard(aten.scaled_dot_product_attention.default)

    def call(self, program: ExportedProgram) -> PassResult:
        program, modified = self._replace_dtypes(program)
        if self.sensitive:
            modified |= self._upcast_sensitive(program, self.sensitive)
        modified |= self._insert_casts(program)
        if modified:
            program.graph_module.recompile()
        return PassResult(program, modified)

    def _replace_dtypes(self, program: ExportedProgram) -> tuple[ExportedProgram, bool]:
        """Swap replaced dtypes in lifted tensors, placeholders and dtype arguments, then re-infer meta;
        keep the dtype of user inputs/outputs the target can express, with casts at the boundary."""
        swap = self.replacements
        present = {_dtype_of(n) for n in program.graph.nodes} | {n.kwargs.get("dtype") for n in program.graph.nodes}
        present &= set(swap)
        if not present:
            return program, False
        log.warning("the target computes %s", ", ".join(f"{k} as {swap[k]}" for k in sorted(present, key=str)))
        out = output_node(program)
        out_dtypes = [_dtype_of(v) for v in out.args[0]]
        state_dict, constants = dict(program.state_dict), dict(program.constants)
        mode = fake_mode(program)
        kept_inputs = []
        for node, spec in placeholders(program):
            val = node.meta.get("val")
            if not isinstance(val, torch.Tensor) or val.dtype not in swap:
                continue
            new = swap[val.dtype]
            if spec.kind == InputKind.USER_INPUT:
                if val.dtype in self.io_dtypes:
                    log.info("input %s stays %s in the NNEF signature and is cast to %s", input_name(node),
                             val.dtype, new)
                    kept_inputs.append((node, new))
                    continue
                log.warning("input %s is %s: the NNEF graph takes it as %s (the target cannot express %s)",
                            input_name(node), val.dtype, new, val.dtype)
            store = state_dict if spec.target in state_dict else constants
            if spec.target in store:
                is_param = isinstance(store[spec.target], torch.nn.Parameter)
                source = source_of(store[spec.target])
                if source is not None:  # a weight on disk: converted when it is written
                    store[spec.target] = placeholder_like(source, new, parameter=is_param)
                else:
                    converted = store[spec.target].detach().to(new)
                    store[spec.target] = torch.nn.Parameter(converted, requires_grad=False) if is_param else converted
            with mode:
                node.meta["val"] = val.to(new)
        for node in program.graph.nodes:
            if node.op == "call_function" and node.kwargs.get("dtype") in swap:
                node.update_kwarg("dtype", swap[node.kwargs["dtype"]])
        first_op = next(n for n in program.graph.nodes if n.op != "placeholder")
        for node, new in kept_inputs:
            users = list(node.users)
            with program.graph.inserting_before(first_op):
                cast = program.graph.call_function(aten._to_copy.default, (node,), {"dtype": new})
            for user in users:
                user.replace_input_with(node, cast)
        propagate_meta(program)
        self._restore_outputs(program, out, out_dtypes)
        return replace(program, state_dict=state_dict, constants=constants), True

    def _restore_outputs(self, program: ExportedProgram, out: torch.fx.Node, dtypes: list) -> None:
        """Cast outputs back to their original dtype where the target can express it; log the others."""
        values, casts = list(out.args[0]), []
        names = out.meta.get(OUTPUT_NAMES) or [f"output_{i}" for i in range(len(values))]
        for i, (value, dtype) in enumerate(zip(values, dtypes)):
            now = _dtype_of(value)
            if dtype is None or now == dtype:
                continue
            if dtype not in self.io_dtypes:
                log.warning("output %s is %s in PyTorch: the NNEF graph returns it as %s (the target cannot "
                            "express %s)", names[i], dtype, now, dtype)
                continue
            with program.graph.inserting_before(out):
                cast = program.graph.call_function(aten._to_copy.default, (value,), {"dtype": dtype})
            casts.append(cast)
            values[i] = cast
            spec = program.graph_signature.output_specs[i]
            if isinstance(spec.arg, TensorArgument) and spec.arg.name == value.name:
                spec.arg = TensorArgument(name=cast.name)
        if casts:
            out.update_arg(0, type(out.args[0])(values))
            propagate_meta(program, casts)

    @staticmethod
    def _upcast_sensitive(program: ExportedProgram, sensitive: set) -> bool:
        """Make `sensitive` ops on f16 read f32 operands, and cast their f16 results back after them."""
        graph, new, back_casts = program.graph, [], set()
        for node in [n for n in graph.nodes if n.target in sensitive and _is_f16_result(n)]:
            for arg in dict.fromkeys(node.all_input_nodes):
                if arg in back_casts:  # the f32 result of a sensitive op before: read it directly
                    node.replace_input_with(arg, arg.args[0])
                elif _dtype_of(arg) == torch.float16:
                    with graph.inserting_before(node):
                        cast = graph.call_function(aten._to_copy.default, (arg,), {"dtype": torch.float32})
                    node.replace_input_with(arg, cast)
                    new.append(cast)
            if node.kwargs.get("dtype") == torch.float16:
                node.update_kwarg("dtype", torch.float32)
            new.append(node)
            # the results: the node itself, or the getitem users of a multi-output op
            results = [node] if isinstance(node.meta["val"], torch.Tensor) else [
                u for u in node.users if u.target is operator.getitem and _dtype_of(u) == torch.float16]
            for result in results:
                users = list(result.users)
                with graph.inserting_after(result):
                    back = graph.call_function(aten._to_copy.default, (result,), {"dtype": torch.float16})
                for user in users:
                    user.replace_input_with(result, back)
                new += [result, back]
                back_casts.add(back)
        for back in back_casts:
            if not back.users:
                graph.erase_node(back)
                new.remove(back)
        if new:
            propagate_meta(program, new)
        return bool(new)

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
