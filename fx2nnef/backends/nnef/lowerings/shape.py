"""Shape and indexing lowerings: views, permutations, slicing, concatenation, gathers, casts.

Output shapes come from the fx node's meta (what PyTorch computed), so views never guess.
"""
from __future__ import annotations

import numpy as np

from ..graph import Expr, block_format
from ..registry import lower
from .common import INT64_SENTINEL, axes, axis, static, true_positions


@lower(("aten::view", "aten::_unsafe_view", "aten::view_copy"))
def aten_view(b, self, size):
    """view(Tensor(a) self, SymInt[] size) -> Tensor(a)"""
    shape = list(b.shape_of(b.out))
    if tuple(shape) == tuple(self.shape or ()):
        return self
    exprs = [i for i, d in enumerate(shape) if isinstance(d, Expr)]
    if len(exprs) > 1:  # let tract infer one symbolic dim: it cannot simplify every expression, and
        # divides by a product of plain symbols (B * 32) where it fails to by a sum (T / 10 - 1)
        shape[max(exprs, key=lambda i: len(shape[i].text))] = -1
    return b.op("reshape", self, shape=shape)


@lower("aten::reshape")
def aten_reshape(b, self, shape):
    """reshape(Tensor(a) self, SymInt[] shape) -> Tensor(a)"""
    return aten_view(b, self, shape)


@lower(("aten::permute", "aten::permute_copy"))
def aten_permute(b, self, dims):
    """permute(Tensor(a) self, int[] dims) -> Tensor(a)"""
    perm = [axis(d, self.rank) for d in dims]
    if perm == sorted(perm):
        return self
    return b.op("transpose", self, axes=perm)


@lower(("aten::transpose.int", "aten::transpose_copy.int"))
def aten_transpose(b, self, dim0, dim1):
    """transpose.int(Tensor(a) self, int dim0, int dim1) -> Tensor(a)"""
    perm = list(range(self.rank))
    i, j = axis(dim0, self.rank), axis(dim1, self.rank)
    perm[i], perm[j] = perm[j], perm[i]
    return aten_permute(b, self, perm)


@lower("aten::t")
def aten_t(b, self):
    """t(Tensor(a) self) -> Tensor(a)"""
    return aten_permute(b, self, list(range(self.rank))[::-1])


@lower(("aten::unsqueeze", "aten::unsqueeze_copy"))
def aten_unsqueeze(b, self, dim):
    """unsqueeze(Tensor(a) self, int dim) -> Tensor(a)"""
    return b.op("unsqueeze", self, axes=[axis(dim, self.rank + 1)])


@lower(("aten::squeeze", "aten::squeeze.dim", "aten::squeeze.dims", "aten::squeeze_copy.dims"))
def aten_squeeze(b, self, dim=None):
    """squeeze.dims(Tensor(a) self, int[] dim) -> Tensor(a)"""
    if isinstance(dim, (list, tuple)) and not dim or self.rank == 0:
        return self
    unit = [a for a in axes(dim, self.rank) if self.shape[a] == 1]
    return b.op("squeeze", self, axes=unit) if unit else self


@lower(("aten::expand", "aten::expand_copy"))
def aten_expand(b, self, size, implicit=False):
    """expand(Tensor(a) self, SymInt[] size, *, bool implicit=False) -> Tensor(a)"""
    shape = list(b.shape_of(b.out))
    if tuple(shape) == tuple(self.shape or ()):
        return self
    if b.khronos and static(shape):  # standard NNEF repeats the unit axes with tile
        x = b.op("unsqueeze", self, axes=list(range(len(shape) - self.rank))) if self.rank < len(shape) else self
        return b.op("tile", x, repeats=[n if d == 1 else 1 for n, d in zip(shape, x.shape)])
    b.require("tract_core")
    return b.op("tract_core_broadcast", self, shape=shape)


def _bound(value, size, default):
    """Normalize a slice bound against a dim: None/sentinel -> default, negative -> from the end, clamped."""
    if value is None or (isinstance(value, int) and value >= INT64_SENTINEL):
        return default
    if isinstance(value, Expr) or isinstance(size, Expr):
        if isinstance(value, int) and value < 0:
            return Expr(f"{size} - {-value}")
        return value
    if value < 0:
        value += size
    return min(max(value, 0), size)


@lower(("aten::slice.Tensor", "aten::slice_copy.Tensor"))
def aten_slice(b, self, dim=0, start=None, end=None, step=1):
    """slice.Tensor(Tensor(a) self, int dim=0, SymInt? start=None, SymInt? end=None, SymInt step=1) -> Tensor(a)"""
    d = axis(dim, self.rank)
    size = self.shape[d]
    if hasattr(start, "name") or hasattr(end, "name"):
        return _slice_at_run_time(b, self, d, start, end, step)
    begin = _bound(start, size, 0)
    stop = _bound(end, size, size)
    if isinstance(begin, int) and isinstance(stop, int):
        stop = max(stop, begin)
        if begin == 0 and stop == size and step == 1:
            return self
        if step != 1 and not b.khronos:  # a gather: tract 0.23.9 cannot load a strided slice that its
            # optimizer pulls over a reshape ("Invalid axis"), e.g. x.view(B, H, W, C)[:, ::2]
            return _gather(b, self, b.const(np.arange(begin, stop, step), "i64", "strided"), d)
    return b.op("slice", self, axes=[d], begin=[begin], end=[stop], stride=[step])


def _slice_at_run_time(b, self, d: int, start, end, step):
    """A slice with a bound read from tensor data (`x[:t.item()]`): non_zero of the mask of the kept
    positions gives them, and their count is the size symbol PyTorch made for the result."""
    n = self.shape[d]
    if not isinstance(n, int):
        raise NotImplementedError("a slice bound read from tensor data along a dynamic axis")
    positions = b.const(np.arange(n), "i64", "positions")

    def bound(value, default):
        if value is None or isinstance(value, int) and value >= INT64_SENTINEL:
            return b.const(default, "i64", "bound")
        if isinstance(value, int):
            return b.const(min(max(value + n if value < 0 else value, 0), n), "i64", "bound")
        value = b.cast(value, "i64")
        value = b.op("select", b.op("lt", value, b.const(0, "i64", "zero")), b.op("add", value, b.const(n, "i64", "n")),
                     value)
        return b.op("min", b.op("max", value, b.const(0, "i64", "zero")), b.const(n, "i64", "n"))

    low, high = bound(start, 0), bound(end, n)
    keep = b.op("and", b.op("ge", positions, low), b.op("lt", positions, high))
    if step != 1:
        offset = b.op("sub", positions, low)
        rest = b.op("sub", offset, b.op("mul", b.op("div", offset, b.const(step, "i64", "step")),
                                        b.const(step, "i64", "step")))
        keep = b.op("and", keep, b.op("eq", rest, b.const(0, "i64", "zero")))
    return _gather(b, self, true_positions(b, keep, b.out.shape[d]), d)


@lower(("aten::split_with_sizes", "aten::split_with_sizes_copy"))
def aten_split_with_sizes(b, self, split_sizes, dim=0):
    """split_with_sizes(Tensor(a -> *) self, SymInt[] split_sizes, int dim=0) -> Tensor(a)[]"""
    d = axis(dim, self.rank)
    chunks, begin = [], 0
    for size in split_sizes:
        chunks.append(b.op("slice", self, axes=[d], begin=[begin], end=[begin + size]))
        begin = begin + size
    return chunks


@lower("aten::repeat")
def aten_repeat(b, self, repeats):
    """repeat(Tensor self, SymInt[] repeats) -> Tensor"""
    extra = len(repeats) - self.rank
    x = b.op("unsqueeze", self, axes=list(range(extra))) if extra > 0 else self
    if all(r == 1 for r in repeats):  # also a 0-d tensor repeated [] times: tile has nothing to do
        return x
    return b.op("tile", x, repeats=list(repeats), out_shape=b.shape_of(b.out), out_dtype=self.dtype)


@lower(("aten::select.int", "aten::select_copy.int"))
def aten_select(b, self, dim, index):
    """select.int(Tensor(a) self, int dim, SymInt index) -> Tensor(a)"""
    d = axis(dim, self.rank)
    size = self.shape[d]
    if hasattr(index, "name"):  # read from tensor data (`x[:, t]` with a 0-d t): a gather, negatives included
        return _gather(b, self, b.cast(index, "i64"), d)
    if isinstance(index, int) and index < 0:
        index = index + size if isinstance(size, int) else Expr(f"{size} - {-index}")
    end = index + 1 if isinstance(index, int) else Expr(f"{index} + 1")
    return b.op("squeeze", b.op("slice", self, axes=[d], begin=[index], end=[end]), axes=[d])


@lower("aten::cat")
def aten_cat(b, tensors, dim=0):
    """cat(Tensor[] tensors, int dim=0) -> Tensor"""
    rank = max(t.rank for t in tensors)
    parts = [t for t in tensors if t.rank == rank and 0 not in t.shape]
    if len(parts) == 1:
        return parts[0]
    return b.op("concat", parts, axis=axis(dim, rank))


@lower("aten::stack")
def aten_stack(b, tensors, dim=0):
    """stack(Tensor[] tensors, int dim=0) -> Tensor"""
    return b.op("stack", list(tensors), axis=axis(dim, tensors[0].rank + 1))


@lower(("aten::clone", "aten::alias", "aten::detach", "aten::lift_fresh_copy", "aten::contiguous",
        "aten::alias_copy", "aten::detach_copy"))
def aten_clone(b, self, memory_format=None):
    """clone(Tensor self, *, MemoryFormat? memory_format=None) -> Tensor"""
    return self


@lower("aten::_to_copy")
def aten__to_copy(b, self, dtype=None, layout=None, device=None, pin_memory=None, non_blocking=False,
                  memory_format=None):
    """_to_copy(Tensor self, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None, bool non_blocking=False, MemoryFormat? memory_format=None) -> Tensor"""
    return b.cast(self, b.out_dtype)


@lower("aten::embedding")
def aten_embedding(b, weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    """embedding(Tensor weight, Tensor indices, SymInt padding_idx=-1, bool scale_grad_by_freq=False, bool sparse=False) -> Tensor"""
    if block_format(weight.data):  # tract asks the output type of a gather from compressed data
        b.require("tract_core")
        return b.op("tract_core_gather", weight, indices, axis=0, datum_type=b.out_dtype)
    return _gather(b, weight, indices, 0)


def _gather(b, x, indices, dim: int):
    """Emit `np.take(x, indices, axis=dim)`: standard `gather` on Khronos, tract_core_gather else."""
    if b.khronos:
        return b.op("gather", x, indices, axis=dim)
    b.require("tract_core")
    return b.op("tract_core_gather", x, indices, axis=dim)


@lower("aten::index_select")
def aten_index_select(b, self, dim, index):
    """index_select(Tensor self, int dim, Tensor index) -> Tensor"""
    if self.rank == 0:  # torch treats a 0-d tensor as 1-d here
        self = b.op("reshape", self, shape=[1], out_shape=(1,))
        index = b.op("reshape", index, shape=[-1], out_shape=(1,))
        return b.op("squeeze", _gather(b, self, index, 0), axes=[0])
    return _gather(b, self, index, axis(dim, self.rank))


@lower("aten::gather")
def aten_gather(b, self, dim, index, sparse_grad=False):
    """gather(Tensor self, int dim, Tensor index, *, bool sparse_grad=False) -> Tensor"""
    b.require("tract_core")
    if self.rank == 0:
        return b.op("squeeze", b.op("tract_core_gather_elements", b.op("reshape", self, shape=[1], out_shape=(1,)),
                                    b.op("reshape", index, shape=[1], out_shape=(1,)), axis=0), axes=[0])
    return b.op("tract_core_gather_elements", self, index, axis=axis(dim, self.rank))


@lower("aten::narrow_copy")
def aten_narrow_copy(b, self, dim, start, length):
    """narrow_copy(Tensor self, int dim, SymInt start, SymInt length) -> Tensor"""
    d = axis(dim, self.rank)
    begin = _bound(start, self.shape[d], 0)
    return aten_slice(b, self, d, begin, begin + length)
