"""Scan lowerings. tract's NNEF has no cumulative ops: a cumulative sum is a matmul with a triangular
matrix of ones, and the other scans reduce a [j, k] table that holds x[j] where j <= k and the
reduction's identity elsewhere (that table needs a static length along the scanned axis)."""
from __future__ import annotations

import numpy as np

from ..registry import lower
from .common import axis, extreme


def _upper(b, n):
    """Return the [n, n] bool triangle [j <= k] and the i64 positions 0..n-1."""
    index = b.op("tract_core_range", 0, n, 1, out_dtype="i64", out_shape=(n,))
    return b.op("le", b.op("unsqueeze", index, axes=[1]), b.op("unsqueeze", index, axes=[0])), index


@lower("aten::cumsum", registries=("tract_core",))
def aten_cumsum(b, self, dim, dtype=None):
    """cumsum(Tensor self, int dim, *, ScalarType? dtype=None) -> Tensor"""
    if self.rank == 0:
        return b.cast(self, b.out_dtype)
    d = axis(dim, self.rank)
    work = b.out_dtype if b.out_dtype in ("f16", "f32", "f64") else "f32"  # counts stay exact below 2**24
    ones = b.op("tract_core_cast", _upper(b, self.shape[d])[0], to=work)
    last = list(range(self.rank))
    last.append(last.pop(d))
    x = b.op("transpose", self, axes=last) if d != self.rank - 1 else self
    x = b.cast(x, work)
    if x.rank > 2:
        ones = b.op("unsqueeze", ones, axes=list(range(x.rank - 2)))
    out = b.op("matmul", b.op("unsqueeze", x, axes=[x.rank - 1]) if x.rank == 1 else x, ones)
    if x.rank == 1:
        out = b.op("squeeze", out, axes=[0])
    if d != self.rank - 1:
        back = sorted(range(self.rank), key=lambda i: last[i])
        out = b.op("transpose", out, axes=back)
    return b.cast(out, b.out_dtype)


class _Table:
    """The [.., j, k, ..] table of a scan of x along axis d: x[j] on the triangle j <= k (axis d
    holds j, axis d + 1 holds k)."""

    def __init__(self, b, x, d: int):
        if not isinstance(x.shape[d], int):
            raise NotImplementedError(f"a scan along the dynamic axis {x.shape[d]} (tract 0.23.9 evaluates the "
                                      "reduced [S, S] table to a wrong shape): make that axis static")
        self.b, self.x, self.d = b, x, d
        trailing = list(range(2, x.rank + 1 - d))
        upper, index = _upper(b, x.shape[d])
        self.mask = b.op("unsqueeze", upper, axes=trailing) if trailing else upper
        self.j = b.op("unsqueeze", index, axes=[1] + trailing)  # [n, 1, 1..]
        self.rows = b.op("unsqueeze", x, axes=[d + 1])          # x[j] on axis d, 1 on axis d + 1

    def fill(self, identity):
        """Return the table with `identity` (a constant of x's dtype) off the triangle."""
        return self.b.op("select", self.mask, self.rows, self.b.const(identity, self.x.dtype, "identity"))

    def reduce(self, op: str, table):
        """Reduce the table over j and return the result shaped like x."""
        if op.startswith("tract_core_"):
            self.b.require("tract_core")
        return self.b.op("squeeze", self.b.op(op, table, axes=[self.d]), axes=[self.d])

    def last_index(self, values):
        """Return, for each k, the last j <= k where x[j] equals values[k] (torch's tie rule)."""
        b = self.b
        hit = b.op("and", self.mask, b.op("eq", self.rows, b.op("unsqueeze", values, axes=[self.d])))
        return self.reduce("max_reduce", b.op("select", hit, self.j, b.const(-1, "i64", "none")))


@lower("aten::cumprod", registries=("tract_core",))
def aten_cumprod(b, self, dim, dtype=None):
    """cumprod(Tensor self, int dim, *, ScalarType? dtype=None) -> Tensor"""
    x = b.cast(self, b.out_dtype)
    if x.rank == 0 or x.shape[axis(dim, x.rank)] == 0:
        return x
    table = _Table(b, x, axis(dim, x.rank))
    return table.reduce("tract_core_product_reduce", table.fill(1))


@lower(("aten::cummax", "aten::cummin"), registries=("tract_core",))
def aten_cummax(b, self, dim):
    """cummax(Tensor self, int dim) -> (Tensor values, Tensor indices)"""
    if self.rank == 0:
        return self, b.const(0, "i64", "index")
    if self.shape[axis(dim, self.rank)] == 0:
        return self, b.op("tract_core_cast", self, to="i64")
    largest = b.node.target.name() == "aten::cummax"
    x = b.cast(self, "u8") if self.dtype == "bool" else self
    table = _Table(b, x, axis(dim, x.rank))
    values = table.reduce("max_reduce" if largest else "min_reduce", table.fill(extreme(x.dtype, not largest)))
    return b.cast(values, self.dtype), table.last_index(values)


@lower("aten::logcumsumexp", registries=("tract_core",))
def aten_logcumsumexp(b, self, dim):
    """logcumsumexp(Tensor self, int dim) -> Tensor"""
    if self.rank == 0 or self.shape[axis(dim, self.rank)] == 0:
        return self
    d = axis(dim, self.rank)
    table = _Table(b, self, d)
    filled = table.fill(-np.inf)
    top = b.op("max_reduce", filled, axes=[d])
    infinite = b.op("tract_core_is_inf", top, detect_positive=True, detect_negative=True, out_dtype="bool",
                    out_shape=top.shape)
    safe = b.op("select", infinite, b.const(0.0, self.dtype, "zero"), top)  # all -inf (or +inf) stays so
    total = b.op("sum_reduce", b.op("exp", b.op("sub", filled, safe)), axes=[d])
    return b.op("squeeze", b.op("add", b.op("log", total), safe), axes=[d])
