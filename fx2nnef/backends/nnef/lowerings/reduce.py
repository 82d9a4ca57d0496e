"""Reduction lowerings. NNEF reductions keep the reduced axes; `keepdim=False` squeezes them after."""
from __future__ import annotations


from ..registry import lower
from .common import axes


def _reduce(b, op: str, x, dim, keepdim: bool):
    """Emit `op(x, axes)` over the normalized dims, then squeeze them unless keepdim."""
    if x.rank == 0:
        return x
    ax = axes(dim, x.rank)
    if op.startswith("tract_core_"):
        b.require("tract_core")
    out = b.op(op, x, axes=ax)
    return out if keepdim else b.op("squeeze", out, axes=ax)


@lower(("aten::sum.dim_IntList", "aten::sum"))
def aten_sum(b, self, dim=None, keepdim=False, dtype=None):
    """sum.dim_IntList(Tensor self, int[1]? dim, bool keepdim=False, *, ScalarType? dtype=None) -> Tensor"""
    return _reduce(b, "sum_reduce", b.cast(self, b.out_dtype), dim, keepdim)


@lower(("aten::mean.dim", "aten::mean"))
def aten_mean(b, self, dim=None, keepdim=False, dtype=None):
    """mean.dim(Tensor self, int[1]? dim, bool keepdim=False, *, ScalarType? dtype=None) -> Tensor"""
    return _reduce(b, "mean_reduce", b.cast(self, b.out_dtype), dim, keepdim)


@lower(("aten::prod.dim_int", "aten::prod"))
def aten_prod(b, self, dim=None, keepdim=False, dtype=None):
    """prod.dim_int(Tensor self, int dim, bool keepdim=False, *, ScalarType? dtype=None) -> Tensor"""
    return _reduce(b, "tract_core_product_reduce", b.cast(self, b.out_dtype), dim, keepdim)


@lower("aten::amax")
def aten_amax(b, self, dim=(), keepdim=False):
    """amax(Tensor self, int[1] dim=[], bool keepdim=False) -> Tensor"""
    return _reduce(b, "max_reduce", self, dim, keepdim)


@lower("aten::amin")
def aten_amin(b, self, dim=(), keepdim=False):
    """amin(Tensor self, int[1] dim=[], bool keepdim=False) -> Tensor"""
    return _reduce(b, "min_reduce", self, dim, keepdim)


@lower(("aten::any.dim", "aten::any.dims", "aten::any"))
def aten_any(b, self, dim=None, keepdim=False):
    """any.dims(Tensor self, int[]? dim=None, bool keepdim=False) -> Tensor"""
    return _reduce(b, "any_reduce", b.cast(self, "bool"), dim, keepdim)


@lower(("aten::all.dim", "aten::all.dims", "aten::all"))
def aten_all(b, self, dim=None, keepdim=False):
    """all.dims(Tensor self, int[]? dim=None, bool keepdim=False) -> Tensor"""
    return _reduce(b, "all_reduce", b.cast(self, "bool"), dim, keepdim)


def _arg_reduce(b, op: str, x, dim, keepdim: bool):
    """Emit argmax/argmin; over all dims (dim=None) the input is flattened first, as in torch."""
    if dim is None:
        x = b.op("reshape", x, shape=[-1])
        dim, keepdim = 0, keepdim
        out = _reduce(b, op, x, dim, False)
        return b.op("reshape", out, shape=[1] * len(b.out.shape)) if keepdim else out
    return _reduce(b, op, x, dim, keepdim)


@lower("aten::argmax")
def aten_argmax(b, self, dim=None, keepdim=False):
    """argmax(Tensor self, int? dim=None, bool keepdim=False) -> Tensor"""
    return _arg_reduce(b, "argmax_reduce", self, dim, keepdim)


@lower("aten::argmin")
def aten_argmin(b, self, dim=None, keepdim=False):
    """argmin(Tensor self, int? dim=None, bool keepdim=False) -> Tensor"""
    return _arg_reduce(b, "argmin_reduce", self, dim, keepdim)


@lower(("aten::max.dim", "aten::min.dim"))
def aten_max_dim(b, self, dim, keepdim=False):
    """max.dim(Tensor self, int dim, bool keepdim=False) -> (Tensor values, Tensor indices)"""
    is_max = b.node.target.name() == "aten::max.dim"
    values = _reduce(b, "max_reduce" if is_max else "min_reduce", self, dim, keepdim)
    indices = _reduce(b, "argmax_reduce" if is_max else "argmin_reduce", self, dim, keepdim)
    return values, indices
