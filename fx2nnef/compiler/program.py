"""Helpers over `torch.export.ExportedProgram`, the one IR of the compiler.

Passes read and rewrite the program's fx graph in place, then rebuild the program with
`replace()` when the signature, state or call specs change. IO names chosen by the
`flatten_io` pass live in the graph's meta: user-input placeholders carry `meta[INPUT_NAME]`
and the output node carries `meta[OUTPUT_NAMES]`. A parameter placeholder whose weight is stored
block-quantized carries its blocks (a `BlockQuantized`) in `meta[QUANTIZED]`; one whose value is
the model's parameter times a per-output-channel factor (a folded batch norm) carries the factor
in `meta[FOLDED_SCALE]`.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Iterator

import torch
from torch._guards import detect_fake_mode
from torch.export import ExportedProgram
from torch.export.graph_signature import ExportGraphSignature, InputKind, OutputSpec, TensorArgument

from .weights import source_of

INPUT_NAME = "fx2nnef.input_name"
OUTPUT_NAMES = "fx2nnef.output_names"
QUANTIZED = "fx2nnef.quantized"
FOLDED_SCALE = "fx2nnef.folded_scale"


def replace(ep: ExportedProgram, *, graph_module: torch.fx.GraphModule | None = None,
            graph_signature=None, state_dict: dict | None = None, constants: dict | None = None,
            in_spec=None, out_spec=None, forward_arg_names: list[str] | None = None) -> ExportedProgram:
    """Return a new ExportedProgram with some of its parts replaced (the others are shared). Its
    graph module is rebuilt from the graph, which regenerates the code: a pass that edited the
    graph in place and returns `replace(...)` needs no recompile() of its own."""
    gm = graph_module or ep.graph_module
    call_graph = [entry for entry in ep.module_call_graph]
    if in_spec is not None or out_spec is not None or forward_arg_names is not None:
        root = copy.copy(call_graph[0])
        root.signature = copy.copy(root.signature)
        if in_spec is not None:
            root.signature.in_spec = in_spec
        if out_spec is not None:
            root.signature.out_spec = out_spec
        if forward_arg_names is not None:
            root.signature.forward_arg_names = forward_arg_names
        call_graph[0] = root
    return ExportedProgram(
        root=gm, graph=gm.graph, graph_signature=graph_signature or ep.graph_signature,
        state_dict=ep.state_dict if state_dict is None else state_dict,
        range_constraints=ep.range_constraints, module_call_graph=call_graph,
        constants=ep.constants if constants is None else constants, verifiers=ep.verifiers)


def placeholders(ep: ExportedProgram) -> Iterator[tuple[torch.fx.Node, Any]]:
    """Yield (placeholder node, its InputSpec) pairs in signature order."""
    nodes = [n for n in ep.graph.nodes if n.op == "placeholder"]
    yield from zip(nodes, ep.graph_signature.input_specs)


def user_inputs(ep: ExportedProgram) -> list[torch.fx.Node]:
    """Return the placeholders fed by the user at run time, tensors only, in order."""
    return [n for n, spec in placeholders(ep) if spec.kind == InputKind.USER_INPUT
            and isinstance(n.meta.get("val"), torch.Tensor)]


def known_value(ep: ExportedProgram, spec) -> torch.Tensor | None:
    """Return the tensor an input spec holds at export time (a parameter, a buffer the program does
    not mutate, a lifted constant), or None for a user input, a mutated buffer, or a weight that
    stays in its checkpoint file (compiler/weights.py: passes skip what they cannot read)."""
    value = None
    if spec.kind == InputKind.PARAMETER:
        value = ep.state_dict[spec.target].detach()
    elif spec.kind == InputKind.BUFFER and spec.target not in ep.graph_signature.buffers_to_mutate.values():
        value = ep.state_dict.get(spec.target, ep.constants.get(spec.target))
    elif spec.kind == InputKind.CONSTANT_TENSOR:
        value = ep.constants[spec.target]
    return None if value is None or source_of(value) is not None else value


def quantized_weights(ep: ExportedProgram) -> dict[str, Any]:
    """Return state-dict name -> BlockQuantized for the weights the archive stores block-quantized."""
    return {spec.target: node.meta[QUANTIZED] for node, spec in placeholders(ep) if QUANTIZED in node.meta}


def archive_weights(ep: ExportedProgram) -> dict[str, torch.Tensor]:
    """Return parameter name -> the value the model's parameter takes for the model to compute what
    the archive does, for each weight the archive stores block-quantized: its decoded values (the
    program's state), with a folded batch-norm factor divided back out."""
    weights = {}
    for node, spec in placeholders(ep):
        if QUANTIZED in node.meta:
            value = ep.state_dict[spec.target].detach()
            if FOLDED_SCALE in node.meta:
                scale = node.meta[FOLDED_SCALE].to(value.dtype)
                value = value / scale.reshape(-1, *[1] * (value.dim() - 1))
            weights[spec.target] = value
    return weights


def input_name(node: torch.fx.Node) -> str:
    """Return the NNEF name of a user-input placeholder."""
    return node.meta.get(INPUT_NAME, node.name)


def output_node(ep: ExportedProgram) -> torch.fx.Node:
    """Return the graph's output node."""
    return next(n for n in reversed(ep.graph.nodes) if n.op == "output")


def output_values(ep: ExportedProgram) -> list[Any]:
    """Return the flat list of values (nodes or literals) the graph returns."""
    return list(output_node(ep).args[0])


def output_specs(ep: ExportedProgram) -> list[OutputSpec]:
    """Return the output specs renamed to the nodes the output now returns (a pass that bypasses,
    folds or decomposes a returned node leaves its spec naming a node that is gone)."""
    specs = []
    for spec, value in zip(ep.graph_signature.output_specs, output_values(ep)):
        if isinstance(spec.arg, TensorArgument) and isinstance(value, torch.fx.Node):
            spec = dataclasses.replace(spec, arg=TensorArgument(value.name))
        specs.append(spec)
    return specs


def renamed_outputs(ep: ExportedProgram) -> ExportGraphSignature:
    """Return the graph signature with its output specs renamed to the nodes the output returns
    now (for `replace(ep, graph_signature=...)` after a pass replaced a returned node)."""
    return ExportGraphSignature(ep.graph_signature.input_specs, output_specs(ep))


def fake_mode(ep: ExportedProgram):
    """Return the FakeTensorMode that produced the graph's meta values."""
    vals = [n.meta["val"] for n in ep.graph.nodes if isinstance(n.meta.get("val"), torch.Tensor)]
    return detect_fake_mode(vals)


def propagate_meta(ep: ExportedProgram, nodes=None) -> None:
    """Recompute meta["val"] of call_function nodes (all, or those given) from their inputs' meta."""
    mode = fake_mode(ep)
    wanted = None if nodes is None else set(nodes)

    def meta_of(a):
        return a.meta["val"] if isinstance(a, torch.fx.Node) else a

    with mode:
        for node in ep.graph.nodes:
            if node.op != "call_function" or (wanted is not None and node not in wanted):
                continue
            args = torch.fx.node.map_aggregate(node.args, meta_of)
            kwargs = torch.fx.node.map_aggregate(node.kwargs, meta_of)
            node.meta["val"] = node.target(*args, **kwargs)


def mutates(target: Any) -> bool:
    """Tell whether a call target is an ATen op that writes into one of its arguments."""
    return isinstance(target, torch._ops.OpOverload) and target._schema.is_mutable


def source_line(node: torch.fx.Node) -> str:
    """Return the user's source line that created a node ("file:line in fn: code"), or ''."""
    trace = node.meta.get("stack_trace") or ""
    lines = [ln.strip() for ln in trace.strip().splitlines()]
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("File "):
            code = lines[i + 1] if i + 1 < len(lines) and not lines[i + 1].startswith("File ") else ""
            return f"{lines[i][5:]}: {code}".strip().rstrip(":")
    module_stack = node.meta.get("nn_module_stack")
    if module_stack:
        path, cls = list(module_stack.values())[-1]
        return f"in module {path or '<root>'} ({getattr(cls, '__name__', cls)})"
    return ""
