"""FoldPrimitivesPass: evaluate at export time everything that does not depend on runtime data."""
from __future__ import annotations

import logging

import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import ExportGraphSignature, InputKind, InputSpec, TensorArgument

from ..compiler.pass_base import Pass, PassResult
from ..compiler.program import known_value, mutates, output_specs, placeholders, replace

aten = torch.ops.aten
log = logging.getLogger("fx2nnef")

# ops that only check, and have no value used downstream; _linalg_check_errors raises when a linalg
# op's `info` is non-zero (a singular matrix for linalg.inv): NNEF has no errors, so the outputs keep
# the inf/NaN values the arithmetic gives (the `_ex` ops return `info` itself)
ASSERTIONS = {
    aten._assert_tensor_metadata.default, aten._assert_scalar.default, aten._assert_async.msg,
    aten._assert_async.default, aten.sym_constrain_range_for_size.default, aten.sym_constrain_range.default,
    aten._functional_assert_async.msg, aten._linalg_check_errors.default,
}
# ops whose output equals their first input when the dtype and shape do not change
IDENTITIES = {
    aten.clone.default, aten.alias.default, aten.detach.default, aten.lift_fresh_copy.default,
    aten.contiguous.default, aten._to_copy.default, aten.to.dtype, aten.view.default, aten.reshape.default,
    aten._unsafe_view.default, aten.expand.default, aten.dropout.default, aten.type_as.default,
    aten.alias_copy.default, aten.detach_copy.default, aten.view_copy.default, aten.expand_copy.default,
}
# ops evaluated by a stride-agnostic equivalent when folding
STRIDE_FREE = {aten.view.default: aten.reshape.default, aten._unsafe_view.default: aten.reshape.default}
# a folded constant larger than this many elements is left as computation
MAX_FOLDED_NUMEL = 1 << 20


def _is_identity(node: torch.fx.Node) -> bool:
    """Tell whether an IDENTITIES node returns its input unchanged (same dtype and static shape)."""
    if node.target not in IDENTITIES or not isinstance(node.args[0], torch.fx.Node):
        return False
    if any(user.op == "output" for user in node.users):  # the output signature names this node
        return False
    if node.target is aten.dropout.default and node.args[2:3] == (True,):
        return False
    src, dst = node.args[0].meta.get("val"), node.meta.get("val")
    if not (isinstance(src, torch.Tensor) and isinstance(dst, torch.Tensor)):
        return False
    return src.dtype == dst.dtype and src.shape == dst.shape and src.device == dst.device


def _keeps_integers(node: torch.fx.Node) -> bool:
    """Tell whether `node` dequantizes (PT2E): a dequantized constant stays as its integers and scales,
    which the archive stores (folded, it would be a float constant 4x the size)."""
    target = node.target
    return isinstance(target, torch._ops.OpOverload) and target.namespace == "quantized_decomposed" \
        and target.name().split("::")[1].startswith("dequantize")


def _is_foldable(node: torch.fx.Node, constant: set[torch.fx.Node]) -> bool:
    """Tell whether a call can be evaluated now: deterministic, all inputs constant."""
    if node.op != "call_function" or node.target in ASSERTIONS or _keeps_integers(node):
        return False
    if isinstance(node.target, torch._ops.OpOverload) and torch.Tag.nondeterministic_seeded in node.target.tags:
        return False
    inputs = node.all_input_nodes
    if not all(n in constant for n in inputs):
        return False
    val = node.meta.get("val")
    values = val if isinstance(val, (list, tuple)) else [val]
    for v in values:
        if isinstance(v, torch.SymInt | torch.SymFloat | torch.SymBool):
            return False
        if isinstance(v, torch.Tensor) and (v.numel() > MAX_FOLDED_NUMEL or any(
                not isinstance(d, int) for d in v.shape)):
            return False
    return True


def _is_empty(node: torch.fx.Node) -> bool:
    """Tell whether a node's value is a tensor of static shape with no elements."""
    val = node.meta.get("val")
    return isinstance(val, torch.Tensor) and all(isinstance(d, int) for d in val.shape) and val.numel() == 0


class FoldPrimitivesPass(Pass):
    """After it, no node computes a value that is known at export time: assertions are gone, no-op
    clones/casts/views/dropouts are bypassed, and every subgraph computed only from constants,
    buffers, parameters and Python scalars is replaced by a lifted constant tensor (parameters
    read as they are stay parameters, with their module-path labels). A tensor with no elements (a
    static size-0 dim) is known too, whatever it is computed from: no op computes on or produces
    one (a user input stays an input). Anything else that depends on a user input or a symbolic
    dimension stays in the graph, and so do dequantizations of quantized constants (PT2E's int8
    weights stay int8)."""

    def call(self, program: ExportedProgram) -> PassResult:
        graph = program.graph
        modified = False
        for node in list(graph.nodes):
            if node.op == "call_function" and node.target in ASSERTIONS and not node.users:
                graph.erase_node(node)
                modified = True
            elif node.op == "call_function" and _is_identity(node):
                node.replace_all_uses_with(node.args[0])
                graph.erase_node(node)
                modified = True

        # what is computed from weights only is a constant too
        values: dict[torch.fx.Node, object] = {node: value for node, spec in placeholders(program)
                                               if (value := known_value(program, spec)) is not None}
        for node in graph.nodes:
            if node.op in ("placeholder", "call_function") and node not in values and _is_empty(node):
                values[node] = torch.empty(node.meta["val"].shape, dtype=node.meta["val"].dtype)
            elif _is_foldable(node, values.keys()):
                args = torch.fx.node.map_arg(node.args, lambda n: values[n])
                kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: values[n])
                try:  # views as reshapes: the bypassed no-op clones leave some inputs non-contiguous
                    values[node] = STRIDE_FREE.get(node.target, node.target)(*args, **kwargs)
                except Exception as e:  # noqa: BLE001  (what eager cannot compute stays in the graph)
                    log.debug("not folded: %s (%s)", node.format_node(), e)

        specs = list(program.graph_signature.input_specs)
        constants = dict(program.constants)
        first_user_input = next((n for n, s in placeholders(program) if s.kind == InputKind.USER_INPUT), None)
        insert_at = specs.index(next(s for n, s in placeholders(program) if n is first_user_input)) \
            if first_user_input is not None else len(specs)
        for node in list(graph.nodes):
            if node.op != "call_function" or node not in values or not isinstance(values[node], torch.Tensor):
                continue
            if not node.users and not mutates(node.target):
                graph.erase_node(node)  # dead, and known: dead code elimination keeps seeded ops (sdpa)
                modified = True
                continue
            if all(u in values for u in node.users):
                continue  # an inner node of a larger constant subgraph
            name = f"c_{node.name}"
            placeholder = self._placeholder(graph, name, first_user_input)
            placeholder.meta = dict(node.meta)
            node.replace_all_uses_with(placeholder)
            constants[name] = values[node].detach().clone().contiguous()
            specs.insert(insert_at, InputSpec(InputKind.CONSTANT_TENSOR, TensorArgument(placeholder.name), name))
            insert_at += 1
            modified = True
        modified |= graph.eliminate_dead_code(is_impure_node=lambda n: n.op == "placeholder" or n.is_impure())
        if not modified:
            return PassResult(program, False)
        signature = ExportGraphSignature(specs, output_specs(program))
        return PassResult(replace(program, graph_signature=signature, constants=constants), True)

    @staticmethod
    def _placeholder(graph: torch.fx.Graph, name: str, before: torch.fx.Node | None) -> torch.fx.Node:
        """Create a placeholder before the first user input (placeholders keep signature order)."""
        anchor = before or next(n for n in graph.nodes if n.op != "placeholder")
        with graph.inserting_before(anchor):
            return graph.placeholder(name)

