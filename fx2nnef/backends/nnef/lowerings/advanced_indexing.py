"""Advanced indexing: `x[i, :, j]` reads (aten::index) and writes (aten::index_put), with index tensors
on any axes, broadcast together, `None` (full) slices between them and boolean masks.

PyTorch's rule: the dims of the broadcast index tensors replace the indexed dims where those are
adjacent, and go in front when a full slice separates them. Both ops move the indexed dims to the
front, gather or scatter with tract's gather_nd / scatter_nd there, and move the dims back. A boolean
mask of rank r stands for the r index tensors of its non-zero coordinates: computed now when the mask
is a constant, else by tract's non_zero, whose row count is a symbol bound at run time.
"""
from __future__ import annotations

import numpy as np

from ..graph import Expr
from ..registry import lower
from .common import static


def _broadcast(shapes: list[tuple]) -> tuple:
    """Return the numpy-style broadcast of shapes whose dims may be symbolic (a symbol wins over 1)."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        dims = [s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0]
        out.append(next((d for d in dims if d != 1), 1))
    return tuple(out)


def _normalized(b, index, size):
    """Return an index tensor as i64 with negative entries counted from the end of a dim of `size`."""
    if index.data is not None:
        data = np.asarray(index.data).astype(np.int64)
        return b.const(np.where(data < 0, data + size, data) if isinstance(size, int) else data, "i64", "index")
    index = b.cast(index, "i64")
    if not isinstance(size, int):
        return index
    return b.op("select", b.op("lt", index, b.const(0, "i64", "zero")), b.op("add", index, b.const(size, "i64", "size")),
                index)


def _mask_coordinates(b, mask, count):
    """Return the coordinates of a boolean mask's true elements as `mask.rank` i64 tensors of shape [N]:
    computed now for a constant mask, else by tract_onnx_non_zero with N bound to `count` (the torch
    size of the result, an unbacked symbol), or to a symbol of its own when count is None."""
    if mask.data is not None:
        coords = np.nonzero(np.asarray(mask.data))
        if count is not None:
            b.bind_size(count, len(coords[0]))
        return [b.const(c.astype(np.int64), "i64", "mask_index") for c in coords]
    n = b.bind_size(count) if count is not None else b.new_size("mask_count")
    b.require("tract_onnx")
    found = b.op("tract_onnx_non_zero", mask, count_symbol=str(n), out_dtype="i64", out_shape=(mask.rank, n))
    return [b.op("squeeze", b.op("slice", found, axes=[0], begin=[r], end=[r + 1]), axes=[0])
            for r in range(mask.rank)]


def _expand_masks(b, self, indices, count=None) -> tuple[list, set[int]]:
    """Return `indices` with every boolean mask replaced by the index tensors of its coordinates (one
    per dim it covers; `count` is the torch size of their length, when known), and the dims whose
    index tensors are such coordinates (never negative)."""
    out, coordinates = [], set()
    for index in indices:
        if index is not None and index.dtype in ("bool", "u8"):
            found = _mask_coordinates(b, index, count)
            coordinates.update(range(len(out), len(out) + len(found)))
            out.extend(found)
        else:
            out.append(index)
    return out + [None] * (self.rank - len(out)), coordinates


class _Plan:
    """Where the index tensors sit: `used` dims are indexed, `rest` are not; `first` is where the index
    dims land in the result (0 when a full slice separates the indexed dims)."""

    def __init__(self, b, self_, indices, non_negative: set[int] = frozenset()):
        self.used = [d for d, index in enumerate(indices) if index is not None]
        self.rest = [d for d in range(self_.rank) if d not in self.used]
        adjacent = self.used == list(range(self.used[0], self.used[-1] + 1))
        self.first = self.used[0] if adjacent else 0
        self.perm = self.used + self.rest
        self.index_shape = _broadcast([indices[d].shape for d in self.used])
        parts = [b.cast(indices[d], "i64") if d in non_negative else _normalized(b, indices[d], self_.shape[d])
                 for d in self.used]
        b.require("tract_core")
        k = len(self.index_shape)
        parts = [p if tuple(p.shape) == self.index_shape else
                 b.op("tract_core_broadcast", p, shape=list(self.index_shape), out_shape=self.index_shape)
                 for p in parts]
        parts = [b.op("unsqueeze", p, axes=[k]) for p in parts]
        self.stacked = parts[0] if len(parts) == 1 else b.op("concat", parts, axis=k)
        self.rest_shape = tuple(self_.shape[d] for d in self.rest)

    def front(self, b, x):
        """Return x with the indexed dims moved to the front, in index order."""
        return b.op("transpose", x, axes=self.perm) if self.perm != sorted(self.perm) else x

    def result_order(self, b, x):
        """Move the index dims of a gathered [index dims, rest] tensor to where PyTorch puts them."""
        if not self.first:
            return x
        k = len(self.index_shape)
        perm = list(range(k, k + self.first)) + list(range(k)) + list(range(k + self.first, x.rank))
        return b.op("transpose", x, axes=perm)

    def gathered_order(self, b, x):
        """Inverse of result_order: a tensor shaped like the result, with its index dims moved first."""
        if not self.first:
            return x
        k = len(self.index_shape)
        perm = list(range(self.first, self.first + k)) + list(range(self.first)) + \
            list(range(self.first + k, x.rank))
        return b.op("transpose", x, axes=perm)

    def result_shape(self) -> tuple:
        """The shape of `x[indices]`."""
        before = self.rest_shape[:self.first]
        return before + self.index_shape + self.rest_shape[self.first:]


@lower("aten::index.Tensor")
def aten_index(b, self, indices):
    """index.Tensor(Tensor self, Tensor?[] indices) -> Tensor"""
    if b.khronos:
        return _khronos_index(b, self, indices)
    out_shape = b.out.shape
    masked = [i for i, index in enumerate(indices) if index is not None and index.dtype in ("bool", "u8")]
    count = None
    if masked:  # the mask's coordinate count is the result dim where the index dims start
        plain = [i for i, index in enumerate(indices) if index is not None]
        starts_at = plain[0] if plain == list(range(plain[0], plain[-1] + 1)) else 0
        count = out_shape[starts_at]
    indices, coordinates = _expand_masks(b, self, indices, count)
    used = [d for d, index in enumerate(indices) if index is not None]
    if len(used) == 1 and indices[used[0]].rank == 1 and indices[used[0]].data is None:
        b.require("tract_core")  # one index vector: a plain gather (negative indices are fine there)
        return b.op("tract_core_gather", self, indices[used[0]], axis=used[0])
    plan = _Plan(b, self, indices, coordinates)
    out = b.op("tract_core_gather_nd", plan.front(b, self), plan.stacked, batch_dims=0,
               out_shape=plan.index_shape + plan.rest_shape, out_dtype=self.dtype)
    return plan.result_order(b, out)


def _khronos_index(b, x, indices):
    """Emit x[..., i0, i1, ...] for adjacent constant index tensors as one standard `gather` over the
    indexed dims merged into one (the flat indices are computed now)."""
    used = [i for i, t in enumerate(indices) if t is not None]
    if len(used) == 1 and indices[used[0]].dtype not in ("bool", "u8"):
        return b.op("gather", x, indices[used[0]], axis=used[0])
    if used != list(range(used[0], used[0] + len(used))) or any(indices[i].dtype in ("bool", "u8") for i in used):
        raise b.not_standard("masks and index tensors separated by slices need tract's gather_nd")
    first = used[0]
    chosen = [indices[i] for i in used]
    if any(t.data is None for t in chosen):
        raise b.not_standard("advanced indexing with several run-time index tensors needs tract's gather_nd")
    dims = list(x.shape[first:first + len(chosen)])
    if not static(x.shape):
        raise b.not_standard("standard NNEF shapes are static")
    arrays = np.broadcast_arrays(*(np.asarray(t.data) % d for t, d in zip(chosen, dims)))
    flat = np.ravel_multi_index(arrays, dims)
    merged = list(x.shape[:first]) + [int(np.prod(dims))] + list(x.shape[first + len(chosen):])
    return b.op("gather", b.op("reshape", x, shape=merged), b.const(flat, "i64", "index"), axis=first)


@lower("aten::index_put")
def aten_index_put(b, self, indices, values, accumulate=False):
    """index_put(Tensor self, Tensor?[] indices, Tensor values, bool accumulate=False) -> Tensor"""
    values = b.cast(values, self.dtype)
    used = [i for i, index in enumerate(indices) if index is not None]
    masks = [i for i in used if indices[i].dtype in ("bool", "u8")]
    if masks and any(indices[i].data is None for i in masks):
        if masks != used or len(used) != 1:
            raise NotImplementedError("index_put with a run-time boolean mask next to other index tensors")
        if _one_row(values, used[0], self.rank - indices[used[0]].rank + 1):
            return _put_masked(b, self, used[0], indices[used[0]], values, accumulate)
    indices, coordinates = _expand_masks(b, self, indices)
    if self.dtype == "bool" and accumulate:  # scatter_nd adds numbers: or = (sum > 0)
        summed = aten_index_put(b, b.cast(self, "i32"), indices, b.cast(values, "i32"), True)
        return b.op("gt", summed, b.const(0, "i32", "zero"))
    plan = _Plan(b, self, indices, coordinates)
    # a run-time mask's count is a symbol of its own: the values' rows give that dim instead (tract
    # then checks at run time that they agree)
    target = plan.result_shape()
    aligned = (1,) * (len(target) - values.rank) + tuple(values.shape)
    target = tuple(v if isinstance(t, Expr) and v != 1 else t for t, v in zip(target, aligned))
    if tuple(values.shape) != target:
        b.require("tract_core")
        values = b.op("tract_core_broadcast", values, shape=list(target), out_shape=target)
    updates = plan.gathered_order(b, values)
    out = b.op("tract_core_scatter_nd", plan.front(b, self), plan.stacked, updates,
               reduction="add" if accumulate else "none", out_dtype=self.dtype,
               out_shape=tuple(self.shape[d] for d in plan.perm))
    if plan.perm == sorted(plan.perm):
        return out
    return b.op("transpose", out, axes=[plan.perm.index(d) for d in range(self.rank)])


def _one_row(values, at: int, rank: int) -> bool:
    """Tell whether values (aligned to `rank` dims, the mask's dims as one at `at`) hold one row for
    all the true elements of the mask: their dim there is 1 or absent."""
    dim = at - (rank - values.rank)
    return dim < 0 or values.shape[dim] == 1


def _put_masked(b, self, at: int, mask, values, accumulate: bool):
    """x[..., mask, ...] = values for a run-time mask covering dims at..at+r-1, with values that hold
    one row for all its true elements: a select between that row (added to x with accumulate) and x."""
    r = mask.rank
    post = self.rank - at - r
    if values.rank < at + 1 + post:
        values = b.op("unsqueeze", values, axes=list(range(at + 1 + post - values.rank)))
    where = b.op("reshape", mask, shape=[1] * at + list(mask.shape) + [1] * post) if at or post else mask
    rows = b.op("reshape", values, shape=list(values.shape[:at]) + [1] * r + list(values.shape[at + 1:])) \
        if r != 1 else values
    if accumulate:
        rows = b.op("add", self, rows)
    return b.op("select", where, rows, self)

