"""Constant expressions of an NNEF graph, written so that tract folds nothing per use when it loads.

tract folds at load time every operation whose operands are constants (an `unsqueeze` of a
weight becomes a new constant tensor, a copy), and since 0.23.0 each constant it adds is compared
element by element with every constant of equal shape already in the model (`ModelPatch::apply`,
see benchmarks/README.md "Load time"). A weight used by many operations through the same
`unsqueeze` (ALBERT's layers sharing one set of weights, tied embeddings, biases deduplicated to
one zero tensor) then makes N equal copies compared pairwise: load time grows with the square of
the depth. Two rewrites of the finished graph avoid it:

- `share_expressions`: each expression is computed once and its uses share it (constant ones, and
  as well the computations lowerings repeat per call, such as the attention's test for fully masked
  query rows in every layer);
- `store_variables_at_use_rank`: a weight whose only use is an `unsqueeze` is stored at the
  unsqueezed shape, so tract has nothing to fold for it.

No torch import.
"""
from __future__ import annotations

from typing import Any, Hashable

import numpy as np

from .graph import Expr, Graph, Operation, Tensor

# operations whose result is not a function of their operands alone
IMPURE_OPS = frozenset({"external", "tract_core_external", "tract_onnx_random", "tract_onnx_multinomial"})
# small variables with equal data are one variable (the constants lowerings make: -inf, 0, shapes)
SMALL_VARIABLE_BYTES = 1024


def share_expressions(graph: Graph) -> int:
    """Leave each expression once in `graph`: a variable (by label, or by data when small) or a pure
    operation. A later duplicate (same operation, operands, attributes and output types) is dropped
    and its uses read the first; an operation that defines a graph output is kept. Return how many
    operations were dropped."""
    outputs = {id(t) for t in graph.outputs}
    first: dict[Hashable, Operation] = {}
    replaced: dict[int, Tensor] = {}
    kept: list[Operation] = []
    for op in graph.operations:
        if replaced:
            op.args = _substitute(op.args, replaced)
            op.attribs = _substitute(op.attribs, replaced)
        key = _expression_key(op)
        if key is None:
            kept.append(op)
            continue
        earlier = first.setdefault(key, op)
        if earlier is op or any(id(t) in outputs for t in op.outputs):
            kept.append(op)
            continue
        replaced.update((id(t), e) for t, e in zip(op.outputs, earlier.outputs))
    dropped = len(graph.operations) - len(kept)
    graph.operations[:] = kept
    return dropped


def store_variables_at_use_rank(graph: Graph) -> int:
    """Store each plain weight whose only use is an `unsqueeze` at the unsqueezed shape (a view of
    its data, the same bytes) and drop the `unsqueeze`. Return how many weights changed shape."""
    outputs = {id(t) for t in graph.outputs}
    uses = graph.uses()
    labels: dict[str, int] = {}
    for op in graph.operations:
        if op.name == "variable":
            labels[op.attribs.get("label")] = labels.get(op.attribs.get("label"), 0) + 1
    replaced: dict[int, Tensor] = {}
    dropped: set[int] = set()
    for op in graph.operations:
        if op.name != "variable" or labels[op.attribs.get("label")] != 1:
            continue
        weight = op.outputs[0]
        users = uses.get(id(weight), [])
        if (len(users) != 1 or users[0].name != "unsqueeze" or users[0].args[:1] != (weight,)
                or id(weight) in outputs or id(users[0].outputs[0]) in outputs
                or not isinstance(weight.data, np.ndarray) or weight.quant is not None):
            continue
        unsqueeze = users[0]
        data = np.expand_dims(weight.data, tuple(unsqueeze.attribs["axes"]))
        if data.ndim > 8:  # the .dat header holds 8 dims
            continue
        weight.data, weight.shape = data, tuple(data.shape)
        op.attribs = {**op.attribs, "shape": list(data.shape)}
        replaced[id(unsqueeze.outputs[0])] = weight
        dropped.add(id(unsqueeze))
    if dropped:
        graph.operations[:] = [op for op in graph.operations if id(op) not in dropped]
        for op in graph.operations:
            op.args = _substitute(op.args, replaced)
            op.attribs = _substitute(op.attribs, replaced)
    return len(dropped)


def _expression_key(op: Operation) -> Hashable | None:
    """Return what identifies `op` among expressions, or None when it is impure."""
    if op.name == "variable":
        tensor = op.outputs[0]
        data = tensor.data
        if isinstance(data, np.ndarray) and data.nbytes <= SMALL_VARIABLE_BYTES and tensor.quant is None:
            return ("variable", op.generic, data.dtype.str, data.shape, data.tobytes())
        return ("variable", op.generic, op.attribs.get("label"), tensor.quant)
    if op.name in IMPURE_OPS or not op.outputs:
        return None
    return (op.name, op.generic, tuple((t.dtype, t.quant) for t in op.outputs), _frozen(op.args), _frozen(op.attribs))


def _frozen(value: Any) -> Hashable:
    """Return a hashable image of an argument: tensors by identity, numbers with their type."""
    if isinstance(value, Tensor):
        return ("tensor", id(value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _frozen(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_frozen(v) for v in value))
    if isinstance(value, Expr):
        return ("expr", value.text)
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    return (type(value).__name__, repr(value))


def _substitute(value: Any, replaced: dict[int, Tensor]) -> Any:
    """Return `value` with the tensors in `replaced` (by identity) swapped for their replacements."""
    if isinstance(value, Tensor):
        return replaced.get(id(value), value)
    if isinstance(value, dict):
        return {k: _substitute(v, replaced) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_substitute(v, replaced) for v in value)
    return value
