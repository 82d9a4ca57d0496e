"""Matrix plumbing shared by the linear-algebra lowerings (linalg.py, householder.py, jacobi.py).

Every helper works on tensors shaped [..., rows, cols] whose last two dims are static ints; the
batch dims in front may be anything, and are carried along (operands of different batch shapes
broadcast). The unrolled algorithms slice rows and columns out at export-time positions and glue
them back with concat, so a helper never emits an empty slice or an empty concat operand.
"""
from __future__ import annotations

import numpy as np
import torch

from ....errors import UnsupportedOpError
from .common import lift, static

# the largest matrix the unrolled algorithms accept: LU of a 64 x 64 matrix is ~2000 NNEF ops, a
# Jacobi eigendecomposition ~10000 (graph size and tract's load time grow with n^2 or more)
MAX_SIZE = 64


def check_size(b, x, what: str = "matrix") -> tuple[int, int]:
    """Return the (rows, cols) of x; raise UnsupportedOpError when they are symbolic or above MAX_SIZE."""
    rows, cols = x.shape[-2:]
    if not static((rows, cols)):
        raise UnsupportedOpError(f"the {what} is {rows} x {cols}: linear algebra is unrolled over the matrix "
                                 "size, which must be known at export (only batch dims may be dynamic)")
    if max(rows, cols) > MAX_SIZE:
        raise UnsupportedOpError(f"the {what} is {rows} x {cols}: linear algebra is unrolled over the matrix "
                                 f"size, and fx2nnef refuses matrices larger than {MAX_SIZE} x {MAX_SIZE} "
                                 "(the graph would grow past tens of thousands of ops)")
    return rows, cols


def folded(b):
    """Return the current node's outputs as constants that PyTorch computes on zero-filled inputs.

    Used where the outputs do not depend on the data: an empty matrix or an empty batch (the
    determinant of a 0 x 0 matrix is 1, the inverse of a batch of none is empty)."""
    def zeros(node):
        val = node.meta["val"]
        return torch.zeros(val.shape, dtype=val.dtype)
    args, kwargs = torch.fx.node.map_arg((b.node.args, b.node.kwargs), zeros)
    result = b.node.target(*args, **kwargs)
    return _constants(b, result)


def _constants(b, value):
    if isinstance(value, (tuple, list)):
        return tuple(_constants(b, v) for v in value)
    from ..lower import nnef_dtype
    return b.const(value.numpy(), nnef_dtype(value.dtype), "folded")


def zero_output(b, i: int):
    """Return zeros shaped like the node's i-th output: an empty output, or one the op's arguments
    leave out (Q of a mode='r' QR, the eigenvectors of eigvalsh), which PyTorch returns empty."""
    from ..lower import nnef_dtype
    out = b.out[i]
    return b.const(np.zeros(tuple(out.shape)), nnef_dtype(out.dtype), "empty")


def empty(*tensors) -> bool:
    """Tell whether any of the tensors has no element."""
    return any(0 in t.shape for t in tensors)


def rows(b, x, lo: int, hi: int):
    """Return x[..., lo:hi, :]."""
    return part(b, x, (lo, hi), None)


def cols(b, x, lo: int, hi: int):
    """Return x[..., :, lo:hi]."""
    return part(b, x, None, (lo, hi))


def part(b, x, row_range, col_range):
    """Return x[..., r0:r1, c0:c1] (None keeps the axis whole); x itself when nothing is cut."""
    axes, begin, end = [], [], []
    for ax, bounds in ((x.rank - 2, row_range), (x.rank - 1, col_range)):
        if bounds is not None and tuple(bounds) != (0, x.shape[ax]):
            if not 0 <= bounds[0] < bounds[1] <= x.shape[ax]:
                raise ValueError(f"internal: empty or out-of-range slice {bounds} of {x.shape[ax]}")
            axes.append(ax)
            begin.append(bounds[0])
            end.append(bounds[1])
    return b.op("slice", x, axes=axes, begin=begin, end=end) if axes else x


def entry(b, x, i: int, j: int):
    """Return x[..., i:i+1, j:j+1]."""
    return part(b, x, (i, i + 1), (j, j + 1))


def join(b, parts: list, axis_from_end: int):
    """Concatenate the parts along axis -1 or -2 (axis_from_end 1 or 2), skipping None and empty parts."""
    kept = [p for p in parts if p is not None and p.shape[p.rank - axis_from_end] != 0]
    if len(kept) == 1:
        return kept[0]
    return b.op("concat", kept, axis=kept[0].rank - axis_from_end)


def join_rows(b, parts: list):
    return join(b, parts, 2)


def join_cols(b, parts: list):
    return join(b, parts, 1)


def transpose(b, x):
    """Return x with its last two axes swapped."""
    perm = list(range(x.rank))
    perm[-2:] = perm[-1], perm[-2]
    return b.op("transpose", x, axes=perm)


def matmul(b, x, y, transpose_a: bool = False, transpose_b: bool = False):
    """Batched matmul of [..., m, k] by [..., k, n] (ranks equalized, batch dims broadcast)."""
    rank = max(x.rank, y.rank)
    return b.op("matmul", lift(b, x, rank), lift(b, y, rank), transposeA=transpose_a, transposeB=transpose_b)


def const(b, array, dtype: str, name: str, rank: int | None = None):
    """Return a constant, with leading unit axes up to `rank`."""
    c = b.const(np.asarray(array), dtype, name)
    return lift(b, c, rank) if rank is not None else c


def eye(b, n: int, m: int, dtype: str, rank: int):
    """Return the [n, m] identity matrix, lifted to `rank`."""
    return const(b, np.eye(n, m), dtype, "eye", rank)


def broadcast(b, x, shape: tuple):
    """Return x broadcast to `shape` (x itself when it already has it)."""
    if tuple(x.shape) == tuple(shape):
        return x
    b.require("tract_core")
    return b.op("tract_core_broadcast", lift(b, x, len(shape)), shape=list(shape))


def batch_shape(*tensors) -> tuple:
    """Return the broadcast of the tensors' batch dims (all but the last two)."""
    from ..lower import _broadcast
    return _broadcast([tuple(t.shape[:-2]) for t in tensors])


def zeros(b, like, n_rows: int, n_cols: int):
    """Return zeros shaped [*batch of like, n_rows, n_cols] in like's dtype."""
    return broadcast(b, b.const(0.0, like.dtype, "zero"), tuple(like.shape[:-2]) + (n_rows, n_cols))


def diagonal(b, x):
    """Return the main diagonal of x [..., m, n] as [..., min(m, n), 1]."""
    m, n = x.shape[-2:]
    mask = const(b, np.eye(m, n, dtype=bool), "bool", "diagonal", x.rank)
    d = b.op("sum_reduce", b.op("select", mask, x, 0.0), axes=[x.rank - 1])
    return rows(b, d, 0, min(m, n))


def triangle(b, x, lower: bool, k: int = 0, fill=None):
    """Return x's lower (i - j >= -k) or upper (j - i >= k) triangle, zeros (or `fill`'s values) elsewhere."""
    m, n = x.shape[-2:]
    i, j = np.indices((m, n))
    mask = const(b, (j - i <= k) if lower else (j - i >= k), "bool", "triangle", x.rank)
    return b.op("select", mask, x, fill if fill is not None else b.const(0.0, x.dtype, "zero"))


def positions(b, n: int, rank: int, along_rows: bool = True):
    """Return the i64 positions 0..n-1 as [n, 1] (or [1, n]), lifted to `rank`."""
    shape = (n, 1) if along_rows else (1, n)
    return const(b, np.arange(n).reshape(shape), "i64", "position", rank)


def safe_divide(b, x, d):
    """Return x / d, and x itself where d is 0 (LAPACK leaves such a column as it is)."""
    return b.op("select", b.op("eq", d, 0.0), x, b.op("div", x, d))


def swap_rows(b, x, k: int, p, index):
    """Return x with rows k and p swapped: p is a run-time i64 [..., 1, 1] row index, index the
    [n, 1] positions (select only moves values: the swap is exact, inf and NaN included)."""
    n = x.shape[-2]
    hit = b.op("eq", index, p)
    at_k = const(b, (np.arange(n) == k).reshape(n, 1), "bool", "row", x.rank)
    row_p = b.op("sum_reduce", b.op("select", hit, x, b.const(0, x.dtype, "zero")), axes=[x.rank - 2])
    row_k = rows(b, x, k, k + 1)
    return b.op("select", at_k, row_p, b.op("select", hit, row_k, x))


def permutation_matrix(b, perm, dtype: str):
    """Return P with P[i, j] = 1 where perm[j] == i, from perm [..., n, 1] (i64): P^T x gathers
    the rows x[perm[j]], P x scatters them back."""
    n = perm.shape[-2]
    index = positions(b, n, perm.rank)
    return b.cast(b.op("eq", index, transpose(b, perm)), dtype)


def substitute(b, t, y, lower: bool, unit: bool = False):
    """Solve t x = y for x by forward (lower) or back substitution, t [..., n, n] triangular and y
    [..., n, k], both with the same batch dims. Only t's triangle (and diagonal unless `unit`) is read."""
    n = t.shape[-1]
    order = range(n) if lower else reversed(range(n))
    done = None  # the solved rows so far, in row order
    for i in order:
        r = rows(b, y, i, i + 1)
        if done is not None:
            coef = part(b, t, (i, i + 1), (0, i) if lower else (i + 1, n))
            r = b.op("sub", r, matmul(b, coef, done))
        if not unit:
            r = b.op("div", r, entry(b, t, i, i))
        done = r if done is None else join_rows(b, [done, r] if lower else [r, done])
    return done


def first_index(b, flags, axis_: int):
    """Return (1 + the first position where bool `flags` is true along `axis_`, or 0 where none is),
    as i64 with the axis kept: LAPACK's `info`."""
    hits = b.cast(flags, "i32")
    first = b.op("argmax_reduce", hits, axes=[axis_])
    found = b.op("any_reduce", flags, axes=[axis_])
    return b.op("select", found, b.op("add", first, 1.0), b.const(0, "i64", "none"))
