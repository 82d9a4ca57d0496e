"""Reduction lowerings. NNEF reductions keep the reduced axes; `keepdim=False` squeezes them after."""
from __future__ import annotations

import numpy as np

from ..registry import lower
from .common import axes, literal, static


# what a reduction over an empty axis gives (tract aborts the process on one)
EMPTY_REDUCTION = {"sum_reduce": 0, "tract_core_product_reduce": 1, "any_reduce": False, "all_reduce": True,
                   "mean_reduce": float("nan")}


def _reduce(b, op: str, x, dim, keepdim: bool):
    """Emit `op(x, axes)` over the normalized dims, then squeeze them unless keepdim."""
    if x.rank == 0:
        return x
    ax = axes(dim, x.rank)
    if op in EMPTY_REDUCTION and any(x.shape[a] == 0 for a in ax) and static(x.shape):
        shape = [1 if i in ax else d for i, d in enumerate(x.shape) if keepdim or i not in ax]
        return b.const(np.full(shape, EMPTY_REDUCTION[op]), x.dtype, "empty_reduction")
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
        x = b.op("reshape", x, shape=[-1], out_shape=(int(np.prod(x.shape)),))
        dim, keepdim = 0, keepdim
        out = _reduce(b, op, x, dim, False)
        return b.op("reshape", out, shape=[1] * len(b.out.shape)) if keepdim else out
    if x.rank == 0:
        return b.const(0, "i64", "index")
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
    if self.rank == 0:
        return self, b.const(0, "i64", "index")
    values = _reduce(b, "max_reduce" if is_max else "min_reduce", self, dim, keepdim)
    indices = _reduce(b, "argmax_reduce" if is_max else "argmin_reduce", self, dim, keepdim)
    return values, indices


@lower(("aten::max", "aten::min"))
def aten_max(b, self):
    """max(Tensor self) -> Tensor"""
    return _reduce(b, "max_reduce" if b.node.target.name() == "aten::max" else "min_reduce", self, None, False)


def _variance(b, x, dim, correction, keepdim: bool):
    """Return (var, mean) over dims with torch's correction (divide by N - correction)."""
    if x.rank == 0:
        count = 1
        mean = x
        centered = b.op("sub", x, x)
        total = b.op("mul", centered, centered)
    else:
        ax = axes(dim, x.rank)
        count = 1
        for a in ax:
            count *= x.shape[a]
        mean = b.op("mean_reduce", x, axes=ax)
        centered = b.op("sub", x, mean)
        total = b.op("sum_reduce", b.op("mul", centered, centered), axes=ax)
        if not keepdim:
            total, mean = b.op("squeeze", total, axes=ax), b.op("squeeze", mean, axes=ax)
    correction = 1 if correction is None else correction
    divisor = max(count - correction, 0)
    var = b.op("div", total, literal(divisor)) if divisor else b.op("div", total, 0.0)
    return var, mean


@lower(("aten::var.correction", "aten::var.dim", "aten::var"))
def aten_var(b, self, dim=None, correction=None, keepdim=False, unbiased=True):
    """var.correction(Tensor self, int[1]? dim=None, *, Scalar? correction=None, bool keepdim=False) -> Tensor"""
    if b.node.target.name() != "aten::var.correction":
        correction = 1 if unbiased else 0
    return _variance(b, self, dim, correction, keepdim)[0]


@lower("aten::var_mean.correction")
def aten_var_mean(b, self, dim=None, correction=None, keepdim=False):
    """var_mean.correction(Tensor self, int[1]? dim=None, *, Scalar? correction=None, bool keepdim=False) -> (Tensor, Tensor)"""
    return _variance(b, self, dim, correction, keepdim)


@lower(("aten::std.correction",))
def aten_std(b, self, dim=None, correction=None, keepdim=False):
    """std.correction(Tensor self, int[1]? dim=None, *, Scalar? correction=None, bool keepdim=False) -> Tensor"""
    return b.op("sqrt", _variance(b, self, dim, correction, keepdim)[0])


@lower("aten::logsumexp")
def aten_logsumexp(b, self, dim, keepdim=False):
    """logsumexp(Tensor self, int[1] dim, bool keepdim=False) -> Tensor"""
    x = b.cast(self, b.out_dtype)
    if x.rank == 0:
        return x
    ax = axes(dim, x.rank)
    top = b.op("max_reduce", x, axes=ax)
    b.require("tract_core")
    safe = b.op("select", b.op("tract_core_is_inf", top, detect_positive=True, detect_negative=True,
                                out_dtype="bool", out_shape=top.shape), b.const(0.0, x.dtype, "zero"), top)
    total = b.op("sum_reduce", b.op("exp", b.op("sub", x, safe)), axes=ax)
    out = b.op("add", b.op("log", total), safe)
    return out if keepdim else b.op("squeeze", out, axes=ax)


@lower("aten::linalg_vector_norm")
def aten_linalg_vector_norm(b, self, ord=2, dim=None, keepdim=False, dtype=None):
    """linalg_vector_norm(Tensor self, Scalar ord=2, int[1]? dim=None, bool keepdim=False, *, ScalarType? dtype=None) -> Tensor"""
    x = b.cast(self, b.out_dtype)
    if x.rank == 0:
        x = b.op("reshape", x, shape=[1], out_shape=(1,))
        dim, keepdim = None, False
    magnitude = b.op("abs", x)
    if ord == float("inf"):
        return _reduce(b, "max_reduce", magnitude, dim, keepdim)
    if ord == float("-inf"):
        return _reduce(b, "min_reduce", magnitude, dim, keepdim)
    if ord == 0:
        return _reduce(b, "sum_reduce", b.cast(b.op("ne", x, 0.0), x.dtype), dim, keepdim)
    if ord == 1:
        return _reduce(b, "sum_reduce", magnitude, dim, keepdim)
    if ord == 2:
        return b.op("sqrt", _reduce(b, "sum_reduce", b.op("mul", x, x), dim, keepdim))
    total = _reduce(b, "sum_reduce", b.op("pow", magnitude, literal(ord)), dim, keepdim)
    return b.op("pow", total, literal(1 / ord))


@lower("aten::dist")
def aten_dist(b, self, other, p=2):
    """dist(Tensor self, Tensor other, Scalar p=2) -> Tensor"""
    return aten_linalg_vector_norm(b, b.op("sub", self, other), p)


def _median(b, x, d: int, keepdim: bool, skip_nan: bool):
    """Return the lower median of x along axis d and its index: NaN (and the first NaN's index)
    where a row holds one, or with `skip_nan` the median of the row's other values. Needs a static
    length along d (the median's rank in the sorted row depends on it)."""
    n = x.shape[d]
    if not isinstance(n, int) or n == 0:
        raise NotImplementedError("median along a symbolic or empty axis")
    b.require("tract_core")
    nan = b.op("tract_core_is_nan", x)
    clean = b.op("select", nan, b.const(float("inf"), x.dtype, "top"), x)
    values, indices = b.op("tract_core_topk", clean, b.const(n, "i64", "k"), axis=d, largest=False, outputs=2)
    values.dtype, values.shape, indices.dtype, indices.shape = x.dtype, x.shape, "i64", x.shape
    nan_count = b.op("sum_reduce", b.cast(nan, x.dtype), axes=[d])
    if skip_nan:  # the rank is (valid - 1) // 2, or (n - 1) // 2 in an all-NaN row
        valid = b.op("sub", literal(n), nan_count)
        rank = b.op("floor", b.op("mul", b.op("sub", valid, 1.0), 0.5))
        rank = b.op("select", b.op("eq", valid, 0.0), b.const((n - 1) // 2, x.dtype, "rank"), rank)
        position = b.const(np.arange(n).reshape([n if a == d else 1 for a in range(x.rank)]), x.dtype, "position")
        pick = b.op("eq", position, rank)
        value = b.op("sum_reduce", b.op("select", pick, values, b.const(0, x.dtype, "zero")), axes=[d])
        index = b.op("sum_reduce", b.op("select", pick, indices, b.const(0, "i64", "zero")), axes=[d])
        value = b.op("select", b.op("eq", valid, 0.0), b.const(float("nan"), x.dtype, "blank"), value)
    else:
        k = (n - 1) // 2
        value, index = (b.op("slice", t, axes=[d], begin=[k], end=[k + 1]) for t in (values, indices))
        has_nan = b.op("gt", nan_count, 0.0)
        value = b.op("select", has_nan, b.const(float("nan"), x.dtype, "blank"), value)
        first_nan = b.op("argmax_reduce", b.cast(nan, x.dtype), axes=[d])
        index = b.op("select", has_nan, first_nan, index)
    if keepdim:
        return value, index
    return b.op("squeeze", value, axes=[d]), b.op("squeeze", index, axes=[d])


@lower(("aten::median", "aten::nanmedian"))
def aten_median(b, self):
    """median(Tensor self) -> Tensor"""
    flat = self if self.rank == 1 else b.op("reshape", self, shape=[-1], out_shape=(int(np.prod(self.shape)),))
    value, _ = _median(b, flat, 0, False, b.node.target.name() == "aten::nanmedian")
    return value


@lower(("aten::median.dim", "aten::nanmedian.dim"))
def aten_median_dim(b, self, dim, keepdim=False):
    """median.dim(Tensor self, int dim, bool keepdim=False) -> (Tensor values, Tensor indices)"""
    if self.rank == 0:
        return self, b.const(0, "i64", "index")
    return _median(b, self, axes(dim, self.rank)[0], keepdim, b.node.target.name() == "aten::nanmedian.dim")


@lower("aten::segment_reduce")
def aten_segment_reduce(b, data, reduce, lengths=None, indices=None, offsets=None, axis=0, unsafe=False,
                        initial=None):
    """segment_reduce(Tensor data, str reduce, *, Tensor? lengths=None, Tensor? indices=None, Tensor? offsets=None, int axis=0, bool unsafe=False, Scalar? initial=None) -> Tensor"""
    bounds = lengths if lengths is not None else offsets
    if bounds is None:
        raise NotImplementedError("segment_reduce with indices")
    d = axes(axis, data.rank)[0]  # bounds are [..., segments] with the leading dims of data before d
    b.require("tract_core")
    bounds = b.cast(bounds, "i64")
    if lengths is not None:  # segment s covers [sum(lengths[:s]), sum(lengths[:s + 1]))
        count = lengths.shape[d]
        triangle = b.const(np.triu(np.ones((count, count))).reshape([1] * d + [count, count]), "f32", "triangle")
        totals = b.op("matmul", b.op("unsqueeze", b.cast(bounds, "f32"), axes=[d]), triangle)
        ends = b.cast(b.op("squeeze", totals, axes=[d]), "i64")
        starts = b.op("sub", ends, bounds)
    else:
        count = offsets.shape[d] - 1
        starts = b.op("slice", bounds, axes=[d], begin=[0], end=[count])
        ends = b.op("slice", bounds, axes=[d], begin=[1], end=[count + 1])
    trailing = list(range(d + 1, data.rank + 1))
    position = b.const(np.arange(data.shape[d]).reshape([-1] + [1] * (data.rank - d - 1)), "i64", "position")
    starts, ends = (b.op("unsqueeze", t, axes=trailing) for t in (starts, ends))
    member = b.op("and", b.op("ge", position, starts), b.op("lt", position, ends))  # [.., segments, length, 1..]
    rows = b.op("unsqueeze", data, axes=[d])
    op, identity = {"sum": ("sum_reduce", 0), "mean": ("sum_reduce", 0), "prod": ("tract_core_product_reduce", 1),
                    "max": ("max_reduce", -np.inf), "min": ("min_reduce", np.inf)}[reduce]
    table = b.op("select", member, rows, b.const(identity, data.dtype, "identity"))
    out = b.op("squeeze", b.op(op, table, axes=[d + 1]), axes=[d + 1])
    if initial is not None:
        out = b.op({"sum_reduce": "add", "tract_core_product_reduce": "mul", "max_reduce": "max",
                    "min_reduce": "min"}[op], out, b.const(initial, data.dtype, "initial"))
    if reduce == "mean":
        sizes = b.op("squeeze", b.op("sum_reduce", b.cast(member, data.dtype), axes=[d + 1]), axes=[d + 1])
        mean = b.op("div", out, sizes)
        out = mean if initial is None else b.op("select", b.op("gt", sizes, 0.0), mean,
                                                 b.const(initial, data.dtype, "initial"))
    return out
