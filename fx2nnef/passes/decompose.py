"""DecomposePass: decompose, with torch's own table, exactly the ops the registry cannot lower."""
from __future__ import annotations

import functools
import operator
from typing import Callable

import torch
from torch.export import ExportedProgram
from torch.fx.experimental.proxy_tensor import make_fx
from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols
from torch.utils import _pytree as pytree

from ..backends.nnef.registry import LoweringRegistry
from ..compiler.pass_base import Pass, PassResult, count_ops
from ..compiler.program import fake_mode, mutates, renamed_outputs, replace

# ops whose decomposition reads no size (a conversion: `_to_copy` or the input itself), so tracing them
# on symbolic shapes adds no guard; any other op of a symbolic graph is decomposed by torch's retrace
SIZE_BLIND = {torch.ops.aten.to.dtype, torch.ops.aten.to.device, torch.ops.aten.to.dtype_layout,
              torch.ops.aten.to.other, torch.ops.aten.type_as.default}

# node meta that tells where a node comes from: decomposed nodes inherit it from the node they replace
PROVENANCE = ("stack_trace", "nn_module_stack", "source_fn_stack", "from_node")


def decomposition_table(registry: LoweringRegistry) -> dict:
    """Return torch.export's default decomposition table minus every op the registry lowers."""
    table = torch.export.default_decompositions()
    for op in list(table.keys()):
        if op.name() in registry:
            table.pop(op)
    return table


@functools.cache
def _default_table() -> dict:
    """Return torch's core-ATen decomposition table as a plain dict: torch.export's default table
    without its CompositeImplicitAutograd entries, which `_decomposition` and make_fx handle
    (the private builder takes 4 ms; materializing the public table takes 0.2 s)."""
    core = getattr(torch._decomp, "_core_aten_decompositions_post_autograd", None)
    return dict(core()) if core else dict(torch.export.default_decompositions().items())


def _is_static(value) -> bool:
    """Tell whether a meta value has no symbolic size (tensors, or lists/tuples of them)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return all(not isinstance(v, torch.Tensor) or all(isinstance(d, int) for d in v.shape) for v in values)


def _mutates_state(program: ExportedProgram) -> bool:
    """Tell whether the program writes into its buffers or inputs."""
    signature = program.graph_signature
    return bool(signature.buffers_to_mutate or signature.user_inputs_to_mutate)


def _needs_functionalization(program: ExportedProgram) -> bool:
    """Tell whether only torch's whole-program decomposition can handle the graph: it mutates
    state, holds higher-order ops (grad/autocast regions, control flow, effects) or sizes read from
    tensor data (unbacked symbols, which its retrace binds)."""
    if _mutates_state(program):
        return True
    for node in program.graph.nodes:
        if node.op == "call_function":
            if isinstance(node.target, torch._ops.HigherOrderOperator):
                return True
            if mutates(node.target):
                return True
            if node.target is torch.ops.aten.batch_norm.default and node.args[5] and node.args[3] is not None:
                return True  # training with running statistics: updates them, though its schema says no
        if free_unbacked_symbols(node.meta.get("val")):
            return True
    return False


def _aliases(node: torch.fx.Node) -> bool:
    """Tell whether a node's output may share memory with an input (a view, or anything unknown);
    an item of a tuple result (topk's values) aliases when its op's result does."""
    if node.op == "call_function" and node.target is operator.getitem and isinstance(node.args[0], torch.fx.Node):
        node = node.args[0]
    if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
        return True
    return any(r.alias_info is not None for r in node.target._schema.returns)


def _functional_variant(op: torch._ops.OpOverload) -> torch._ops.OpOverload | None:
    """Return the out-of-place overload of an in-place op (aten.add_.Tensor -> aten.add.Tensor)."""
    name = op._schema.name.split("::")[-1]
    if not name.endswith("_") or name.startswith("_"):
        return None
    packet = getattr(torch.ops.aten, name[:-1], None)
    overload = getattr(packet, op._overloadname, None) if packet is not None else None
    return overload if isinstance(overload, torch._ops.OpOverload) and not mutates(overload) else None


def _functionalize_private_in_place(graph: torch.fx.Graph) -> bool:
    """Replace each in-place op whose mutation nobody else can observe by its functional form: it
    writes into an intermediate that is no view, whose other readers all run before it and are no
    views either (`hidden += residual` in a ResNet block). Tell whether any was replaced."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    replaced = False
    for node in list(graph.nodes):
        if node.op != "call_function" or not mutates(node.target):
            continue
        functional, written = _functional_variant(node.target), node.args[0] if node.args else None
        if functional is None or not isinstance(written, torch.fx.Node) or _aliases(written) or any(
                user is not node and (order[user] > order[node] or _aliases(user)) for user in written.users):
            continue
        with graph.inserting_before(node):
            new = graph.call_function(functional, node.args, node.kwargs)
        new.meta = dict(node.meta)
        order[new] = order[node]
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        replaced = True
    return replaced


def _decomposition(op, registry: LoweringRegistry, table) -> Callable | None:
    """Return the function that decomposes an op the registry does not lower, or None."""
    if not isinstance(op, torch._ops.OpOverload) or op.name() in registry:
        return None
    if op in table:
        return table[op]
    if torch._C._dispatch_has_kernel_for_dispatch_key(op.name(), "CompositeImplicitAutograd"):
        return op.decompose
    return None


def _mutable(value):
    """Return fx's immutable argument lists/dicts as plain ones (decompositions may edit them)."""
    if isinstance(value, list):
        return [_mutable(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_mutable(v) for v in value)
    if isinstance(value, dict):
        return {k: _mutable(v) for k, v in value.items()}
    return value


def _trace(node: torch.fx.Node, fn: Callable, table, mode) -> torch.fx.GraphModule:
    """Return the graph make_fx traces from `fn` called like `node`, on the node's fake inputs."""
    flat, spec = pytree.tree_flatten(_mutable((tuple(node.args), dict(node.kwargs))))
    positions = [i for i, a in enumerate(flat) if isinstance(a, torch.fx.Node)]

    def call(*tensors):
        values = list(flat)
        for i, t in zip(positions, tensors):
            values[i] = t
        args, kwargs = pytree.tree_unflatten(values, spec)
        return fn(*args, **kwargs)

    with mode:
        return make_fx(call, decomposition_table=table)(*[flat[i].meta["val"] for i in positions])


def _signature(node: torch.fx.Node):
    """Return a hashable key of what a node's decomposition depends on (op, input shapes and dtypes,
    other arguments), or None when an argument is not hashable."""
    def key(a):
        if isinstance(a, torch.fx.Node):
            v = a.meta.get("val")
            return ("tensor", tuple(v.shape), v.dtype, v.device) if isinstance(v, torch.Tensor) else ("node", a)
        return a
    try:
        flat, spec = pytree.tree_flatten((node.args, node.kwargs))
        signature = (node.target, str(spec), tuple(key(a) for a in flat))
        hash(signature)
        return signature
    except TypeError:
        return None


def _inlinable(node: torch.fx.Node, sub: torch.fx.GraphModule, registry: LoweringRegistry) -> bool:
    """Tell whether a traced decomposition can replace its node: it creates no constant and no
    mutation, every op it emits is lowered (or returns nothing, like an assertion), and a tuple
    result is only read item by item."""
    for sub_node in sub.graph.nodes:
        if sub_node.op == "get_attr":
            return False
        if sub_node.op == "call_function" and sub_node.target is not operator.getitem and not (
                isinstance(sub_node.target, torch._ops.OpOverload) and not mutates(sub_node.target)
                and (sub_node.target.name() in registry or not sub_node.target._schema.returns)):
            return False
    return not isinstance(node.meta.get("val"), (list, tuple)) or all(
        user.target is operator.getitem for user in node.users)


def _inline(graph: torch.fx.Graph, node: torch.fx.Node, sub: torch.fx.GraphModule) -> None:
    """Replace a node by a traced decomposition of it, whose placeholders are the node's inputs."""
    inputs = [a for a in pytree.tree_leaves((node.args, node.kwargs)) if isinstance(a, torch.fx.Node)]
    env = dict(zip([n for n in sub.graph.nodes if n.op == "placeholder"], inputs))
    result = None
    with graph.inserting_before(node):
        for sub_node in sub.graph.nodes:
            if sub_node.op == "output":
                result = torch.fx.node.map_arg(sub_node.args[0], env.__getitem__)
            elif sub_node.op != "placeholder":
                env[sub_node] = graph.node_copy(sub_node, env.__getitem__)
                env[sub_node].meta.update({k: node.meta[k] for k in PROVENANCE if k in node.meta})
    _replace_uses(graph, node, result)
    graph.erase_node(node)


def _replace_uses(graph: torch.fx.Graph, node: torch.fx.Node, result) -> None:
    """Make the node's users use `result`; for a (nested) list result, each getitem user is replaced
    by its item (histogramdd returns a tensor and a list of tensors)."""
    if not isinstance(result, (list, tuple)):
        node.replace_all_uses_with(result)
        return
    for user in list(node.users):
        _replace_uses(graph, user, result[user.args[1]])
        graph.erase_node(user)


class DecomposePass(Pass):
    """After it, the graph is functional ATen, and every op with a lowering is kept whole while
    every other op that torch can decompose is decomposed (into ops that may have lowerings).

    A functional graph with static shapes is decomposed node by node, only where the registry has
    no lowering (fast: the rest of the graph is untouched); so is a functional graph with symbolic
    shapes whose ops to decompose are all SIZE_BLIND conversions (an LLM with its cache as IO). A
    graph that mutates state, holds higher-order ops or sizes read from data, or has symbolic shapes
    and other ops to decompose goes through torch's `run_decompositions`, which functionalizes it
    by retracing the whole program. Size computations (SymInt results such as `sym_size`) are
    never decomposed: the lowering reads their values."""

    def __init__(self, registry: LoweringRegistry | None = None):
        self.registry = registry or LoweringRegistry.from_default()

    def call(self, program: ExportedProgram) -> PassResult:
        before = count_ops(program)
        functionalized = not _mutates_state(program) and _functionalize_private_in_place(program.graph)
        if not _needs_functionalization(program):
            decompositions = self._trace_decompositions(program)
            if decompositions is not None:
                modified = functionalized or bool(decompositions)
                return PassResult(self._inline_all(program, decompositions) if modified else program, modified)
        program = program.run_decompositions(decomposition_table(self.registry))
        return PassResult(program, count_ops(program) != before)

    def _trace_decompositions(self, program: ExportedProgram) -> dict | None:
        """Return node -> traced decomposition for each node the registry cannot lower but torch
        can decompose, or None when one of them cannot be inlined (then the whole program is)."""
        table = {op: fn for op, fn in _default_table().items() if op.name() not in self.registry}
        mode, decompositions, traced = fake_mode(program), {}, {}
        symbolic = not all(_is_static(node.meta.get("val")) for node in program.graph.nodes)
        for node in program.graph.nodes:
            size = isinstance(node.meta.get("val"), (torch.SymInt, torch.SymFloat, torch.SymBool))
            fn = _decomposition(node.target, self.registry, table) if node.op == "call_function" and not size else None
            if fn is None:
                continue
            if symbolic and node.target not in SIZE_BLIND:  # its trace could fix a symbol (a guard)
                return None
            key = _signature(node) or node  # nodes alike (13 dropouts of a BERT) share one trace
            if key not in traced:
                traced[key] = _trace(node, fn, table, mode)
            sub = traced[key]
            if not _inlinable(node, sub, self.registry):
                return None
            decompositions[node] = sub
        return decompositions

    def _inline_all(self, program: ExportedProgram, decompositions: dict) -> ExportedProgram:
        """Replace, in place, each node by its decomposition; return the program with its output
        specs renamed to the nodes that now compute the outputs."""
        for node, sub in decompositions.items():
            _inline(program.graph, node, sub)
        program.graph.eliminate_dead_code()
        signature = renamed_outputs(program)
        return replace(program, graph_signature=signature)
