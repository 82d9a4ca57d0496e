"""Tensor-creation lowerings whose sizes depend on symbolic dims (static ones are folded before lowering)."""
from __future__ import annotations

import numpy as np

from ..registry import lower


def _range(b, start, end, step):
    """Emit tract_core_range(start, end, step) cast to the node's dtype (ints and symbols stay exact)."""
    if any(isinstance(v, float) for v in (start, end, step)):
        r = b.op("tract_core_range", float(start), float(end), float(step), out_dtype="f32")
    else:
        r = b.op("tract_core_range", start, end, step, out_dtype="i64")
    return b.op("tract_core_cast", r, to=b.out_dtype)


@lower("aten::arange.start_step", registries=("tract_core",))
def aten_arange_start_step(b, start, end, step=1, dtype=None, layout=None, device=None, pin_memory=None):
    """arange.start_step(Scalar start, Scalar end, Scalar step=1, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor"""
    return _range(b, start, end, step)


@lower("aten::arange.start", registries=("tract_core",))
def aten_arange_start(b, start, end, dtype=None, layout=None, device=None, pin_memory=None):
    """arange.start(Scalar start, Scalar end, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor"""
    return _range(b, start, end, 1)


@lower("aten::arange", registries=("tract_core",))
def aten_arange(b, end, dtype=None, layout=None, device=None, pin_memory=None):
    """arange(Scalar end, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor"""
    return _range(b, 0, end, 1)


@lower("aten::full", registries=("tract_core",))
def aten_full(b, size, fill_value, dtype=None, layout=None, device=None, pin_memory=None):
    """full(SymInt[] size, Scalar fill_value, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor"""
    return _filled(b, fill_value, list(size))


def _filled(b, value, shape):
    """Return a tensor of the node's dtype and `shape`, every element `value`: a constant of ones
    broadcast (of the same rank: tract 0.23.9 fails to optimize a matmul whose operand is a rank-0
    constant broadcast to a symbolic shape, "Condition failed: ... fact.len() == self.axes.rank")."""
    scalar = b.const(np.full([1] * len(shape), value), b.out_dtype, "fill")
    if not shape:
        return scalar
    b.require("tract_core")
    return b.op("tract_core_broadcast", scalar, shape=list(shape))


@lower("aten::full_like")
def aten_full_like(b, self, fill_value, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    """full_like(Tensor self, Scalar fill_value, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None, MemoryFormat? memory_format=None) -> Tensor"""
    return _filled(b, fill_value, b.shape_of(b.out))


@lower(("aten::zeros_like", "aten::ones_like"))
def aten_zeros_like(b, self, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    """zeros_like(Tensor self, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None, MemoryFormat? memory_format=None) -> Tensor"""
    return _filled(b, 0 if b.node.target.name() == "aten::zeros_like" else 1, b.shape_of(b.out))


@lower("aten::scalar_tensor")
def aten_scalar_tensor(b, s, dtype=None, layout=None, device=None, pin_memory=None):
    """scalar_tensor(Scalar s, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor"""
    return b.const(s, b.out_dtype, "scalar")


@lower("aten::copy")
def aten_copy(b, self, src, non_blocking=False):
    """copy(Tensor self, Tensor src, bool non_blocking=False) -> Tensor"""
    out = b.cast(src, self.dtype)
    if tuple(out.shape) != tuple(self.shape):
        b.require("tract_core")
        out = b.op("tract_core_broadcast", out, shape=list(self.shape))
    return out


@lower(("aten::empty.memory_format", "aten::empty_strided", "aten::empty_like", "aten::empty_permuted",
        "aten::new_empty_strided", "aten::new_empty"))
def aten_empty(b, *args, **kwargs):
    """empty.memory_format(SymInt[] size, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None, MemoryFormat? memory_format=None) -> Tensor"""
    return _filled(b, 0, b.shape_of(b.out))  # the values are undefined: zeros are as good as any
