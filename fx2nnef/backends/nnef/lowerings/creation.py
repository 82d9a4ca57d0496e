"""Tensor-creation lowerings whose sizes depend on symbolic dims (static ones are folded before lowering)."""
from __future__ import annotations

from ..registry import lower
from .common import literal


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
    return b.op("tract_core_broadcast", b.const(fill_value, b.out_dtype, "fill"), shape=list(size))
