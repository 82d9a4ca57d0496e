"""Lowerings that gather selected elements into an output of a size fixed at export time."""
from __future__ import annotations

import numpy as np

from ..registry import lower
from .common import running_sum


@lower("aten::nonzero_static")
def aten_nonzero_static(b, self, size, fill_value=-1):
    """nonzero_static(Tensor self, *, SymInt size, int fill_value=-1) -> Tensor

    The k-th non-zero element is the one whose running count of non-zeros reaches k + 1: with N
    elements, running sums give the counts and a size x N comparison picks each slot's flat index,
    unravelled into coordinates; slots past the count hold fill_value."""
    shape = [int(d) for d in self.shape]
    count = int(np.prod(shape))
    if size == 0 or not shape:
        return b.const(np.zeros((size, len(shape))), "i64", "nonzero")
    if count == 0:
        return b.const(np.full((size, len(shape)), fill_value), "i64", "nonzero")
    flat = b.op("reshape", self, shape=[count], out_shape=(count,))
    nonzero = b.op("ne", flat, b.const(0, self.dtype, "zero")) if self.dtype != "bool" else flat
    running = b.op("unsqueeze", running_sum(b, nonzero), axes=[0])                      # [1, N]: non-zeros up to i
    slots = b.const(np.arange(1, size + 1)[:, None], "i64", "slot")                        # [size, 1]
    chosen = b.op("and", b.op("eq", running, slots), b.op("unsqueeze", nonzero, axes=[0]))
    positions = b.const(np.arange(count)[None, :], "i64", "position")
    index = b.op("sum_reduce", b.op("mul", b.cast(chosen, "i64"), positions), axes=[1])  # [size, 1]
    strides = np.array([int(np.prod(shape[d + 1:])) for d in range(len(shape))])
    coords = b.op("div", index, b.const(strides[None, :], "i64", "stride"))              # [size, rank]
    coords = b.op("sub", coords, b.op("mul", b.op("div", coords, b.const(np.array(shape)[None, :], "i64", "dim")),
                                      b.const(np.array(shape)[None, :], "i64", "dim")))
    filled = b.op("any_reduce", chosen, axes=[1])
    return b.op("select", filled, coords, b.const(fill_value, "i64", "fill"))
