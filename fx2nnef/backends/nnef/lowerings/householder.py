"""Householder QR lowerings, unrolled over a matrix size known at export: geqrf, linalg_qr,
linalg_householder_product (orgqr) and ormqr.

The reflectors follow LAPACK's geqr2/larfg exactly: H = I - tau [1; v] [1; v]^T with
beta = -sign(alpha) |[alpha; x]|, tau = (beta - alpha) / beta and v = x / (alpha - beta), and
H = I (tau = 0) when x is zero. So R's signs, the stored reflectors and tau equal PyTorch's to
rounding (QR of a full-rank matrix is unique once these signs are fixed).
"""
from __future__ import annotations

from ..registry import lower
from .matrix import (batch_shape, broadcast, check_size, empty, entry, eye, folded, join_cols, join_rows, matmul,
                     part, rows, transpose, triangle, zero_output, zeros)


def _reflect(b, c, i: int, tail, tau):
    """Return H c for H = I - tau u u^T, u = [0 (i rows); 1; tail] (tail [..., m-i-1, 1] or None), c [..., m, p]."""
    m = c.shape[-2]
    top = rows(b, c, i, i + 1)
    below = rows(b, c, i + 1, m) if tail is not None else None
    w = b.op("add", top, matmul(b, tail, below, transpose_a=True)) if tail is not None else top
    scaled = b.op("mul", tau, w)
    top = b.op("sub", top, scaled)
    if tail is not None:
        below = b.op("sub", below, b.op("mul", tail, scaled))
    return join_rows(b, [rows(b, c, 0, i) if i else None, top, below])


def _geqrf(b, a):
    """Return (a, taus) after LAPACK's geqr2: R on and above the diagonal, the reflectors' tails below
    it, and each reflector's tau as [..., 1, 1]."""
    m, n = a.shape[-2:]
    r = a.rank
    taus = []
    for k in range(min(m, n)):
        if k == m - 1:  # larfg of a single element: H = I
            taus.append(zeros(b, a, 1, 1))
            continue
        alpha = entry(b, a, k, k)
        x = part(b, a, (k + 1, m), (k, k + 1))
        squares = b.op("sum_reduce", b.op("mul", x, x), axes=[r - 2])
        norm = b.op("sqrt", b.op("add", b.op("mul", alpha, alpha), squares))
        beta = b.op("select", b.op("ge", alpha, 0.0), b.op("neg", norm), norm)
        identity = b.op("eq", squares, 0.0)
        tau = b.op("select", identity, b.const(0.0, a.dtype, "zero"), b.op("div", b.op("sub", beta, alpha), beta))
        tail = b.op("select", identity, x, b.op("mul", x, b.op("recip", b.op("sub", alpha, beta))))
        beta = b.op("select", identity, alpha, beta)
        taus.append(tau)
        rest = None
        if k + 1 < n:
            rest = _reflect(b, part(b, a, (k, m), (k + 1, n)), 0, tail, tau)
        left = part(b, a, (k, m), (0, k)) if k else None
        a = join_rows(b, [rows(b, a, 0, k) if k else None, join_cols(b, [left, join_rows(b, [beta, tail]), rest])])
    return a, taus


def _apply_q(b, v, taus: list, c, transposed: bool = False):
    """Return Q c (or Q^T c) for Q = H_0 H_1 ... H_(k-1), the reflectors stored below v's diagonal
    (v [..., m, >= k], taus a list of [..., 1, 1])."""
    m = v.shape[-2]
    batch = batch_shape(v, c)
    c = broadcast(b, c, batch + tuple(c.shape[-2:]))
    order = range(len(taus)) if transposed else reversed(range(len(taus)))
    for i in order:
        tail = part(b, v, (i + 1, m), (i, i + 1)) if i + 1 < m else None
        c = _reflect(b, c, i, tail, taus[i])
    return c


def _tau_list(b, tau) -> list:
    """Split tau [..., k] into k [..., 1, 1] tensors."""
    column = b.op("unsqueeze", tau, axes=[tau.rank])
    return [rows(b, column, i, i + 1) for i in range(tau.shape[-1])]


@lower("aten::geqrf")
def aten_geqrf(b, self):
    """geqrf(Tensor self) -> (Tensor a, Tensor tau)"""
    if empty(self):
        return folded(b)
    check_size(b, self)
    a, taus = _geqrf(b, self)
    r = self.rank
    return a, b.op("squeeze", join_cols(b, taus), axes=[r - 2])


@lower("aten::linalg_qr", registries=("tract_core",))
def aten_linalg_qr(b, A, mode="reduced"):
    """linalg_qr(Tensor A, str mode="reduced") -> (Tensor Q, Tensor R)"""
    if empty(A):
        return folded(b)
    m, n = check_size(b, A)
    k = min(m, n)
    a, taus = _geqrf(b, A)
    if mode == "complete":
        return _apply_q(b, a, taus, eye(b, m, m, A.dtype, A.rank)), triangle(b, a, lower=False)
    r = triangle(b, rows(b, a, 0, k), lower=False)
    if mode == "r":
        return zero_output(b, 0), r
    return _apply_q(b, a, taus, eye(b, m, k, A.dtype, A.rank)), r


@lower("aten::linalg_householder_product", registries=("tract_core",))
def aten_linalg_householder_product(b, input, tau):
    """linalg_householder_product(Tensor input, Tensor tau) -> Tensor"""
    if empty(input, tau):
        return folded(b)
    m, n = check_size(b, input)
    return _apply_q(b, input, _tau_list(b, tau), eye(b, m, n, input.dtype, input.rank))


@lower("aten::ormqr", registries=("tract_core",))
def aten_ormqr(b, self, input2, input3, left=True, transpose=False):
    """ormqr(Tensor self, Tensor input2, Tensor input3, bool left=True, bool transpose=False) -> Tensor"""
    if empty(self, input3):
        return folded(b)
    if empty(input2):  # no reflector: Q = I
        return broadcast(b, input3, b.shape_of(b.out))
    check_size(b, self)
    check_size(b, input3, "matrix multiplied")
    taus = _tau_list(b, input2)
    if left:
        return _apply_q(b, self, taus, input3, transposed=transpose)
    return _transpose(b, _apply_q(b, self, taus, _transpose(b, input3), transposed=not transpose))


_transpose = transpose  # ormqr's `transpose` argument shadows the helper
