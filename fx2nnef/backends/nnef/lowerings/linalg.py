"""Linear-algebra lowerings by direct methods, unrolled over a matrix size known at export: LU with
partial pivoting (det, slogdet, inv, solve, lu_factor, lu, lu_solve, lu_unpack), Cholesky
(cholesky, cholesky_solve, cholesky_inverse), triangular solves, and the matrix exponential.

Batch dims are vectorized: every step slices rows and columns at export-time positions, and the
run-time choices (the pivot row of each LU step) are made per matrix with argmax and select. The
algorithms are LAPACK's unblocked ones (getf2, potf2, trsm by substitution), so the results equal
PyTorch's to rounding, and the pivots PyTorch reports are the same ones.

Errors PyTorch raises from a side check (`linalg.inv` of a singular matrix, `linalg.cholesky` of a
matrix that is not positive-definite) are not raised: the `info` output of the `_ex` ops says what
LAPACK's says, and the `_linalg_check_errors` that the non-`_ex` forms call is dropped at export
(fold_primitives), so such an input gives the inf/NaN values the arithmetic produces.
"""
from __future__ import annotations

import math

from ....errors import UnsupportedOpError
from ..registry import lower
from .matrix import (batch_shape, broadcast, check_size, cols, const, diagonal, empty, entry, eye, first_index,
                     folded, join_cols, join_rows, matmul, part, permutation_matrix, positions, rows, substitute,
                     swap_rows, transpose, triangle, zero_output, zeros)

# matrix_exp: Taylor degree 18 is accurate to float32 rounding for a 1-norm up to THETA_18 (Higham's
# bound, the one PyTorch uses); a larger matrix is scaled by 2^-s first and squared back s times
THETA_18 = 3.010066362817634
MAX_SQUARINGS = 32  # the s of the largest 1-norm handled exactly: 3 * 2^32


# -- LU --------------------------------------------------------------------------------------------

def _lu(b, a, track: bool = False):
    """Factor a [..., m, n] as P L U by Gaussian elimination with partial pivoting (LAPACK's getf2).

    Returns (lu, pivots, perm): L below the diagonal and U on and above it in one matrix; the pivot
    row of each step (a list of i64 [..., 1, 1], 0-based); with `track`, perm [..., m, 1] (i64),
    the original row of each row of P^T a (else None)."""
    m, n = a.shape[-2:]
    index = positions(b, m, a.rank)
    perm = index if track else None
    pivots = []
    for k in range(min(m, n)):
        if k == m - 1:  # a single candidate row
            pivots.append(const(b, [[k]], "i64", "pivot", a.rank))
            break
        column = b.op("abs", part(b, a, (k, m), (k, k + 1)))
        p = b.op("argmax_reduce", column, axes=[a.rank - 2])
        p = b.op("add", p, float(k)) if k else p
        pivots.append(p)
        a = swap_rows(b, a, k, p, index)
        if track:
            perm = swap_rows(b, perm, k, p, index)
        pivot = entry(b, a, k, k)
        below = part(b, a, (k + 1, m), (k, k + 1))
        below = b.op("select", b.op("eq", pivot, 0.0), below, b.op("mul", below, b.op("recip", pivot)))
        trailing = None
        if k + 1 < n:
            update = b.op("mul", below, part(b, a, (k, k + 1), (k + 1, n)))
            trailing = b.op("sub", part(b, a, (k + 1, m), (k + 1, n)), update)
        left = part(b, a, (k + 1, m), (0, k)) if k else None
        a = join_rows(b, [rows(b, a, 0, k + 1), join_cols(b, [left, below, trailing])])
    return a, pivots, perm


def _pivots(b, pivots: list, batch: tuple):
    """Return LAPACK's 1-based int32 pivots [..., k] from the 0-based [..., 1, 1] rows of _lu."""
    rank = len(batch) + 2
    parts = [broadcast(b, p, batch + (1, 1)) for p in pivots]
    joined = join_cols(b, parts) if len(parts) > 1 else parts[0]
    return b.cast(b.op("squeeze", b.op("add", joined, 1.0), axes=[rank - 2]), "i32")


def _perm_from_pivots(b, pivots, m: int):
    """Return perm [..., m, 1] (i64) from LAPACK's 1-based pivots [..., k]: the row swaps replayed."""
    piv = b.op("unsqueeze", b.cast(pivots, "i64"), axes=[pivots.rank])  # [..., k, 1]
    index = positions(b, m, piv.rank)
    perm = index
    for k in range(pivots.shape[-1]):
        p = b.op("sub", rows(b, piv, k, k + 1), 1.0)
        perm = swap_rows(b, perm, k, p, index)
    return perm


def _permutation_sign(b, pivots: list, rank: int):
    """Return (-1)^(number of row swaps) as f32 [..., 1, 1]."""
    swapped = [b.cast(b.op("ne", p, float(k)), "f32") for k, p in enumerate(pivots)]
    parity = swapped[0]
    for s in swapped[1:]:
        parity = b.op("add", parity, s)
    odd = b.op("sub", parity, b.op("mul", b.op("floor", b.op("mul", parity, 0.5)), 2.0))
    return b.op("sub", 1.0, b.op("mul", odd, 2.0))


def _info(b, lu):
    """Return LAPACK getrf's info: 1 + the first k with U[k, k] == 0, else 0 (int32, batch-shaped)."""
    d = diagonal(b, lu)  # [..., k, 1]
    first = first_index(b, b.op("eq", d, 0.0), lu.rank - 2)
    return b.cast(b.op("squeeze", first, axes=[lu.rank - 2, lu.rank - 1]), "i32")


def _lu_solve(b, lu, perm, rhs, left: bool = True, adjoint: bool = False):
    """Solve A x = rhs (left) or x A = rhs, with A (or A^T when `adjoint`) = P L U given as lu and perm."""
    if not left:  # x A = B  <=>  A^T x^T = B^T
        return transpose(b, _lu_solve(b, lu, perm, transpose(b, rhs), True, not adjoint))
    batch = batch_shape(lu, rhs)
    lu = broadcast(b, lu, batch + tuple(lu.shape[-2:]))
    rhs = broadcast(b, rhs, batch + tuple(rhs.shape[-2:]))
    p = permutation_matrix(b, perm, lu.dtype)
    if not adjoint:  # x = U^-1 L^-1 P^T B
        y = matmul(b, p, rhs, transpose_a=True)
        return substitute(b, lu, substitute(b, lu, y, lower=True, unit=True), lower=False)
    ut = transpose(b, lu)  # A^T x = B: U^T L^T P^T x = B
    z = substitute(b, ut, substitute(b, ut, rhs, lower=True), lower=False, unit=True)
    return matmul(b, p, z)


def _square(b, a, what: str = "matrix") -> int:
    m, n = check_size(b, a, what)
    if m != n:
        raise UnsupportedOpError(f"expected a square {what}, got {m} x {n}")
    return n


@lower("aten::linalg_lu_factor_ex", registries=("tract_core",))
def aten_linalg_lu_factor_ex(b, A, pivot=True, check_errors=False):
    """linalg_lu_factor_ex(Tensor A, *, bool pivot=True, bool check_errors=False) -> (Tensor LU, Tensor pivots, Tensor info)"""
    if not pivot:
        raise UnsupportedOpError("LU without pivoting (PyTorch computes it on CUDA only)")
    if empty(A):
        return folded(b)
    check_size(b, A)
    lu, pivots, _ = _lu(b, A)
    return lu, _pivots(b, pivots, tuple(A.shape[:-2])), _info(b, lu)


@lower("aten::linalg_lu", registries=("tract_core",))
def aten_linalg_lu(b, A, pivot=True):
    """linalg_lu(Tensor A, *, bool pivot=True) -> (Tensor P, Tensor L, Tensor U)"""
    if not pivot:
        raise UnsupportedOpError("LU without pivoting (PyTorch computes it on CUDA only)")
    if empty(A):
        return folded(b)
    m, n = check_size(b, A)
    lu, _, perm = _lu(b, A, track=True)
    return (broadcast(b, permutation_matrix(b, perm, A.dtype), tuple(A.shape[:-2]) + (m, m)),
            *_unpack(b, lu))


def _unpack(b, lu):
    """Return (L, U) from a packed [..., m, n] LU: L unit lower [..., m, k], U upper [..., k, n]."""
    m, n = lu.shape[-2:]
    k = min(m, n)
    lower = triangle(b, cols(b, lu, 0, k), lower=True, k=-1, fill=eye(b, m, k, lu.dtype, lu.rank))
    return lower, triangle(b, rows(b, lu, 0, k), lower=False)


@lower("aten::lu_unpack", registries=("tract_core",))
def aten_lu_unpack(b, LU_data, LU_pivots, unpack_data=True, unpack_pivots=True):
    """lu_unpack(Tensor LU_data, Tensor LU_pivots, bool unpack_data=True, bool unpack_pivots=True) -> (Tensor P, Tensor L, Tensor U)"""
    if empty(LU_data):
        return folded(b)
    m, _ = check_size(b, LU_data)
    if unpack_pivots:
        perm = _perm_from_pivots(b, LU_pivots, m)
        p = permutation_matrix(b, perm, LU_data.dtype)
        p = broadcast(b, p, b.shape_of(b.out[0]))
    else:
        p = zero_output(b, 0)
    lower, upper = _unpack(b, LU_data) if unpack_data else (zero_output(b, 1), zero_output(b, 2))
    return p, lower, upper


@lower("aten::linalg_lu_solve", registries=("tract_core",))
def aten_linalg_lu_solve(b, LU, pivots, B, left=True, adjoint=False):
    """linalg_lu_solve(Tensor LU, Tensor pivots, Tensor B, *, bool left=True, bool adjoint=False) -> Tensor"""
    if empty(LU, B):
        return folded(b)
    n = _square(b, LU, "LU matrix")
    check_size(b, B, "right-hand side")
    return _lu_solve(b, LU, _perm_from_pivots(b, pivots, n), B, left, adjoint)


@lower("aten::_linalg_det", registries=("tract_core",))
def aten__linalg_det(b, A):
    """_linalg_det(Tensor A) -> (Tensor result, Tensor LU, Tensor pivots)"""
    if empty(A):
        return folded(b)
    _square(b, A)
    lu, pivots, _ = _lu(b, transpose(b, A))  # PyTorch factors the row-major A as LAPACK's column-major A^T
    r = lu.rank
    product = b.op("tract_core_product_reduce", diagonal(b, lu), axes=[r - 2])
    det = b.op("mul", product, b.cast(_permutation_sign(b, pivots, r), lu.dtype))
    return b.op("squeeze", det, axes=[r - 2, r - 1]), lu, _pivots(b, pivots, tuple(A.shape[:-2]))


@lower("aten::_linalg_slogdet", registries=("tract_core",))
def aten__linalg_slogdet(b, A):
    """_linalg_slogdet(Tensor A) -> (Tensor sign, Tensor logabsdet, Tensor LU, Tensor pivots)"""
    if empty(A):
        return folded(b)
    _square(b, A)
    lu, pivots, _ = _lu(b, transpose(b, A))
    r = lu.rank
    d = diagonal(b, lu)
    signs = b.op("tract_core_product_reduce", b.op("sign", d), axes=[r - 2])
    sign = b.op("mul", signs, b.cast(_permutation_sign(b, pivots, r), lu.dtype))
    logabs = b.op("sum_reduce", b.op("log", b.op("abs", d)), axes=[r - 2])
    squeeze = [r - 2, r - 1]
    return (b.op("squeeze", sign, axes=squeeze), b.op("squeeze", logabs, axes=squeeze), lu,
            _pivots(b, pivots, tuple(A.shape[:-2])))


@lower("aten::linalg_inv_ex", registries=("tract_core",))
def aten_linalg_inv_ex(b, A, check_errors=False):
    """linalg_inv_ex(Tensor A, *, bool check_errors=False) -> (Tensor inverse, Tensor info)"""
    if empty(A):
        return folded(b)
    n = _square(b, A)
    lu, _, perm = _lu(b, A, track=True)
    identity = broadcast(b, eye(b, n, n, A.dtype, A.rank), tuple(A.shape[:-2]) + (n, n))
    return _lu_solve(b, lu, perm, identity), _info(b, lu)


@lower("aten::_linalg_solve_ex", registries=("tract_core",))
def aten__linalg_solve_ex(b, A, B, left=True, check_errors=False):
    """_linalg_solve_ex(Tensor A, Tensor B, *, bool left=True, bool check_errors=False) -> (Tensor result, Tensor LU, Tensor pivots, Tensor info)"""
    if empty(A):
        return folded(b)
    _square(b, A)
    vector = B.rank == 1 or (B.rank == A.rank - 1 and tuple(B.shape) == tuple(A.shape[:-1]))
    rhs = b.op("unsqueeze", B, axes=[B.rank if left else B.rank - 1]) if vector else B
    lu, pivots, perm = _lu(b, A, track=True)
    out_lu = b.shape_of(b.out[1])
    lu_out = broadcast(b, lu, out_lu)
    pivots_out = broadcast(b, _pivots(b, pivots, tuple(A.shape[:-2])), out_lu[:-1])
    info = broadcast(b, _info(b, lu), out_lu[:-2])
    if empty(rhs):
        return zero_output(b, 0), lu_out, pivots_out, info
    check_size(b, rhs, "right-hand side")
    x = _lu_solve(b, lu, perm, rhs, left)
    if vector:
        x = b.op("squeeze", x, axes=[x.rank - 1 if left else x.rank - 2])
    return x, lu_out, pivots_out, info


# -- triangular solves ----------------------------------------------------------------------------

def _triangular(b, a, rhs, lower: bool, left: bool, unit: bool):
    """Solve a x = rhs (left) or x a = rhs with a triangular, broadcasting batch dims."""
    _square(b, a, "triangular matrix")
    check_size(b, rhs, "right-hand side")
    if not left:
        return transpose(b, _triangular(b, transpose(b, a), transpose(b, rhs), not lower, True, unit))
    batch = batch_shape(a, rhs)
    a = broadcast(b, a, batch + tuple(a.shape[-2:]))
    return substitute(b, a, broadcast(b, rhs, batch + tuple(rhs.shape[-2:])), lower=lower, unit=unit)


@lower("aten::linalg_solve_triangular", registries=("tract_core",))
def aten_linalg_solve_triangular(b, self, B, upper, left=True, unitriangular=False):
    """linalg_solve_triangular(Tensor self, Tensor B, *, bool upper, bool left=True, bool unitriangular=False) -> Tensor"""
    if empty(self, B):
        return folded(b)
    return _triangular(b, self, B, not upper, left, unitriangular)


@lower("aten::triangular_solve", registries=("tract_core",))
def aten_triangular_solve(b, self, A, upper=True, transpose=False, unitriangular=False):
    """triangular_solve(Tensor self, Tensor A, bool upper=True, bool transpose=False, bool unitriangular=False) -> (Tensor solution, Tensor cloned_coefficient)"""
    if empty(A):
        return folded(b)
    coefficient = broadcast(b, A, b.shape_of(b.out[1]))
    if empty(self):
        return zero_output(b, 0), coefficient
    a = _transpose(b, A) if transpose else A
    return _triangular(b, a, self, upper == transpose, True, unitriangular), coefficient


_transpose = transpose  # triangular_solve's `transpose` argument shadows the helper


# -- Cholesky -------------------------------------------------------------------------------------

def _cholesky(b, a):
    """Return (L, info) with L L^T = a, reading a's lower triangle (LAPACK's potf2): info is
    1 + the first column whose pivot is not positive (int32, batch-shaped), else 0."""
    n = a.shape[-1]
    low, pivots = None, []
    for j in range(n):
        v = part(b, a, (j, n), (j, j + 1))
        if j:
            v = b.op("sub", v, matmul(b, part(b, low, (j, n), (0, j)), part(b, low, (j, j + 1), (0, j)),
                                      transpose_b=True))
        d = rows(b, v, 0, 1)
        pivots.append(d)
        root = b.op("sqrt", d)
        column = join_rows(b, [root, b.op("div", rows(b, v, 1, n - j), root) if j + 1 < n else None])
        if j:
            column = join_rows(b, [zeros(b, column, j, 1), column])
        low = column if low is None else join_cols(b, [low, column])
    r = a.rank
    failed = b.op("not", b.op("gt", join_cols(b, pivots) if n > 1 else pivots[0], 0.0))
    info = b.cast(b.op("squeeze", first_index(b, failed, r - 1), axes=[r - 2, r - 1]), "i32")
    return low, info


def _cholesky_factor(b, a, upper: bool):
    """Return (factor, info): L from a's lower triangle, or U = L^T from a's upper triangle."""
    _square(b, a)
    if not upper:
        return _cholesky(b, a)
    low, info = _cholesky(b, transpose(b, a))
    return transpose(b, low), info


@lower("aten::linalg_cholesky_ex", registries=("tract_core",))
def aten_linalg_cholesky_ex(b, self, upper=False, check_errors=False):
    """linalg_cholesky_ex(Tensor self, *, bool upper=False, bool check_errors=False) -> (Tensor L, Tensor info)"""
    if empty(self):
        return folded(b)
    return _cholesky_factor(b, self, upper)


@lower("aten::cholesky", registries=("tract_core",))
def aten_cholesky(b, self, upper=False):
    """cholesky(Tensor self, bool upper=False) -> Tensor"""
    if empty(self):
        return folded(b)
    return _cholesky_factor(b, self, upper)[0]


@lower("aten::cholesky_solve", registries=("tract_core",))
def aten_cholesky_solve(b, self, input2, upper=False):
    """cholesky_solve(Tensor self, Tensor input2, bool upper=False) -> Tensor"""
    if empty(self, input2):
        return folded(b)
    low = transpose(b, input2) if upper else input2  # A = L L^T with L = U^T
    return _triangular(b, transpose(b, low), _triangular(b, low, self, True, True, False), False, True, False)


@lower("aten::cholesky_inverse", registries=("tract_core",))
def aten_cholesky_inverse(b, self, upper=False):
    """cholesky_inverse(Tensor self, bool upper=False) -> Tensor"""
    if empty(self):
        return folded(b)
    n = _square(b, self)
    identity = broadcast(b, eye(b, n, n, self.dtype, self.rank), tuple(self.shape))
    if upper:  # A = U^T U: A^-1 = U^-1 U^-T
        inverse = substitute(b, self, identity, lower=False)
        return matmul(b, inverse, inverse, transpose_b=True)
    inverse = substitute(b, self, identity, lower=True)  # A = L L^T: A^-1 = L^-T L^-1
    return matmul(b, inverse, inverse, transpose_a=True)


# -- matrix exponential ---------------------------------------------------------------------------

@lower("aten::linalg_matrix_exp", registries=("tract_core",))
def aten_linalg_matrix_exp(b, self):
    """linalg_matrix_exp(Tensor self) -> Tensor

    Scaling and squaring: s = ceil(log2(|A|_1 / theta_18)) (at least 0) is computed at run time,
    exp(A / 2^s) by its Taylor polynomial of degree 18 (Horner), then squared s times: the
    MAX_SQUARINGS squarings are all emitted and each is kept only where it is < s."""
    if empty(self):
        return folded(b)
    n = _square(b, self)
    r = self.rank
    if n == 1:
        return b.op("exp", self)
    norm = b.op("max_reduce", b.op("sum_reduce", b.op("abs", self), axes=[r - 2]), axes=[r - 1])  # [..., 1, 1]
    steps = b.op("ceil", b.op("div", b.op("log", b.op("div", norm, THETA_18)), math.log(2.0)))
    steps = b.op("min", b.op("max", steps, 0.0), float(MAX_SQUARINGS))  # NaN (a NaN entry) stays NaN
    scaled = b.op("div", self, b.op("pow", 2.0, steps))
    identity = eye(b, n, n, self.dtype, r)
    result = b.op("add", identity, b.op("div", scaled, 18.0))
    for k in range(17, 0, -1):
        result = b.op("add", identity, b.op("div", matmul(b, scaled, result), float(k)))
    for i in range(MAX_SQUARINGS):
        result = b.op("select", b.op("gt", steps, float(i)), matmul(b, result, result), result)
    return result
