"""Histogram lowerings. The bin count is known at export time, so the output shape is static: each
element's bin is compared with every bin index (an elements x bins one-hot matrix) and summed."""
from __future__ import annotations

import builtins

import numpy as np

from ..registry import lower
from ..graph import Expr
from .common import literal, static


def _flat(b, x):
    """Return x as a 1-D tensor (of a symbolic length when x has dynamic axes)."""
    if not static(x.shape):
        return b.op("reshape", x, shape=[-1], out_shape=(Expr(" * ".join(f"({d})" for d in x.shape)),))
    count = int(np.prod(x.shape))
    return b.op("reshape", x, shape=[count], out_shape=(count,))


def _data_range(b, x, widen: float):
    """Return (lo, hi) of the data as [1] tensors, widened by `widen` each way where they are equal."""
    lo, hi = b.op("min_reduce", x, axes=[0]), b.op("max_reduce", x, axes=[0])
    same = b.op("eq", lo, hi)
    return (b.op("select", same, b.op("sub", lo, literal(widen)), lo),
            b.op("select", same, b.op("add", hi, literal(widen)), hi))


def _count(b, x, bin_of, inside, bins: int, weight=None):
    """Sum one-hots of each element's bin (bin `bins` joins the last bin) over the elements inside."""
    bin_of = b.op("min", bin_of, literal(bins - 1))
    index = b.const(np.arange(bins), x.dtype, "bin")
    hits = b.op("and", b.op("eq", b.op("unsqueeze", bin_of, axes=[1]), b.op("unsqueeze", index, axes=[0])),
                b.op("unsqueeze", inside, axes=[1]))
    hits = b.cast(hits, x.dtype)
    if weight is not None:
        hits = b.op("mul", hits, b.op("unsqueeze", weight, axes=[1]))
    return b.op("squeeze", b.op("sum_reduce", hits, axes=[0]), axes=[0])


@lower("aten::histc")
def aten_histc(b, self, bins=100, min=0, max=0):
    """histc(Tensor self, int bins=100, Scalar min=0, Scalar max=0) -> Tensor

    As PyTorch: min == max takes the data's range (widened by 1 each way if it is one value), the
    bin is trunc((x - min) * bins / (max - min)) in the input dtype, x == max joins the last bin and
    elements outside [min, max] (and NaN) are not counted."""
    dtype = self.dtype
    if static(self.shape) and int(np.prod(self.shape)) == 0:
        return b.const(np.zeros(bins), dtype, "histc")
    x = _flat(b, self)
    if min == max:
        lo, hi = _data_range(b, x, 1.0)
        width = b.op("sub", hi, lo)
    else:
        lo, hi = literal(min), literal(max)
        width = literal(float(np.float32(max) - np.float32(min)) if dtype == "f32" else float(max) - float(min))
    bin_of = b.op("floor", b.op("div", b.op("mul", b.op("sub", x, lo), literal(bins)), width))
    inside = b.op("and", b.op("ge", x, lo), b.op("le", x, hi))
    return _count(b, x, bin_of, inside, bins)


def _linspace(b, lo, hi, steps: int, dtype: str):
    """Return PyTorch's linspace(lo, hi, steps) for [1] tensors lo, hi: lo + i step on the first half,
    hi - (steps - 1 - i) step on the second."""
    step = b.op("div", b.op("sub", hi, lo), literal(steps - 1))
    i = np.arange(steps)
    first = b.op("add", lo, b.op("mul", step, b.const(i, dtype, "i")))
    second = b.op("sub", hi, b.op("mul", step, b.const(steps - 1 - i, dtype, "i")))
    return b.op("select", b.const(i < steps // 2, "bool", "first_half"), first, second)


def _locate(b, x, edges, bins: int):
    """Return (bin, inside) of the 1-D x among the edges: the number of edges <= x minus one (the last
    edge joining the last bin), and whether x lies within the outer edges."""
    below = b.op("le", b.op("unsqueeze", edges, axes=[0]), b.op("unsqueeze", x, axes=[1]))
    bin_of = b.op("sub", b.op("squeeze", b.op("sum_reduce", b.cast(below, x.dtype), axes=[1]), axes=[1]), 1.0)
    first = b.op("slice", edges, axes=[0], begin=[0], end=[1])
    last = b.op("slice", edges, axes=[0], begin=[bins], end=[bins + 1])
    return b.op("min", bin_of, literal(bins - 1)), b.op("and", b.op("ge", x, first), b.op("le", x, last))


def _lengths(b, edges, bins: int):
    """Return the widths of the bins between consecutive edges."""
    return b.op("sub", b.op("slice", edges, axes=[0], begin=[1], end=[bins + 1]),
                b.op("slice", edges, axes=[0], begin=[0], end=[bins]))


def _histogram(b, x, edges, bins: int, weight, density: bool):
    """Return (hist, edges) of x over the edges."""
    x = _flat(b, x)
    bin_of, inside = _locate(b, x, edges, bins)
    hist = _count(b, x, bin_of, inside, bins, None if weight is None else _flat(b, weight))
    if density:
        hist = b.op("div", b.op("div", hist, b.op("sum_reduce", hist, axes=[0])), _lengths(b, edges, bins))
    return hist, edges


def _edges(b, x, bins: int, bounds, dtype: str):
    """Return PyTorch's bin edges over the 1-D x: a linspace over `bounds` (lo, hi) or, without them,
    over the data's range, widened by 0.5 each way when it is a single value ([0, 1] without data)."""
    if bounds is not None:
        lo, hi = (b.const([v], dtype, "edge") for v in bounds)
        if bounds[0] == bounds[1]:
            lo, hi = b.op("sub", lo, 0.5), b.op("add", hi, 0.5)
    elif int(np.prod(x.shape)) == 0:
        lo, hi = b.const([0.0], dtype, "edge"), b.const([1.0], dtype, "edge")
    else:
        lo, hi = _data_range(b, x, 0.5)
    return _linspace(b, lo, hi, bins + 1, dtype)


@lower("aten::histogram.bin_ct")
def aten_histogram_bin_ct(b, self, bins=100, range=None, weight=None, density=False):
    """histogram.bin_ct(Tensor self, int bins=100, *, float[]? range=None, Tensor? weight=None, bool density=False) -> (Tensor hist, Tensor bin_edges)

    Without a range the data's (widened by 0.5 each way if it is one value) gives the edges, a
    PyTorch linspace; an element's bin is found among the edges as PyTorch's search does. A NaN in
    the data makes PyTorch raise; the graph then gives NaN edges."""
    edges = _edges(b, _flat(b, self), bins, range, self.dtype)
    if static(self.shape) and int(np.prod(self.shape)) == 0:
        return b.const(np.full(bins, np.nan if density else 0.0), self.dtype, "hist"), edges
    return _histogram(b, self, edges, bins, weight, density)


@lower("aten::histogram.bins_tensor")
def aten_histogram_bins_tensor(b, self, bins, weight=None, density=False):
    """histogram.bins_tensor(Tensor self, Tensor bins, *, Tensor? weight=None, bool density=False) -> (Tensor hist, Tensor bin_edges)"""
    count = bins.shape[0] - 1
    if static(self.shape) and int(np.prod(self.shape)) == 0:
        return b.const(np.full(count, np.nan if density else 0.0), self.dtype, "hist"), b.op("copy", bins)
    hist, _ = _histogram(b, self, bins, count, weight, density)
    return hist, b.op("copy", bins)


def _columns(b, self):
    """Return the points of a histogramdd input ([..., D] as N points) as D 1-D coordinate tensors."""
    dims = self.shape[-1]
    count = int(np.prod(self.shape[:-1]))
    points = b.op("reshape", self, shape=[count, dims], out_shape=(count, dims))
    return [b.op("squeeze", b.op("slice", points, axes=[1], begin=[d], end=[d + 1]), axes=[1]) for d in range(dims)]


def _dd_edges(b, columns, bins, range):
    """Return each dimension's edges for histogramdd (its `range` holds lo, hi per dimension)."""
    return [_edges(b, column, n, None if range is None else range[2 * d:2 * d + 2], column.dtype)
            for d, (column, n) in enumerate(zip(columns, bins))]


@lower("aten::_histogramdd_bin_edges")
def aten__histogramdd_bin_edges(b, self, bins, range=None, weight=None, density=False):
    """_histogramdd_bin_edges(Tensor self, int[] bins, *, float[]? range=None, Tensor? weight=None, bool density=False) -> Tensor[]"""
    return _dd_edges(b, _columns(b, self), bins, range)


@lower("aten::_histogramdd_from_bin_cts")
def aten__histogramdd_from_bin_cts(b, self, bins, range=None, weight=None, density=False):
    """_histogramdd_from_bin_cts(Tensor self, int[] bins, *, float[]? range=None, Tensor? weight=None, bool density=False) -> Tensor"""
    if int(np.prod(self.shape[:-1])) == 0:
        return b.const(np.full(bins, np.nan if density else 0.0), self.dtype, "hist")
    columns = _columns(b, self)
    return _histogramdd(b, columns, _dd_edges(b, columns, bins, range), list(bins), weight, density)


@lower("aten::_histogramdd_from_bin_tensors")
def aten__histogramdd_from_bin_tensors(b, self, bins, weight=None, density=False):
    """_histogramdd_from_bin_tensors(Tensor self, Tensor[] bins, *, Tensor? weight=None, bool density=False) -> Tensor"""
    counts = [int(edges.shape[0]) - 1 for edges in bins]
    if int(np.prod(self.shape[:-1])) == 0:
        return b.const(np.full(counts, np.nan if density else 0.0), self.dtype, "hist")
    return _histogramdd(b, _columns(b, self), list(bins), counts, weight, density)


def _histogramdd(b, columns, edges, bins, weight, density: bool):
    """Return the D-dimensional histogram of the points (one coordinate tensor per dimension): each
    point's cell is its bin in every dimension (found as for histogram) flattened row-major; a point
    counts when it lies inside the edges of every dimension."""
    total = int(np.prod(bins))
    cell, inside = None, None
    for d, (column, n) in enumerate(zip(columns, bins)):
        bin_of, within = _locate(b, column, edges[d], n)
        stride = int(np.prod(bins[d + 1:]))
        bin_of = b.op("mul", bin_of, literal(stride)) if stride != 1 else bin_of
        cell = bin_of if cell is None else b.op("add", cell, bin_of)
        inside = within if inside is None else b.op("and", inside, within)
    hist = _count(b, columns[0], cell, inside, total, None if weight is None else _flat(b, weight))
    hist = b.op("reshape", hist, shape=list(bins), out_shape=tuple(bins))
    if density:
        hist = b.op("div", hist, b.op("sum_reduce", hist, axes=list(builtins.range(len(bins)))))
        for d, n in enumerate(bins):
            axes = [a for a in builtins.range(len(bins)) if a != d]
            lengths = _lengths(b, edges[d], n)
            hist = b.op("div", hist, b.op("unsqueeze", lengths, axes=axes) if axes else lengths)
    return hist
