"""Symmetric eigendecomposition and SVD by cyclic Jacobi rotations, unrolled over a matrix size known
at export: _linalg_eigh (eigh, eigvalsh, matrix_rank(hermitian=True)), _linalg_svd (svd, svdvals,
matrix_rank, matrix norms of ord 2, -2 and 'nuc', cond) and linalg_pinv.

eigh rotates A from both sides (A <- J^T A J, V <- V J); svd rotates the columns of X from one side
(Hestenes: X <- X J, V <- V J, each rotation making two columns orthogonal), on the taller of A and
A^T. The rotations of a sweep run in round-robin order: each round rotates n/2 disjoint index pairs
at once, as one n x n rotation matrix, so a sweep is n - 1 rounds of a few matmuls. Jacobi converges
quadratically; SWEEPS(n) sweeps take a random 64 x 64 matrix to float32 rounding with two sweeps to
spare (measured in tests/ops/test_linalg_edges.py), and repeated or clustered eigenvalues converge
no slower. The results equal LAPACK's to rounding, except for what LAPACK leaves undefined too: the
sign of each eigen- or singular-vector pair, and a basis for repeated eigenvalues or zero singular
values (completed here by Householder QR, so U stays orthonormal).
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import lower
from .common import lift
from .householder import _apply_q, _geqrf
from .matrix import (check_size, cols, const, diagonal, empty, eye, folded, join_cols, matmul, positions,
                     transpose, triangle, zero_output)

EPSILON = {"f16": 2.0 ** -10, "f32": 2.0 ** -23, "f64": 2.0 ** -52}


def sweeps(n: int) -> int:
    """Return the number of Jacobi sweeps run on an n x n problem."""
    return 4 + math.ceil(math.log2(max(n, 2)))


def schedule(n: int) -> list[list[tuple[int, int]]]:
    """Return the rounds of a cyclic sweep over n indices: every pair (p < q) once, each round a set
    of disjoint pairs (the round-robin tournament; with n odd, one index rests each round)."""
    players = list(range(n + n % 2))
    rounds = []
    for _ in range(len(players) - 1):
        half = len(players) // 2
        pairs = [tuple(sorted((players[i], players[-1 - i]))) for i in range(half)]
        rounds.append([pair for pair in pairs if pair[1] < n])
        players = [players[0], players[-1]] + players[1:-1]
    return rounds


def _rotation(b, app, aqq, apq):
    """Return (c, s) of the rotations that zero apq in each 2 x 2 symmetric [[app, apq], [apq, aqq]]:
    t = tan(theta), the smaller root of t^2 + 2 t (aqq - app) / (2 apq) - 1 = 0 (no rotation where apq is 0)."""
    d = b.op("sub", aqq, app)
    twice = b.op("mul", apq, 2.0)
    root = b.op("sqrt", b.op("add", b.op("mul", d, d), b.op("mul", twice, twice)))
    signed = b.op("select", b.op("ge", d, 0.0), root, b.op("neg", root))
    t = b.op("div", twice, b.op("add", d, signed))
    t = b.op("select", b.op("eq", apq, 0.0), b.const(0.0, app.dtype, "zero"), t)
    c = b.op("rsqrt", b.op("add", b.op("mul", t, t), 1.0))
    return c, b.op("mul", t, c)


def _rotations(b, c, s, pairs: list, n: int, rank: int):
    """Return J [..., n, n] rotating each pair (p, q): J[p, p] = J[q, q] = c, J[p, q] = s, J[q, p] = -s,
    from c and s [..., 1, k] (placed by a matmul with a 0/+-1 matrix: exact), 1 on the other diagonal entries."""
    k = len(pairs)
    place = np.zeros((2 * k, n * n))
    base = np.eye(n).reshape(-1)
    for i, (p, q) in enumerate(pairs):
        place[i, p * n + p] = place[i, q * n + q] = 1
        place[k + i, p * n + q], place[k + i, q * n + p] = 1, -1
        base[p * n + p] = base[q * n + q] = 0
    flat = b.op("add", matmul(b, join_cols(b, [c, s]), const(b, place, c.dtype, "rotation", rank)),
                const(b, base.reshape(1, -1), c.dtype, "rotation", rank))
    return b.op("reshape", flat, shape=[0] * (rank - 2) + [n, n])


def _entries(b, flat, index: list):
    """Return flat[..., 0, index] from flat [..., 1, n * n] as [..., 1, len(index)]."""
    return b.op("tract_core_gather", flat, b.const(np.asarray(index), "i64", "entry"), axis=flat.rank - 1)


def _jacobi_eigh(b, a):
    """Return (w [..., 1, n], V [..., n, n]) with a = V diag(w) V^T for a symmetric a; w unsorted."""
    n, r = a.shape[-1], a.rank
    v = eye(b, n, n, a.dtype, r)
    for _ in range(sweeps(n)):
        for pairs in schedule(n):
            flat = b.op("reshape", a, shape=[0] * (r - 2) + [1, n * n])
            app = _entries(b, flat, [p * n + p for p, _ in pairs])
            aqq = _entries(b, flat, [q * n + q for _, q in pairs])
            apq = _entries(b, flat, [p * n + q for p, q in pairs])
            j = _rotations(b, *_rotation(b, app, aqq, apq), pairs, n, r)
            a = matmul(b, matmul(b, j, a, transpose_a=True), j)
            v = matmul(b, v, j)
    return transpose(b, diagonal(b, a)), v


def _jacobi_columns(b, x):
    """Return (X J, V) with the columns of X J orthogonal and V the product of the rotations J."""
    n, r = x.shape[-1], x.rank
    v = eye(b, n, n, x.dtype, r)
    for _ in range(sweeps(n)):
        for pairs in schedule(n):
            xp = b.op("tract_core_gather", x, b.const(np.asarray([p for p, _ in pairs]), "i64", "column"), axis=r - 1)
            xq = b.op("tract_core_gather", x, b.const(np.asarray([q for _, q in pairs]), "i64", "column"), axis=r - 1)
            dots = [b.op("sum_reduce", b.op("mul", u, w), axes=[r - 2]) for u, w in ((xp, xp), (xq, xq), (xp, xq))]
            j = _rotations(b, *_rotation(b, *dots), pairs, n, r)
            x = matmul(b, x, j)
            v = matmul(b, v, j)
    return x, v


def _sorted(b, values, descending: bool):
    """Return (sorted values [..., 1, n], P) with P the permutation matrix that sorts columns alike (M P)."""
    n, r = values.shape[-1], values.rank
    ordered, index = b.op("tract_core_topk", values, b.const(n, "i64", "k"), axis=r - 1, largest=descending,
                          outputs=2)
    ordered.dtype, ordered.shape, index.dtype, index.shape = values.dtype, values.shape, "i64", values.shape
    return ordered, b.cast(b.op("eq", positions(b, n, r), index), values.dtype)


def _symmetric(b, a, upper: bool):
    """Return the symmetric matrix a's lower (or upper) triangle defines."""
    return triangle(b, a, lower=not upper, fill=transpose(b, a))


def eigh(b, a, upper: bool = False, vectors: bool = True):
    """Return (w [..., 1, n] ascending, V [..., n, n] or None) for the symmetric matrix a's triangle defines."""
    w, v = _jacobi_eigh(b, _symmetric(b, a, upper))
    w, order = _sorted(b, w, descending=False)
    return w, matmul(b, v, order) if vectors else None


def svd(b, a, full: bool = False, vectors: bool = True):
    """Return (U, S [..., 1, k], Vh) of a [..., m, n] (U, Vh None without `vectors`): one-sided Jacobi
    on the taller of a and a^T; the left vectors of zero (or negligible) singular values, and the
    columns `full` adds, come from a Householder QR of the others, so U stays orthonormal."""
    m, n = a.shape[-2:]
    wide = m < n
    x = transpose(b, a) if wide else a
    rows_, k = max(m, n), min(m, n)
    r = x.rank
    x, v = _jacobi_columns(b, x)
    s = b.op("sqrt", b.op("sum_reduce", b.op("mul", x, x), axes=[r - 2]))
    s, order = _sorted(b, s, descending=True)
    if not vectors:
        return None, s, None
    x, v = matmul(b, x, order), matmul(b, v, order)
    largest = cols(b, s, 0, 1)
    negligible = b.op("le", s, b.op("mul", largest, float(rows_ * EPSILON.get(a.dtype, EPSILON["f32"]))))
    u = b.op("div", x, b.op("select", negligible, b.const(1.0, x.dtype, "one"), s))
    qr, taus = _geqrf(b, u)
    q = _apply_q(b, qr, taus, eye(b, rows_, rows_ if full else k, x.dtype, r))
    u = b.op("select", negligible, cols(b, q, 0, k), u)
    if full and rows_ > k:
        u = join_cols(b, [u, cols(b, q, k, rows_)])
    return (v, s, transpose(b, u)) if wide else (u, s, transpose(b, v))


def _row_to_vector(b, x):
    """[..., 1, k] -> [..., k]."""
    return b.op("squeeze", x, axes=[x.rank - 2])


@lower("aten::_linalg_eigh", registries=("tract_core",))
def aten__linalg_eigh(b, A, UPLO="L", compute_v=True):
    """_linalg_eigh(Tensor A, str UPLO="L", bool compute_v=True) -> (Tensor eigenvalues, Tensor eigenvectors)"""
    if empty(A):
        return folded(b)
    check_size(b, A)
    w, v = eigh(b, A, upper=UPLO.upper() == "U", vectors=compute_v)
    return _row_to_vector(b, w), v if compute_v else zero_output(b, 1)


@lower("aten::_linalg_svd", registries=("tract_core",))
def aten__linalg_svd(b, A, full_matrices=False, compute_uv=True, driver=None):
    """_linalg_svd(Tensor A, bool full_matrices=False, bool compute_uv=True, *, str? driver=None) -> (Tensor U, Tensor S, Tensor Vh)"""
    if empty(A):
        return folded(b)
    check_size(b, A)
    u, s, vh = svd(b, A, full=full_matrices, vectors=compute_uv)
    if not compute_uv:
        return zero_output(b, 0), _row_to_vector(b, s), zero_output(b, 2)
    return u, _row_to_vector(b, s), vh


@lower("aten::linalg_pinv.atol_rtol_tensor", registries=("tract_core",))
def aten_linalg_pinv(b, self, atol=None, rtol=None, hermitian=False):
    """linalg_pinv.atol_rtol_tensor(Tensor self, *, Tensor? atol=None, Tensor? rtol=None, bool hermitian=False) -> Tensor

    PyTorch's rule: singular values (|eigenvalues| when hermitian) at or below
    max(atol, rtol * largest) count as zero; rtol defaults to eps * max(m, n), or to 0 where atol > 0."""
    if empty(self):
        return folded(b)
    m, n = check_size(b, self)
    r = self.rank
    default = float(EPSILON.get(self.dtype, EPSILON["f32"]) * max(m, n))
    if rtol is not None:
        rtol = b.cast(rtol, self.dtype)
    elif atol is not None:
        rtol = b.op("select", b.op("gt", atol, 0.0), b.const(0.0, self.dtype, "zero"),
                    b.const(default, self.dtype, "rtol"))
    else:
        rtol = b.const(default, self.dtype, "rtol")
    if hermitian:
        w, v = eigh(b, self)
        magnitude = b.op("abs", w)
        largest = b.op("max_reduce", magnitude, axes=[r - 1])
        left, right = v, v
    else:
        u, magnitude, vh = svd(b, self)
        w, largest = magnitude, cols(b, magnitude, 0, 1)
        left, right = transpose(b, vh), u
    tolerance = b.op("mul", _lifted(b, rtol, r), largest)
    if atol is not None:
        tolerance = b.op("max", _lifted(b, b.cast(atol, self.dtype), r), tolerance)
    inverse = b.op("select", b.op("gt", magnitude, tolerance), b.op("recip", w), b.const(0.0, self.dtype, "zero"))
    return matmul(b, b.op("mul", left, inverse), right, transpose_b=True)


def _lifted(b, t, rank: int):
    """Return a tolerance tensor [...] as [..., 1, 1], lifted to `rank` (it broadcasts over the matrix)."""
    if t.rank == 0:
        return t
    return lift(b, b.op("unsqueeze", t, axes=[t.rank, t.rank + 1]), rank)
