"""Histogram lowerings. The bin count is known at export time, so the output shape is static: each
element's bin is compared with every bin index (an elements x bins one-hot matrix) and summed."""
from __future__ import annotations

import numpy as np

from ..registry import lower
from .common import literal


def _flat(b, x):
    """Return x as a 1-D tensor."""
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
    if int(np.prod(self.shape)) == 0:
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


def _histogram(b, x, edges, bins: int, weight, density: bool):
    """Return (hist, edges): each element's bin is the number of edges <= it, minus one."""
    x = _flat(b, x)
    below = b.op("le", b.op("unsqueeze", edges, axes=[0]), b.op("unsqueeze", x, axes=[1]))
    bin_of = b.op("sub", b.op("squeeze", b.op("sum_reduce", b.cast(below, x.dtype), axes=[1]), axes=[1]), 1.0)
    first = b.op("slice", edges, axes=[0], begin=[0], end=[1])
    last = b.op("slice", edges, axes=[0], begin=[bins], end=[bins + 1])
    inside = b.op("and", b.op("ge", x, first), b.op("le", x, last))
    hist = _count(b, x, bin_of, inside, bins, None if weight is None else _flat(b, weight))
    if density:
        lengths = b.op("sub", b.op("slice", edges, axes=[0], begin=[1], end=[bins + 1]),
                       b.op("slice", edges, axes=[0], begin=[0], end=[bins]))
        hist = b.op("div", b.op("div", hist, b.op("sum_reduce", hist, axes=[0])), lengths)
    return hist, edges


@lower("aten::histogram.bin_ct")
def aten_histogram_bin_ct(b, self, bins=100, range=None, weight=None, density=False):
    """histogram.bin_ct(Tensor self, int bins=100, *, float[]? range=None, Tensor? weight=None, bool density=False) -> (Tensor hist, Tensor bin_edges)

    Without a range the data's (widened by 0.5 each way if it is one value) gives the edges, a
    PyTorch linspace; an element's bin is found among the edges as PyTorch's search does. A NaN in
    the data makes PyTorch raise; the graph then gives NaN edges."""
    dtype = self.dtype
    if range is not None:
        lo, hi = (b.const([v], dtype, "edge") for v in range)
        same = range[0] == range[1]
    elif int(np.prod(self.shape)) == 0:  # no data: PyTorch's range is [0, 1]
        lo, hi = b.const([0.0], dtype, "edge"), b.const([1.0], dtype, "edge")
        same = False
    else:
        lo, hi = _data_range(b, _flat(b, self), 0.5)
        same = False
    if same:
        lo, hi = b.op("sub", lo, 0.5), b.op("add", hi, 0.5)
    edges = _linspace(b, lo, hi, bins + 1, dtype)
    if int(np.prod(self.shape)) == 0:
        return b.const(np.full(bins, np.nan if density else 0.0), dtype, "hist"), edges
    return _histogram(b, self, edges, bins, weight, density)


@lower("aten::histogram.bins_tensor")
def aten_histogram_bins_tensor(b, self, bins, weight=None, density=False):
    """histogram.bins_tensor(Tensor self, Tensor bins, *, Tensor? weight=None, bool density=False) -> (Tensor hist, Tensor bin_edges)"""
    count = bins.shape[0] - 1
    if int(np.prod(self.shape)) == 0:
        return b.const(np.full(count, np.nan if density else 0.0), self.dtype, "hist"), b.op("copy", bins)
    hist, _ = _histogram(b, self, bins, count, weight, density)
    return hist, b.op("copy", bins)
