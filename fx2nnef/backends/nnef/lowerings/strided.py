"""Lowerings that address a tensor's elements through explicit strides, resolved at export time."""
from __future__ import annotations

import numpy as np

from ....errors import UnsupportedOpError
from ..registry import lower
from .indexing import _gather


def _positions(size, stride, storage_offset) -> np.ndarray:
    """Return the flat storage position (offset + sum(i * stride)) of every element of a strided
    view of shape `size`, as an int64 array of that shape."""
    index = np.full(tuple(int(n) for n in size), int(storage_offset or 0), dtype=np.int64)
    for d, (n, st) in enumerate(zip(size, stride)):
        shape = [1] * len(size)
        shape[d] = int(n)
        index = index + (np.arange(int(n)) * int(st)).reshape(shape)
    return index


@lower(("aten::as_strided", "aten::as_strided_copy"))
def aten_as_strided(b, self, size, stride, storage_offset=None):
    """as_strided(Tensor(a) self, SymInt[] size, SymInt[] stride, SymInt? storage_offset=None) -> Tensor(a)"""
    index, count = _positions(size, stride, storage_offset), int(np.prod(self.shape))
    if index.size == 0:
        raise NotImplementedError("an empty strided view")
    if index.max() >= count:
        raise UnsupportedOpError(f"the view reads storage position {index.max()} of a tensor of {count} elements "
                                 "(not expressible: a view into a larger storage; an NNEF tensor has only its own)")
    return _gather(b, b.op("reshape", self, shape=[-1], out_shape=(count,)), index, 0)


@lower("aten::as_strided_scatter", registries=("tract_core",))
def aten_as_strided_scatter(b, self, src, size, stride, storage_offset=None):
    """as_strided_scatter(Tensor self, Tensor src, SymInt[] size, SymInt[] stride, SymInt? storage_offset=None) -> Tensor

    The result is a contiguous copy of self whose elements at offset + sum(i * stride) take src's:
    the positions are computed here, so the graph is a gather of src and a select. Where strides make
    positions overlap, the last element of src written there wins."""
    shape = [int(d) for d in self.shape]
    count = int(np.prod(shape))
    positions = _positions(size, stride, storage_offset).reshape(-1)
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
