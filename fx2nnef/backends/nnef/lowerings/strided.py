"""Lowerings that address a tensor's elements through explicit strides, resolved at export time."""
from __future__ import annotations

import numpy as np

from ..registry import lower


@lower("aten::as_strided_scatter", registries=("tract_core",))
def aten_as_strided_scatter(b, self, src, size, stride, storage_offset=None):
    """as_strided_scatter(Tensor self, Tensor src, SymInt[] size, SymInt[] stride, SymInt? storage_offset=None) -> Tensor

    The result is a contiguous copy of self whose elements at offset + sum(i * stride) take src's:
    the positions are computed here, so the graph is a gather of src and a select. Where strides make
    positions overlap, the last element of src written there wins."""
    shape = [int(d) for d in self.shape]
    count = int(np.prod(shape))
    grid = np.indices([int(d) for d in size]).reshape(len(size), -1) if size else np.zeros((0, 1), np.int64)
    positions = int(storage_offset or 0) + (np.asarray(stride, dtype=np.int64)[:, None] * grid).sum(axis=0)
    if positions.size == 0:  # nothing written (gathering from an empty src would fail in tract)
        return b.op("copy", self)
    source = np.zeros(count, np.int64)
    source[positions] = np.arange(positions.size)            # numpy keeps the last write of a position
    written = np.zeros(count, bool)
    written[positions] = True
    flat_src = b.op("reshape", src, shape=[positions.size], out_shape=(positions.size,))
    picked = b.op("tract_core_gather", flat_src, b.const(source, "i64", "source"), axis=0, out_shape=(count,))
    flat = b.op("reshape", self, shape=[count], out_shape=(count,))
    out = b.op("select", b.const(written, "bool", "written"), picked, flat)
    return b.op("reshape", out, shape=shape, out_shape=tuple(shape))
