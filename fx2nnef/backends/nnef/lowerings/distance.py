"""Pairwise-distance lowerings: torch.cdist's p-norm between every row of x1 and every row of x2, and
torch.pdist's between every pair of rows of one matrix."""
from __future__ import annotations

import numpy as np

from ..registry import lower
from .common import lift, literal, static

# torch uses the matmul expansion |a|^2 - 2 a.b + |b|^2 for p = 2 in mode 1 ('use_mm_for_euclid_dist'),
# and in mode 0 ('..._if_necessary', the default) when either side has more than this many rows
MM_THRESHOLD = 25


def _euclidean_by_matmul(b, x1, x2):
    """Return sqrt(max([-2a, |a|^2, 1] . [b, 1, |b|^2], 0)) for every pair of rows a, b: torch's _euclidean_dist."""
    last = x1.rank - 1
    n1 = b.op("sum_reduce", b.op("mul", x1, x1), axes=[last])
    n2 = b.op("sum_reduce", b.op("mul", x2, x2), axes=[last])
    left = b.op("concat", [b.op("mul", x1, -2.0), n1, b.op("pow", n1, 0.0)], axis=last)
    right = b.op("concat", [x2, b.op("pow", n2, 0.0), n2], axis=last)
    return b.op("sqrt", b.op("max", b.op("matmul", left, right, transposeB=True), 0.0))


@lower("aten::_cdist_forward")
def aten__cdist_forward(b, x1, x2, p, compute_mode=None):
    """_cdist_forward(Tensor x1, Tensor x2, float p, int? compute_mode) -> Tensor"""
    out_shape = b.shape_of(b.out)
    features = x1.shape[-1]
    if static(out_shape) and (0 in out_shape or features == 0):  # no pair, or distances over no feature
        return b.const(np.zeros(out_shape), b.out_dtype, "cdist")
    rank = max(x1.rank, x2.rank)
    x1, x2 = lift(b, x1, rank), lift(b, x2, rank)
    rows = (x1.shape[-2], x2.shape[-2])
    by_matmul = compute_mode == 1 or compute_mode in (None, 0) and any(
        not isinstance(r, int) or r > MM_THRESHOLD for r in rows)
    if p == 2 and by_matmul:
        return _euclidean_by_matmul(b, x1, x2)
    diff = b.op("sub", b.op("unsqueeze", x1, axes=[rank - 1]), b.op("unsqueeze", x2, axes=[rank - 2]))
    return _p_norm(b, diff, p, rank)                                            # [..., P, R, M]: reduce M


def _p_norm(b, diff, p: float, axis: int):
    """Return the p-norm of diff over `axis` (squeezed): p = 0 counts non-zeros, p = inf takes the max."""
    last = [axis]
    if p == 0:
        total = b.op("sum_reduce", b.cast(b.op("ne", diff, 0.0), diff.dtype), axes=last)
    elif p == 1:
        total = b.op("sum_reduce", b.op("abs", diff), axes=last)
    elif p == 2:
        total = b.op("sqrt", b.op("sum_reduce", b.op("mul", diff, diff), axes=last))
    elif p == float("inf"):
        total = b.op("max_reduce", b.op("abs", diff), axes=last)
    else:
        powered = b.op("sum_reduce", b.op("pow", b.op("abs", diff), literal(p)), axes=last)
        total = b.op("pow", powered, literal(1 / p))
    return b.op("squeeze", total, axes=last)


@lower("aten::_pdist_forward", registries=("tract_core",))
def aten__pdist_forward(b, self, p=2):
    """_pdist_forward(Tensor self, float p=2) -> Tensor

    Gathers the rows i < j of every pair (in PyTorch's row-major order) and takes their p-norm."""
    rows, features = self.shape
    first, second = np.triu_indices(rows, k=1)
    if len(first) == 0 or features == 0:
        return b.const(np.zeros(len(first)), b.out_dtype, "pdist")
    left = b.op("tract_core_gather", self, b.const(first, "i64", "row"), axis=0)
    right = b.op("tract_core_gather", self, b.const(second, "i64", "row"), axis=0)
    return _p_norm(b, b.op("sub", left, right), p, 1)
