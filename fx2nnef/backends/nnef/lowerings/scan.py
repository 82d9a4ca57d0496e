"""Scan lowerings. tract's NNEF has no cumulative sum: it is a matmul with a triangular matrix of ones,
built with tract_core_range so that it also works on symbolic lengths."""
from __future__ import annotations

from ..registry import lower
from .common import axis


@lower("aten::cumsum", registries=("tract_core",))
def aten_cumsum(b, self, dim, dtype=None):
    """cumsum(Tensor self, int dim, *, ScalarType? dtype=None) -> Tensor"""
    if self.rank == 0:
        return b.cast(self, b.out_dtype)
    d = axis(dim, self.rank)
    n = self.shape[d]
    work = b.out_dtype if b.out_dtype in ("f16", "f32", "f64") else "f32"  # counts stay exact below 2**24
    index = b.op("tract_core_range", 0, n, 1, out_dtype="i64", out_shape=(n,))
    upper = b.op("le", b.op("unsqueeze", index, axes=[1]), b.op("unsqueeze", index, axes=[0]))  # [j <= k]
    ones = b.op("tract_core_cast", upper, to=work)
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
