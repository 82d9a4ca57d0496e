"""Lowerings whose output size depends on tensor data: nonzero, masked_select, unique, bincount,
repeat_interleave with a repeats tensor, and `.item()` (a scalar read from a tensor).

torch.export gives such a size as an unbacked symbol (u0); the lowering binds it (`b.bind_size`) to a
fresh tract symbol, declared in the archive, that tract binds at run time from the output of its
`tract_onnx_non_zero` (whose `count_symbol` names it). Inputs that are constants give static sizes.
A length read from a value (bincount's max + 1, repeat_interleave's sum) is made a size the same way:
non_zero of a run-time range of that length.
"""
from __future__ import annotations

import numpy as np

from ..graph import Expr
from ..registry import lower
from .common import axis, running_sum, true_positions


def _flat(b, x):
    """Return x as a 1-D tensor (its element count must be static)."""
    n = int(np.prod(x.shape))
    return x if x.rank == 1 else b.op("reshape", x, shape=[n], out_shape=(n,))


def _shaped(b, flat, shape):
    """Return a 1-D tensor reshaped to `shape` (squeezed for a 0-d shape: tract cannot reshape to [])."""
    return b.op("reshape", flat, shape=list(shape)) if len(shape) else b.op("squeeze", flat, axes=[0])


def _numel(x) -> int:
    if not all(isinstance(d, int) for d in x.shape):
        raise NotImplementedError("a data-dependent size computed from a tensor of dynamic shape")
    return int(np.prod(x.shape))


@lower("aten::_local_scalar_dense")
def aten__local_scalar_dense(b, self):
    """_local_scalar_dense(Tensor self) -> Scalar

    `.item()`: the value stays a rank-0 tensor, which ops taking it as a scalar argument read at run time."""
    return b.op("squeeze", self, axes=list(range(self.rank))) if self.rank else self  # tract cannot reshape to []


@lower("aten::nonzero")
def aten_nonzero(b, self):
    """nonzero(Tensor self) -> Tensor"""
    count = b.out.shape[0]
    if self.data is not None:
        found = np.argwhere(np.asarray(self.data))
        b.bind_size(count, len(found))
        return b.const(found.astype(np.int64), "i64", "nonzero")
    n = b.bind_size(count)
    b.require("tract_onnx")
    found = b.op("tract_onnx_non_zero", self, count_symbol=str(n), out_dtype="i64", out_shape=(self.rank, n))
    return b.op("transpose", found, axes=[1, 0])


@lower("aten::masked_select")
def aten_masked_select(b, self, mask):
    """masked_select(Tensor self, Tensor mask) -> Tensor"""
    shape = tuple(np.broadcast_shapes(tuple(self.shape), tuple(mask.shape)))
    b.require("tract_core")
    if mask.data is not None:  # a constant: so is the count
        keep = b.const(np.broadcast_to(np.asarray(mask.data), shape).reshape(-1), "bool", "mask")
    else:
        keep = _flat(b, mask if tuple(mask.shape) == shape else
                     b.op("tract_core_broadcast", mask, shape=list(shape), out_shape=shape))
    x = _flat(b, self if tuple(self.shape) == shape else
              b.op("tract_core_broadcast", self, shape=list(shape), out_shape=shape))
    return b.op("tract_core_gather", x, true_positions(b, keep, b.out.shape[0]), axis=0)


def _runs(b, values, new, size):
    """Return (first value of each run, run id of each element, run lengths) for a 1-D tensor and its
    flags `new` (true where a run starts); the run count is bound to `size`."""
    starts = true_positions(b, new, size)
    firsts = b.op("tract_core_gather", values, starts, axis=0)
    run = b.op("sub", running_sum(b, new), b.const(1, "i64", "one"))
    return firsts, run, _lengths(b, starts, new.shape[0])


def _lengths(b, starts, n: int):
    """Return the lengths of runs that start at `starts` (increasing positions) in n elements: each
    next start (n after the last) minus the start."""
    count = starts.shape[0]
    rest = count - 1 if isinstance(count, int) else Expr(f"{count} - 1")
    following = b.op("concat", [b.op("slice", starts, axes=[0], begin=[1], end=[count], out_shape=(rest,)),
                                b.const([n], "i64", "end")], axis=0, out_shape=(count,))
    return b.op("sub", following, starts)


def _starts(b, flat):
    """Return, for a 1-D tensor, where its element differs from the previous one (true at 0)."""
    n = flat.shape[0]
    if n == 1:
        return b.const([True], "bool", "start")
    differ = b.op("ne", b.op("slice", flat, axes=[0], begin=[1], end=[n]),
                  b.op("slice", flat, axes=[0], begin=[0], end=[n - 1]))
    return b.op("concat", [b.const([True], "bool", "start"), differ], axis=0)


def _empty_unique(b, self):
    """unique of an empty tensor: every output is empty."""
    empty = b.const(np.zeros(0), self.dtype, "empty")
    b.bind_size(b.out[0].shape[0], 0)
    return empty, b.const(np.zeros(self.shape), "i64", "inverse"), b.const(np.zeros(0), "i64", "counts")


@lower("aten::_unique2")
def aten__unique2(b, self, sorted=True, return_inverse=False, return_counts=False):
    """_unique2(Tensor self, bool sorted=True, bool return_inverse=False, bool return_counts=False) -> (Tensor, Tensor, Tensor)

    The sorted values (tract's top-k over every element) start a run where they change; PyTorch sorts on
    CPU even when `sorted` is false. The inverse scatters each sorted position's run id back."""
    n = _numel(self)
    if n == 0:
        return _empty_unique(b, self)
    b.require("tract_core")
    flat = _flat(b, self)
    ordered, order = b.op("tract_core_topk", flat, b.const(n, "i64", "k"), axis=0, largest=False, outputs=2)
    ordered.shape = order.shape = (n,)
    ordered.dtype, order.dtype = self.dtype, "i64"
    values, run, counts = _runs(b, ordered, _starts(b, ordered), b.out[0].shape[0])
    inverse = b.op("tract_core_scatter_elements", b.const(np.zeros(n), "i64", "inverse"), order, run, axis=0,
                   reduction="none", out_dtype="i64", out_shape=(n,))
    return values, _shaped(b, inverse, self.shape), counts


@lower("aten::unique_consecutive")
def aten_unique_consecutive(b, self, return_inverse=False, return_counts=False, dim=None):
    """unique_consecutive(Tensor self, bool return_inverse=False, bool return_counts=False, int? dim=None) -> (Tensor, Tensor, Tensor)"""
    if dim is not None:
        return _unique_rows(b, self, axis(dim, self.rank), consecutive=True)
    n = _numel(self)
    if n == 0:
        return _empty_unique(b, self)
    b.require("tract_core")
    flat = _flat(b, self)
    values, run, counts = _runs(b, flat, _starts(b, flat), b.out[0].shape[0])
    return values, _shaped(b, run, self.shape), counts


@lower("aten::unique_dim")
def aten_unique_dim(b, self, dim, sorted=True, return_inverse=False, return_counts=False):
    """unique_dim(Tensor self, int dim, bool sorted=True, bool return_inverse=False, bool return_counts=False) -> (Tensor, Tensor, Tensor)"""
    return _unique_rows(b, self, axis(dim, self.rank), consecutive=False)


@lower("aten::unique_dim_consecutive")
def aten_unique_dim_consecutive(b, self, dim, return_inverse=False, return_counts=False):
    """unique_dim_consecutive(Tensor self, int dim, bool return_inverse=False, bool return_counts=False) -> (Tensor, Tensor, Tensor)"""
    return _unique_rows(b, self, axis(dim, self.rank), consecutive=True)


def _unique_rows(b, self, d: int, consecutive: bool):
    """unique along dim d: the slices along d are rows compared whole. Sorted (not consecutive): each
    row's place is the number of rows before it lexicographically (ties by position), from an
    [n, n, m] comparison of every pair of rows at their first differing element."""
    n = self.shape[d]
    rows_shape = [n, _numel(self) // max(n, 1)]
    if n == 0 or rows_shape[1] == 0:
        raise NotImplementedError("unique of empty rows")
    b.require("tract_core")
    moved = b.op("transpose", self, axes=[d] + [a for a in range(self.rank) if a != d]) if d else self
    rows = b.op("reshape", moved, shape=rows_shape, out_shape=tuple(rows_shape))
    order = None
    if not consecutive:
        place = _lexicographic_places(b, rows, n, rows_shape[1])
        positions = b.const(np.arange(n), "i64", "positions")
        order = b.op("tract_core_scatter_elements", positions, place, positions, axis=0, reduction="none",
                     out_dtype="i64", out_shape=(n,))
        rows = b.op("tract_core_gather", rows, order, axis=0, out_shape=tuple(rows_shape))
    if n == 1:
        new = b.const([True], "bool", "start")
    else:
        differ = b.op("ne", b.op("slice", rows, axes=[0], begin=[1], end=[n]),
                      b.op("slice", rows, axes=[0], begin=[0], end=[n - 1]))
        new = b.op("concat", [b.const([True], "bool", "start"),
                              b.op("squeeze", b.op("any_reduce", differ, axes=[1]), axes=[1])], axis=0)
    size = b.out[0].shape[d]
    starts = true_positions(b, new, size)
    firsts = b.op("tract_core_gather", moved, b.op("tract_core_gather", order, starts, axis=0) if order else starts,
                  axis=0)
    values = b.op("transpose", firsts, axes=list(range(1, d + 1)) + [0] + list(range(d + 1, self.rank))) \
        if d else firsts
    run = b.op("sub", running_sum(b, new), b.const(1, "i64", "one"))
    counts = _lengths(b, starts, n)
    if order is not None:
        run = b.op("tract_core_scatter_elements", b.const(np.zeros(n), "i64", "inverse"), order, run, axis=0,
                   reduction="none", out_dtype="i64", out_shape=(n,))
    return values, run, counts


def _lexicographic_places(b, rows, n: int, m: int):
    """Return each row's index in the stable lexicographic order of the rows of an [n, m] tensor."""
    a, c = b.op("unsqueeze", rows, axes=[1]), b.op("unsqueeze", rows, axes=[0])   # [n, 1, m], [1, n, m]
    differ = b.cast(b.op("ne", a, c), "f32")                                      # [n, n, m]
    strictly_before = b.const(np.triu(np.ones((m, m)), 1)[None], "f32", "before")  # k' < k
    seen = b.op("matmul", differ, strictly_before)                                # differences before k
    first = b.op("and", b.op("eq", seen, 0.0), b.op("ne", a, c))                  # the first differing k
    less = b.op("any_reduce", b.op("and", first, b.op("lt", c, a)), axes=[2])     # row j < row i: [i, j, 1]
    same = b.op("not", b.op("any_reduce", b.op("ne", a, c), axes=[2]))
    earlier = b.const(np.tril(np.ones((n, n), bool), -1)[:, :, None], "bool", "earlier")  # j < i
    before = b.op("or", less, b.op("and", same, earlier))
    return b.op("squeeze", b.op("sum_reduce", b.cast(before, "i64"), axes=[1, 2]), axes=[1, 2])


def _sized_range(b, length, size):
    """Return 0..length-1 (i64) for a run-time scalar length, its size bound to `size`: non_zero of a
    run-time range makes the length a symbol tract binds."""
    b.require("tract_core")
    zero = b.const(0, "i64", "zero")
    everything = b.op("tract_core_range", zero, b.cast(length, "i64"), b.const(1, "i64", "one"), out_dtype="i64",
                      out_shape=(None,))
    return true_positions(b, b.op("ge", everything, zero, out_shape=(None,)), size)


@lower("aten::repeat_interleave.Tensor")
def aten_repeat_interleave(b, repeats, output_size=None):
    """repeat_interleave.Tensor(Tensor repeats, *, SymInt? output_size=None) -> Tensor

    Element j of the result is the number of running totals of repeats that are <= j."""
    repeats = b.cast(b.op("reshape", repeats, shape=[-1], out_shape=(_numel(repeats),)) if repeats.rank != 1
                     else repeats, "i64")
    size = b.out.shape[0]
    if not _unbacked(size):  # output_size given
        b.require("tract_core")
        j = b.op("tract_core_range", 0, b.dim(size), 1, out_dtype="i64", out_shape=(b.dim(size),))
    else:
        j = _sized_range(b, b.op("squeeze", b.op("sum_reduce", repeats, axes=[0]), axes=[0]), size)
    ends = running_sum(b, repeats)
    passed = b.op("le", b.op("unsqueeze", ends, axes=[1]), b.op("unsqueeze", j, axes=[0]))   # [m, N]
    return b.op("squeeze", b.op("sum_reduce", b.cast(passed, "i64"), axes=[0]), axes=[0])


def _unbacked(size) -> bool:
    """Tell whether a torch size is a symbol (read from data) rather than a number."""
    return hasattr(size, "node") and not size.node.expr.is_number


@lower("aten::bincount")
def aten_bincount(b, self, weights=None, minlength=0):
    """bincount(Tensor self, Tensor? weights=None, int minlength=0) -> Tensor"""
    x = b.cast(self, "i64")
    largest = b.op("squeeze", b.op("max_reduce", x, axes=[0]), axes=[0]) if self.shape[0] else \
        b.const(-1, "i64", "none")
    length = b.op("max", b.op("add", largest, b.const(1, "i64", "one")), b.const(minlength, "i64", "minlength"))
    bins = _sized_range(b, length, b.out.shape[0])
    # zeros computed from the bins (bins are >= 0), so that tract makes them once the length is bound
    zeros = b.op("min", b.cast(bins, b.out_dtype), b.const(0, b.out_dtype, "zero"))
    added = b.cast(weights, b.out_dtype) if weights is not None else b.op(
        "tract_core_broadcast", b.const(1, b.out_dtype, "one"), shape=list(x.shape), out_shape=tuple(x.shape))
    return b.op("tract_core_scatter_elements", zeros, x, added, axis=0, reduction="add", out_dtype=b.out_dtype,
                out_shape=bins.shape)
