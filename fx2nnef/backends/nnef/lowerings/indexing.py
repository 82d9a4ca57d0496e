"""Indexing and layout lowerings: flips, tiles, pads, splits, diagonals, triangles, sorts, scatters.

Index constants are computed at export time from static shapes; tract's gather/scatter ops do the work.
"""
from __future__ import annotations

import numpy as np

from ..graph import Expr
from ..registry import lower
from .common import axes, axis, extreme, literal, running_sum


def _gather(b, x, index: np.ndarray, dim: int):
    """Take the entries `index` (a constant) of x along dim."""
    b.require("tract_core")
    return b.op("tract_core_gather", x, b.const(index, "i64", "index"), axis=dim)


@lower("aten::flip")
def aten_flip(b, self, dims):
    """flip(Tensor self, int[] dims) -> Tensor"""
    out = self
    for d in axes(dims, self.rank) if dims else []:
        if self.shape[d] > 1:
            out = _gather(b, out, np.arange(self.shape[d] - 1, -1, -1), d)
    return out


@lower("aten::roll")
def aten_roll(b, self, shifts, dims=()):
    """roll(Tensor self, SymInt[1] shifts, int[1] dims=[]) -> Tensor"""
    if not dims:
        flat = b.op("reshape", self, shape=[-1])
        n = int(np.prod(self.shape))
        rolled = _gather(b, flat, (np.arange(n) - shifts[0]) % max(n, 1), 0) if n else flat
        return b.op("reshape", rolled, shape=list(self.shape))
    out = self
    for shift, d in zip(shifts, dims):
        d = axis(d, self.rank)
        n = self.shape[d]
        if n and shift % n:
            out = _gather(b, out, (np.arange(n) - shift) % n, d)
    return out


def _pad(b, x, pad, border: str, value=0.0):
    """Pad x with torch's pad list (last dim first, (before, after) pairs); negative pads crop."""
    pairs = [(0, 0)] * x.rank
    for i in range(len(pad) // 2):
        pairs[x.rank - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    crops = [(a, max(-lo, 0), max(-hi, 0)) for a, (lo, hi) in enumerate(pairs) if lo < 0 or hi < 0]
    if crops and border == "replicated":  # torch clamps into the uncropped input: gather those indices
        for a, (lo, hi) in enumerate(pairs):
            if lo or hi:
                x = _gather(b, x, np.clip(np.arange(x.shape[a] + lo + hi) - lo, 0, x.shape[a] - 1), a)
        return x
    if crops:
        x = b.op("slice", x, axes=[a for a, _, _ in crops], begin=[lo for _, lo, _ in crops],
                 end=[x.shape[a] - hi for a, _, hi in crops])
    pairs = [(max(lo, 0), max(hi, 0)) for lo, hi in pairs]
    if all(p == (0, 0) for p in pairs):
        return x
    return b.op("pad", x, padding=pairs, border=border, value=literal(value), out_shape=b.shape_of(b.out),
                out_dtype=x.dtype)


@lower(("aten::reflection_pad1d", "aten::reflection_pad2d", "aten::reflection_pad3d"))
def aten_reflection_pad2d(b, self, padding):
    """reflection_pad2d(Tensor self, SymInt[4] padding) -> Tensor"""
    return _pad(b, self, list(padding), "reflect")


@lower(("aten::replication_pad1d", "aten::replication_pad2d", "aten::replication_pad3d"))
def aten_replication_pad2d(b, self, padding):
    """replication_pad2d(Tensor self, SymInt[4] padding) -> Tensor"""
    return _pad(b, self, list(padding), "replicated")


@lower(("aten::tril", "aten::triu"))
def aten_tril(b, self, diagonal=0):
    """tril(Tensor self, int diagonal=0) -> Tensor"""
    b.require("tract_core")
    upper = b.node.target.name() == "aten::triu"
    return b.op("tract_core_trilu", self, b.const(diagonal, "i64", "k"), upper=upper)


@lower(("aten::split.Tensor", "aten::split_copy.Tensor"))
def aten_split(b, self, split_size, dim=0):
    """split.Tensor(Tensor(a -> *) self, SymInt split_size, int dim=0) -> Tensor(a)[]"""
    d = axis(dim, self.rank)
    n = self.shape[d]
    split_sizes = [min(split_size, n - i) for i in range(0, n, split_size)] if split_size else [n]
    parts, start = [], 0
    for size in split_sizes:
        if start == 0 and size == n:
            parts.append(self)
        else:
            parts.append(b.op("slice", self, axes=[d], begin=[start], end=[start + size]))
        start += size
    return parts


@lower(("aten::unbind.int", "aten::unbind_copy.int"))
def aten_unbind(b, self, dim=0):
    """unbind.int(Tensor(a -> *) self, int dim=0) -> Tensor(a)[]"""
    d = axis(dim, self.rank)
    return [b.op("squeeze", b.op("slice", self, axes=[d], begin=[i], end=[i + 1]), axes=[d])
            for i in range(self.shape[d])]


@lower(("aten::diagonal", "aten::diagonal_copy"))
def aten_diagonal(b, self, offset=0, dim1=0, dim2=1):
    """diagonal(Tensor(a) self, int offset=0, int dim1=0, int dim2=1) -> Tensor(a)"""
    d1, d2 = axis(dim1, self.rank), axis(dim2, self.rank)
    rest = [a for a in range(self.rank) if a not in (d1, d2)]
    x = b.op("transpose", self, axes=[d1, d2] + rest)
    rows = np.arange(self.shape[d1])
    cols = rows + offset
    keep = (cols >= 0) & (cols < self.shape[d2])
    index = np.stack([rows[keep], cols[keep]], axis=-1).reshape(-1, 2)
    if index.shape[0] == 0 or 0 in self.shape:
        raise NotImplementedError("an empty diagonal")
    b.require("tract_core")
    out = b.op("tract_core_gather_nd", x, b.const(index, "i64", "diagonal"), batch_dims=0)
    perm = list(range(1, len(rest) + 1)) + [0]
    return b.op("transpose", out, axes=perm) if rest else out


def _topk(b, x, k: int, dim: int, largest: bool):
    b.require("tract_core")
    if x.rank == 0:
        return x, b.const(0, "i64", "index")
    k = b.op("tract_core_cast", k, to="i64", out_dtype="i64", out_shape=()) if isinstance(k, Expr) else \
        b.const(k, "i64", "k")   # a symbolic k (sorting a dynamic axis) is the symbol's value
    values, indices = b.op("tract_core_topk", x, k, axis=axis(dim, x.rank),
                           largest=largest, outputs=2)
    return values, indices


@lower("aten::topk")
def aten_topk(b, self, k, dim=-1, largest=True, sorted=True):
    """topk(Tensor self, SymInt k, int dim=-1, bool largest=True, bool sorted=True) -> (Tensor values, Tensor indices)"""
    return _topk(b, self, k, dim, largest)


@lower(("aten::sort", "aten::sort.stable"))
def aten_sort(b, self, dim=-1, descending=False, stable=False):
    """sort(Tensor self, int dim=-1, bool descending=False) -> (Tensor values, Tensor indices)"""
    n = self.shape[axis(dim, self.rank)] if self.rank else 1
    return _topk(b, self, n, dim, bool(descending))


def _scatter(b, self, dim, index, src, reduction: str):
    b.require("tract_core")
    if self.dtype == "bool" and self.rank:  # tract's scatter reductions need numbers
        numbers = _scatter(b, b.cast(self, "i32"), dim, index, b.cast(src, "i32") if hasattr(src, "name") else src,
                           reduction)
        return b.cast(numbers, "bool")
    if self.rank == 0:
        return src if reduction == "none" else b.op({"add": "add", "mul": "mul", "min": "min", "max": "max"}[reduction],
                                                     self, src)
    if not hasattr(src, "name"):
        src = b.op("tract_core_broadcast", b.const(src, self.dtype, "value"), shape=list(index.shape))
    elif tuple(src.shape) != tuple(index.shape):
        src = b.op("slice", src, axes=list(range(src.rank)), begin=[0] * src.rank, end=list(index.shape))
    return b.op("tract_core_scatter_elements", self, b.cast(index, "i64"), src, axis=axis(dim, self.rank),
                reduction=reduction, out_dtype=self.dtype, out_shape=self.shape)


@lower(("aten::scatter.src", "aten::scatter.value"))
def aten_scatter(b, self, dim, index, src=None, value=None):
    """scatter.src(Tensor self, int dim, Tensor index, Tensor src) -> Tensor"""
    return _scatter(b, self, dim, index, src if src is not None else value, "none")


@lower(("aten::scatter.reduce", "aten::scatter.value_reduce"))
def aten_scatter_reduce_old(b, self, dim, index, src=None, value=None, reduce="add"):
    """scatter.reduce(Tensor self, int dim, Tensor index, Tensor src, *, str reduce) -> Tensor"""
    return _scatter(b, self, dim, index, src if src is not None else value, {"add": "add", "multiply": "mul"}[reduce])


@lower("aten::scatter_add")
def aten_scatter_add(b, self, dim, index, src):
    """scatter_add(Tensor self, int dim, Tensor index, Tensor src) -> Tensor"""
    return _scatter(b, self, dim, index, src, "add")


REDUCTIONS = {"sum": "add", "prod": "mul", "amax": "max", "amin": "min"}


def _reduce_into(b, self, d: int, index, src, reduce: str, include_self: bool):
    """Reduce src into self at index along axis d (index and src of one shape), as scatter_reduce
    does: without include_self, the indexed entries of self are first reset to the reduction's
    identity; `mean` divides a sum by the per-entry counts (flooring on integers, as torch)."""
    if self.rank == 0:
        flat = [b.op("reshape", t, shape=[1], out_shape=(1,)) for t in (self, index, src)]
        out = _reduce_into(b, *flat[:1], 0, *flat[1:], reduce, include_self)
        return b.op("squeeze", out, axes=[0])
    if reduce != "mean":
        identity = {"sum": 0, "prod": 1, "amax": extreme(self.dtype, False), "amin": extreme(self.dtype, True)}
        base = self if include_self else _scatter(b, self, d, index, identity[reduce], "none")
        return _scatter(b, base, d, index, src, REDUCTIONS[reduce])
    total = _reduce_into(b, self, d, index, src, "sum", include_self)
    start = b.op("tract_core_broadcast", b.const(int(include_self), self.dtype, "count"), shape=list(self.shape))
    counts = b.op("max", _scatter(b, start, d, index, 1, "add"), b.const(1, self.dtype, "one"))
    quotient = b.op("div", total, counts)
    if self.dtype.startswith("f"):
        return quotient
    rest = b.op("sub", total, b.op("mul", quotient, counts))  # integer div truncates: floor it
    return b.op("select", b.op("lt", rest, b.const(0, self.dtype, "zero")),
                b.op("sub", quotient, b.const(1, self.dtype, "one")), quotient)


@lower("aten::scatter_reduce.two")
def aten_scatter_reduce(b, self, dim, index, src, reduce, include_self=True):
    """scatter_reduce.two(Tensor self, int dim, Tensor index, Tensor src, str reduce, *, bool include_self=True) -> Tensor"""
    d = axis(dim, self.rank)
    if index.rank and tuple(src.shape) != tuple(index.shape):
        src = b.op("slice", src, axes=list(range(src.rank)), begin=[0] * src.rank, end=list(index.shape))
    return _reduce_into(b, self, d, index, src, reduce, include_self)


@lower("aten::index_reduce")
def aten_index_reduce(b, self, dim, index, source, reduce, include_self=True):
    """index_reduce(Tensor self, int dim, Tensor index, Tensor source, str reduce, *, bool include_self=True) -> Tensor"""
    d = axis(dim, self.rank)
    if source.rank > 1:  # index [m] names the target of each slice of source along d
        index = b.op("reshape", index, shape=[1] * d + [-1] + [1] * (source.rank - d - 1),
                     out_shape=tuple(1 if a != d else source.shape[d] for a in range(source.rank)))
        b.require("tract_core")
        index = b.op("tract_core_broadcast", index, shape=list(source.shape))
    return _reduce_into(b, self, d, index, source, reduce, include_self)


@lower("aten::unfold")
def aten_unfold(b, self, dimension, size, step):
    """unfold(Tensor(a) self, int dimension, int size, int step) -> Tensor(a)"""
    if self.rank == 0:
        return b.op("unsqueeze", self, axes=[0])
    d = axis(dimension, self.rank)
    windows = (self.shape[d] - size) // step + 1
    index = np.arange(windows)[:, None] * step + np.arange(size)[None, :]
    taken = _gather(b, self, index, d)  # [..., windows, size, ...]
    perm = [a for a in range(self.rank + 1) if a != d + 1] + [d + 1]
    return b.op("transpose", taken, axes=perm)


@lower("aten::slice_scatter")
def aten_slice_scatter(b, self, src, dim=0, start=None, end=None, step=1):
    """slice_scatter(Tensor self, Tensor src, int dim=0, SymInt? start=None, SymInt? end=None, SymInt step=1) -> Tensor"""
    d = axis(dim, self.rank)
    n = self.shape[d]
    begin = 0 if start is None else (start + n if start < 0 else min(start, n))
    positions = begin + np.arange(src.shape[d]) * step
    if src.shape[d] == 0:
        return self
    shape = [1] * self.rank
    shape[d] = len(positions)
    index = np.broadcast_to(positions.reshape(shape), tuple(src.shape))
    b.require("tract_core")
    return b.op("tract_core_scatter_elements", self, b.const(np.ascontiguousarray(index), "i64", "positions"), src,
                axis=d, reduction="none")


@lower("aten::masked_scatter")
def aten_masked_scatter(b, self, mask, source):
    """masked_scatter(Tensor self, Tensor mask, Tensor source) -> Tensor"""
    shape = [int(d) for d in b.shape_of(b.out)]
    n = int(np.prod(shape))
    b.require("tract_core")
    full = b.op("tract_core_broadcast", mask, shape=shape) if tuple(mask.shape) != tuple(shape) else mask
    flat_mask = b.op("reshape", full, shape=[n], out_shape=(n,))
    # the k-th true element of the mask takes source's k-th element: k = (running count of trues) - 1
    k = b.op("max", b.op("sub", running_sum(b, flat_mask), b.const(1, "i64", "one")), b.const(0, "i64", "zero"))
    flat_source = b.op("reshape", source, shape=[-1], out_shape=(int(np.prod(source.shape)),))
    picked = b.op("tract_core_gather", flat_source, k, axis=0, out_shape=(n,))
    values = b.op("reshape", picked, shape=shape, out_shape=tuple(shape))
    return b.op("select", full, values, self)


@lower("aten::kthvalue")
def aten_kthvalue(b, self, k, dim=-1, keepdim=False):
    """kthvalue(Tensor self, SymInt k, int dim=-1, bool keepdim=False) -> (Tensor values, Tensor indices)"""
    if self.rank == 0:
        return self, b.const(0, "i64", "index")
    d = axis(dim, self.rank)
    values, indices = _topk(b, self, k, d, False)
    pick = [b.op("slice", t, axes=[d], begin=[k - 1], end=[k]) for t in (values, indices)]
    return tuple(p if keepdim else b.op("squeeze", p, axes=[d]) for p in pick)


@lower("aten::diagonal_scatter")
def aten_diagonal_scatter(b, self, src, offset=0, dim1=0, dim2=1):
    """diagonal_scatter(Tensor self, Tensor src, int offset=0, int dim1=0, int dim2=1) -> Tensor"""
    d1, d2 = axis(dim1, self.rank), axis(dim2, self.rank)
    rest = [a for a in range(self.rank) if a not in (d1, d2)]
    rows = np.arange(self.shape[d1])
    cols = rows + offset
    keep = (cols >= 0) & (cols < self.shape[d2])
    index = np.stack([rows[keep], cols[keep]], axis=-1).reshape(-1, 2)
    if index.shape[0] == 0:
        return self
    perm = [d1, d2] + rest
    x = b.op("transpose", self, axes=perm)
    updates = b.op("transpose", src, axes=[src.rank - 1] + list(range(src.rank - 1))) if rest else src
    b.require("tract_core")
    out = b.op("tract_core_scatter_nd", x, b.const(index, "i64", "diagonal"), updates, reduction="none")
    return b.op("transpose", out, axes=[perm.index(a) for a in range(self.rank)])


@lower("aten::bucketize.Tensor")
def aten_bucketize(b, self, boundaries, out_int32=False, right=False):
    """bucketize.Tensor(Tensor self, Tensor boundaries, *, bool out_int32=False, bool right=False) -> Tensor"""
    x = b.op("unsqueeze", self, axes=[self.rank])  # compare every element with every boundary
    below = b.op("ge" if right else "gt", x, boundaries)
    counts = b.op("sum_reduce", b.cast(below, "i64"), axes=[self.rank])
    return b.cast(b.op("squeeze", counts, axes=[self.rank]), b.out_dtype)


@lower(("aten::searchsorted.Tensor", "aten::searchsorted.Scalar"))
def aten_searchsorted(b, sorted_sequence, self, out_int32=False, right=False, side=None, sorter=None):
    """searchsorted.Tensor(Tensor sorted_sequence, Tensor self, *, bool out_int32=False, bool right=False, str? side=None, Tensor? sorter=None) -> Tensor"""
    if not hasattr(self, "name"):
        self = b.const(self, sorted_sequence.dtype, "value")
    last = sorted_sequence.rank - 1
    if sorted_sequence.shape[last] == 0:
        return b.const(np.zeros(b.shape_of(b.out)), b.out_dtype, "positions")
    if sorter is not None:
        b.require("tract_core")
        sorted_sequence = b.op("tract_core_gather_elements", sorted_sequence, b.cast(sorter, "i64"), axis=last)
    if sorted_sequence.rank == 1:  # one sequence for every value
        values, sequence = b.op("unsqueeze", self, axes=[self.rank]), sorted_sequence
    else:  # one sequence per row of values: [..., m, 1] against [..., 1, n]
        values, sequence = b.op("unsqueeze", self, axes=[last + 1]), b.op("unsqueeze", sorted_sequence, axes=[last])
    below = b.op("ge" if right or side == "right" else "gt", values, sequence)
    counts = b.op("sum_reduce", b.cast(below, "i64"), axes=[values.rank - 1])
    return b.cast(b.op("squeeze", counts, axes=[values.rank - 1]), b.out_dtype)


@lower("aten::put")
def aten_put(b, self, index, source, accumulate=False):
    """put(Tensor self, Tensor index, Tensor source, bool accumulate=False) -> Tensor"""
    n = int(np.prod(self.shape))
    flat = b.op("reshape", self, shape=[n], out_shape=(n,))
    count = int(np.prod(index.shape))
    if count == 0:
        return self
    where = b.cast(b.op("reshape", index, shape=[count], out_shape=(count,)), "i64")
    where = b.op("select", b.op("lt", where, b.const(0, "i64", "zero")), b.op("add", where, b.const(n, "i64", "size")),
                 where)  # torch counts negative indices from the end
    values = b.op("reshape", source, shape=[count], out_shape=(count,))
    out = _scatter(b, flat, 0, where, values, "add" if accumulate else "none")
    return b.op("reshape", out, shape=list(self.shape), out_shape=tuple(self.shape))
