"""Check an NNEF graph against the rules of the dialect tract accepts, before tract sees it.

Many malformed graphs do not fail cleanly in tract 0.23.9: they abort the whole Python process
(a Rust panic across the FFI) or give silently wrong numbers (tract_nnef.md §0). `validate`
rejects them with an InvalidGraphError that names the operation and the broken rule.
"""
from __future__ import annotations

from typing import Any, Callable

import networkx as nx
import numpy as np

from fx2nnef.backends.nnef.graph import Graph, Operation, Tensor, block_format, tensors_in
from fx2nnef.errors import InvalidGraphError

BINARY_OPS = frozenset({
    "add", "sub", "mul", "div", "pow", "min", "max",
    "lt", "gt", "le", "ge", "eq", "ne", "and", "or",
    "tract_core_xor", "tract_core_bitand", "tract_core_bitor", "tract_core_bitxor",
    "tract_shl", "tract_shr",
})
BROADCAST_OPS = BINARY_OPS | {"select"}
POOL_OPS = frozenset({"max_pool", "avg_pool", "box", "max_pool_with_index", "rms_pool"})
POOL_LISTS = ("size", "stride", "padding", "dilation")
EXTERNAL_OPS = frozenset({"external", "tract_core_external"})
BORDERS = {
    "conv": ("constant",),
    "deconv": ("constant",),
    "pad": ("constant", "reflect", "replicated"),
    **{name: ("constant", "ignore") for name in POOL_OPS},
}
SLICE_END_LIMIT = 2**31   # torch.export writes 2**63 - 1 for an open end (`x[1:]`)

Rule = Callable[[Operation], str | None]


def describe(op: Operation) -> str:
    """Return how error messages name an operation, e.g. `y = add(...)`."""
    output = op.outputs[0].name if op.outputs else "<no output>"
    return f"{output} = {op.name}(...)"


def _is_int(value: Any) -> bool:
    """Tell whether `value` is a Python or numpy integer (bools excluded)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    """Tell whether `value` is an integer or a non-NaN float (bools excluded)."""
    if isinstance(value, (float, np.floating)):
        return not np.isnan(value)
    return _is_int(value)


def _rank(value: Any) -> int | None:
    """Return the rank of a tensor argument whose shape is known, else None."""
    if isinstance(value, Tensor) and value.shape is not None:
        return len(value.shape)
    return None


def _operand(op: Operation, index: int, name: str) -> Any:
    """Return the argument at position `index`, or the attribute `name` when not positional."""
    return op.args[index] if len(op.args) > index else op.attribs.get(name)


def _static_dim(tensor: Any, axis: Any) -> int | None:
    """Return the static size of `tensor` along `axis`, or None when it is unknown or symbolic."""
    rank = _rank(tensor)
    if rank is None or not _is_int(axis) or not 0 <= axis < rank:
        return None
    dim = tensor.shape[axis]
    return int(dim) if _is_int(dim) else None


# --------------------------------------------------------------------------------------------
# Operation rules: each returns a problem description, or None when the operation is fine.


def _negative_axes(op: Operation) -> str | None:
    """Reject a negative integer `axis`/`axes` attribute (tract needs axes >= 0)."""
    for key in ("axis", "axes"):
        value = op.attribs.get(key)
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(_is_int(item) and item < 0 for item in values):
            return (
                f"{key} = {value} is negative; tract needs axes >= 0 (a negative axis aborts "
                "the process in sum_reduce, concat and slice): add the input rank"
            )
    return None


def _empty_reduction(op: Operation) -> str | None:
    """Reject a reduction over an axis of static size 0 (tract divides by zero and aborts)."""
    if not op.name.endswith("_reduce") or not op.args or not isinstance(op.args[0], Tensor):
        return None
    shape = op.args[0].shape or ()
    empty = [a for a in op.attribs.get("axes", ()) if _is_int(a) and a < len(shape) and shape[a] == 0]
    if empty:
        return f"reduces over axes {empty} of size 0 (tract aborts the process): fold it to a constant"
    return None


def _argument_count(op: Operation) -> str | None:
    """Require exactly two operands for binary ops and three for `select`."""
    expected = 3 if op.name == "select" else 2 if op.name in BINARY_OPS else None
    count = len(op.args) + len(op.attribs)
    if expected is not None and count != expected:
        return (
            f"{op.name} takes exactly {expected} arguments, got {count} "
            "(tract aborts the process otherwise)"
        )
    return None


def _broadcast_ranks(op: Operation) -> str | None:
    """Reject element-wise operands of different non-zero ranks (tract pads ranks at the end)."""
    if op.name not in BROADCAST_OPS:
        return None
    ranks = [_rank(arg) for arg in list(op.args) + list(op.attribs.values())]
    known = sorted({rank for rank in ranks if rank})
    if len(known) > 1:
        return (
            f"operand ranks {ranks} differ: tract pads the lower rank with trailing unit axes, "
            "not leading ones as numpy/torch do, which silently gives wrong results; unsqueeze "
            "the lower-rank operand to the same rank"
        )
    return None


def _matmul_ranks(op: Operation) -> str | None:
    """Require `matmul` operands of equal rank when both ranks are known."""
    if op.name != "matmul":
        return None
    a, b = _rank(_operand(op, 0, "A")), _rank(_operand(op, 1, "B"))
    if a is not None and b is not None and a != b:
        return f"operand ranks {a} and {b} differ; tract matmul needs equal ranks: unsqueeze one"
    return None


def _slice_bounds(op: Operation) -> str | None:
    """Reject `slice` bounds that tract refuses, misreads or aborts on."""
    if op.name != "slice":
        return None
    source = _operand(op, 0, "input")
    bounds = zip(*(op.attribs.get(key, []) for key in ("axes", "begin", "end")))
    for axis, begin, end in bounds:
        dim = _static_dim(source, axis)
        where = f"on axis {axis}"
        if _is_int(begin) and begin < 0:
            return f"begin {begin} {where} is negative; tract rejects it: write dim + begin"
        if not _is_int(end):
            continue
        if end >= SLICE_END_LIMIT:
            return (
                f"end {end} {where} is an open-end sentinel; tract silently drops an element "
                "or aborts: write the dim size (or a symbol expression) instead"
            )
        if end == 0 and _is_int(begin) and begin > 0:
            return (
                f"end 0 {where} means the end of the axis for tract when begin > 0 (torch "
                "reads an empty slice): write the dim size, or drop the op for an empty slice"
            )
        if dim is not None and end > dim:
            return f"end {end} {where} is beyond the dim size {dim}"
        stop = end if end > 0 else None if dim is None else dim + end  # end <= 0 counts from the end
        if _is_int(begin) and stop is not None and begin > stop:
            return f"begin {begin} > end {end} {where} (tract aborts the process)"
    return None


def _gather_bounds(op: Operation) -> str | None:
    """Reject a `tract_core_gather` whose constant indices fall outside the gathered axis: tract
    aborts the process on them."""
    if op.name != "tract_core_gather":
        return None
    index, axis = _operand(op, 1, "indices"), op.attribs.get("axis", 0)
    dim = _static_dim(_operand(op, 0, "input"), axis)
    data = index.data if isinstance(index, Tensor) else None
    if dim is None or data is None or np.size(data) == 0:
        return None
    low, high = int(np.min(data)), int(np.max(data))
    if low < -dim or high >= dim:
        bad = high if high >= dim else low
        return f"constant index {bad} is outside axis {axis} of size {dim} (tract aborts the process)"
    return None


def _pool_ranks(op: Operation) -> str | None:
    """Require full-rank size/stride/padding/dilation lists on pooling ops."""
    if op.name not in POOL_OPS:
        return None
    given = {key: op.attribs[key] for key in POOL_LISTS if op.attribs.get(key)}
    rank = _rank(_operand(op, 0, "input"))
    if rank is None and "size" in given:
        rank = len(given["size"])  # input rank unknown: every list must match size
    for key, value in given.items():
        if rank is not None and len(value) != rank:
            return (
                f"{key} has {len(value)} entries, expected {rank} (one per input axis, N and C "
                "included); tract pools need full-rank lists and spatial-only padding aborts "
                "the process"
            )
    return None


def _pool_input_rank(op: Operation) -> str | None:
    """Require a pooling input of rank 3 or more (tract reads axes 0 and 1 as N and C)."""
    rank = _rank(_operand(op, 0, "input"))
    if op.name not in POOL_OPS or rank is None or rank >= 3:
        return None
    return (f"the input has rank {rank}: tract's pools read axes 0 and 1 as batch and channel and abort the "
            "process on an input without a spatial axis; unsqueeze an unbatched input to (1, C, L)")


def _reshape_target(op: Operation) -> str | None:
    """Reject a `reshape` to no shape (tract refuses it) or to a size-0 dim written as 0 (NNEF
    reads 0 as "copy the input's dim": tract then computes another shape, or refuses it)."""
    if op.name != "reshape" or "shape" not in op.attribs:
        return None
    shape, out = list(op.attribs["shape"]), op.outputs[0].shape
    if not shape and _rank(_operand(op, 0, "input")):
        return "shape = [] (a 0-d result): tract refuses it at load; squeeze the unit axes instead"
    zeros = [i for i, d in enumerate(shape) if _is_int(d) and d == 0 and out is not None and i < len(out) and out[i] == 0]
    if zeros:
        return (f"shape {shape} writes the size-0 dim(s) {zeros} as 0, which NNEF reads as a copy of the input's "
                "dim: an empty tensor is a constant (fold it)")
    return None


def _border(op: Operation) -> str | None:
    """Reject a `border` value that tract does not implement for the op."""
    allowed = BORDERS.get(op.name)
    border = op.attribs.get("border")
    if allowed is None or border is None or border in allowed:
        return None
    outcome = "rejects it" if op.name == "pad" else "aborts the process"
    return f"border {border!r} is not one of {list(allowed)} (tract {outcome})"


def _variable_attributes(op: Operation) -> str | None:
    """Require a `variable` to carry its label and a shape matching its data."""
    if op.name != "variable":
        return None
    tensor, label, shape = op.outputs[0], op.attribs.get("label"), op.attribs.get("shape")
    if not isinstance(label, str) or not label:
        return "a variable needs a non-empty string `label` attribute"
    if tensor.label is not None and tensor.label != label:
        return f"label attribute {label!r} differs from the tensor label {tensor.label!r}"
    if not isinstance(shape, (list, tuple)):
        return "a variable needs a `shape` attribute (a list of ints)"
    if tensor.data is not None and tuple(np.shape(tensor.data)) != tuple(shape):
        return f"shape {list(shape)} differs from the data shape {list(np.shape(tensor.data))}"
    return None


def _quantized_operands(op: Operation) -> str | None:
    """Require the operands of an element-wise binary to share one quantization, if any has one
    (tract runs binaries on quantized values only between identical types)."""
    tensors = op.reads() if op.name in BROADCAST_OPS else []
    if any(t.quant is not None for t in tensors) and len({t.quant for t in tensors}) > 1:
        return "operands of different quantizations: requantize them to one (tract_core_cast) first"
    return None


RULES: tuple[Rule, ...] = (
    _negative_axes, _empty_reduction, _argument_count, _broadcast_ranks, _matmul_ranks, _slice_bounds,
    _gather_bounds, _pool_ranks, _pool_input_rank, _reshape_target, _border, _variable_attributes,
    _quantized_operands,
)


# --------------------------------------------------------------------------------------------
# Graph rules


def dependency_graph(graph: Graph) -> nx.DiGraph:
    """Return the DiGraph of tensor names with an edge from each argument to each result."""
    dependencies = nx.DiGraph()
    for op in graph.operations:
        for output in op.outputs:
            dependencies.add_node(output.name)
            dependencies.add_edges_from((arg.name, output.name) for arg in op.reads())
    return dependencies


def _check_unique_outputs(graph: Graph) -> None:
    """Raise if two operations (or one, twice) define the same tensor name."""
    producers: dict[str, Operation] = {}
    for op in graph.operations:
        for output in op.outputs:
            if output.name in producers:
                raise InvalidGraphError(
                    f"{describe(op)}: tensor {output.name!r} is already defined by "
                    f"{describe(producers[output.name])}; tensor names must be unique"
                )
            producers[output.name] = op


def _check_acyclic(graph: Graph) -> None:
    """Raise if tensors depend on themselves through a cycle of operations."""
    dependencies = dependency_graph(graph)
    if not nx.is_directed_acyclic_graph(dependencies):
        cycle = [edge[0] for edge in nx.find_cycle(dependencies)]
        raise InvalidGraphError(f"the operations form a cycle: {' -> '.join(cycle + cycle[:1])}")


def _check_definition_order(graph: Graph, defined: set[str] | None = None) -> None:
    """Raise if an operation reads a tensor no earlier operation defined (tract resolves in order);
    `defined` holds the names known before the first operation (a fragment's parameters)."""
    defined = set(defined or ())
    for op in graph.operations:
        for arg in op.reads():
            if arg.name not in defined:
                raise InvalidGraphError(
                    f"{describe(op)}: argument {arg.name!r} is not defined by an earlier "
                    "operation (graph inputs are defined by their external operation)"
                )
        defined.update(output.name for output in op.outputs)


def _check_body(name: str, body: Graph) -> None:
    """Raise unless a loop body reads only its parameters and earlier results, defines its results
    and holds no weights (tract passes them as the loop's `full` inputs)."""
    try:
        _check_definition_order(body, {t.name for t in body.inputs})
    except InvalidGraphError as error:
        raise InvalidGraphError(f"in fragment {name}: {error}") from None
    defined = {t.name for t in body.inputs} | {t.name for op in body.operations for t in op.outputs}
    for op in body.operations:
        if op.name in EXTERNAL_OPS or op.name == "variable":
            raise InvalidGraphError(f"in fragment {name}: {describe(op)}: a loop body takes its tensors as "
                                    "parameters")
    for tensor in body.outputs:
        if tensor.name not in defined:
            raise InvalidGraphError(f"in fragment {name}: result {tensor.name!r} is not defined")


def _check_interface(graph: Graph) -> None:
    """Raise unless each input comes from an external op and each output is defined."""
    producers = {output.name: op for op in graph.operations for output in op.outputs}
    for tensor in graph.inputs:
        op = producers.get(tensor.name)
        if op is None or op.name not in EXTERNAL_OPS:
            found = "no operation" if op is None else describe(op)
            raise InvalidGraphError(
                f"graph input {tensor.name!r} must be produced by external or "
                f"tract_core_external, found {found}"
            )
    for tensor in graph.outputs:
        if tensor.name not in producers:
            raise InvalidGraphError(f"graph output {tensor.name!r} is not defined by any operation")


def _block_quantized_use(op: Operation, index: int, derived: bool) -> str | None:
    """Return why `op` cannot read a block-quantized weight as its argument `index` (`derived`: the
    weight passed through leading unsqueezes), or None when tract runs it."""
    if op.name == "matmul" and index == 1 and op.attribs.get("transposeB") and not op.attribs.get("transposeA"):
        return None
    if derived:
        return "a block-quantized weight with leading unit axes can only be the weight of a matmul"
    if op.name == "conv" and index == 1:
        return None
    if op.name == "tract_core_gather" and index == 0:
        return None if "datum_type" in op.attribs else "a gather from block-quantized data needs `datum_type`"
    if op.name == "unsqueeze" and list(op.attribs.get("axes", [])) == list(range(len(op.attribs.get("axes", [])))):
        return None
    return ("tract runs block-quantized (Q4_0) weights only as the weight of matmul (transposeB), conv "
            "or tract_core_gather")


def _check_block_quantized(graph: Graph) -> None:
    """Raise unless each block-quantized (Q4_0) variable is read only where tract can use it: as the
    right operand of `matmul(transposeB = true)` (possibly through leading unsqueezes), the filter of
    `conv`, or the data of `tract_core_gather(datum_type = ...)`; and is no graph output."""
    quantized = {op.outputs[0].name for op in graph.operations
                 if op.name == "variable" and block_format(op.outputs[0].data)}
    if not quantized:
        return
    derived: set[str] = set()
    for op in graph.operations:
        for index, arg in enumerate(op.args):
            for tensor in tensors_in(arg):
                if tensor.name not in quantized and tensor.name not in derived:
                    continue
                problem = _block_quantized_use(op, index, tensor.name in derived)
                if problem:
                    raise InvalidGraphError(f"{describe(op)} reads the block-quantized weight {tensor.name!r}: {problem}")
                if op.name == "unsqueeze":
                    derived.add(op.outputs[0].name)
    for tensor in graph.outputs:
        if tensor.name in quantized | derived:
            raise InvalidGraphError(f"graph output {tensor.name!r} is a block-quantized weight")


def _is_property_literal(value: Any) -> bool:
    """Tell whether tract can read `value` as a property: str, bool, number, non-empty number list."""
    if isinstance(value, (str, bool, np.bool_)):
        return True
    if isinstance(value, list):
        return bool(value) and all(_is_number(item) for item in value)
    return _is_number(value)


def _check_properties(graph: Graph) -> None:
    """Raise if a property key is not a string or its value is not a literal."""
    for key, value in graph.properties.items():
        if not isinstance(key, str) or not _is_property_literal(value):
            raise InvalidGraphError(
                f"property {key!r} = {value!r} is not a literal: keys are strings and values "
                "a string, number, bool or non-empty list of numbers (a tensor reference aborts "
                "the process, an empty list is rejected)"
            )


def validate(graph: Graph) -> None:
    """Raise InvalidGraphError if `graph` breaks a rule of the NNEF dialect tract accepts."""
    _check_unique_outputs(graph)
    _check_acyclic(graph)
    _check_definition_order(graph)
    _check_interface(graph)
    _check_properties(graph)
    _check_block_quantized(graph)
    for name, body in graph.bodies.items():
        _check_body(name, body)
    operations = graph.operations + [op for body in graph.bodies.values() for op in body.operations]
    problems = [
        f"{describe(op)}: {problem}"
        for op in operations
        for problem in (rule(op) for rule in RULES)
        if problem
    ]
    if problems:
        raise InvalidGraphError("invalid NNEF graph for tract:\n  " + "\n  ".join(problems))


RANDOM_OPERATIONS = frozenset({"tract_onnx_random", "tract_onnx_multinomial"})


def random_outputs(graph: Graph) -> list[str]:
    """Return the names of the graph outputs computed from random draws (RANDOM_OPERATIONS)."""
    dependencies = dependency_graph(graph)
    drawn = {output.name for op in graph.operations if op.name in RANDOM_OPERATIONS for output in op.outputs}
    return [t.name for t in graph.outputs
            if t.name in drawn or t.name in dependencies and drawn & nx.ancestors(dependencies, t.name)]


def remove_dead_operations(graph: Graph) -> int:
    """Drop operations no graph output depends on (inputs' external ops stay); return how many."""
    dependencies = dependency_graph(graph)
    live = {tensor.name for tensor in graph.outputs + graph.inputs}
    for name in list(live):
        if name in dependencies:
            live |= nx.ancestors(dependencies, name)
    kept = [op for op in graph.operations if any(output.name in live for output in op.outputs)]
    removed = len(graph.operations) - len(kept)
    graph.operations[:] = kept
    return removed
