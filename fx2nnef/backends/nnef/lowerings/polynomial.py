"""Orthogonal-polynomial lowerings (torch.special.*_polynomial_*(x, n)), matching PyTorch's special cases.

PyTorch truncates n to an int64 and returns 0 for n < 0 (and for a NaN or infinite n). The Chebyshev
families have closed forms valid for every degree: cos/sin of n acos(x) inside [-1, 1], cosh/sinh of
n acosh|x| outside, so n may be a run-time tensor. Hermite polynomials are computed by PyTorch's
three-term recurrence only up to a degree limit (128 in float32, 512 in float64, 1024 in half; NaN
above), so the recurrence is unrolled up to that limit and the degree picked per element. Laguerre and
Legendre polynomials have neither a closed form nor a limit: a degree known at export time (a Python
number or a constant tensor) unrolls the recurrence up to it; run-time degrees run it in a
tract_core_scan over k = 1 .. max(n) - 1, a range as long as the data says.

Where a Chebyshev value exceeds the float range, PyTorch's recurrence gives +-inf for two degrees
and then NaN (inf - inf); the lowering reproduces this from the closed form's logarithm, which can
differ from the recurrence at the exact overflow boundary. Otherwise the closed forms differ from the
recurrence by rounding only, but that can add up: outside [-1, 1] with degrees in the thousands
PyTorch's recurrence drifts (by 1e-3 relative at n = 1000 next to x = 1), where the closed form
stays close to the exact value.
"""
from __future__ import annotations

import math

import numpy as np

from ....errors import UnsupportedOpError
from ..registry import lower
from .common import literal

HERMITE_LIMIT = {"f32": 128, "f64": 512, "f16": 1024}
MAX_UNROLLED_DEGREE = 4096  # a constant degree above this would make a graph of tens of thousands of ops
INT64_RANGE = 2.0 ** 63
LOG_MAX = {"f16": math.log(65504.0), "f32": math.log(3.4028234663852886e38), "f64": math.log(1.7976931348623157e308)}
LARGE_ARGUMENT = 40.0  # sinh(y) and cosh(y) equal e^y / 2 to float64 precision above this


def _tensor(b, value, dtype: str):
    """Return a tensor operand in the working dtype (a Python scalar becomes a constant)."""
    return b.cast(value, dtype) if hasattr(value, "name") else b.const(value, dtype, "x")


def _degree(b, n, dtype: str):
    """Return (degree, valid): n truncated toward zero as a float tensor, and where PyTorch's int64
    cast of n is >= 0 (false for a negative, NaN, infinite or out-of-range n)."""
    n = b.cast(n, dtype)
    if not dtype.startswith("f"):
        return n, b.op("ge", n, 0.0)
    truncated = b.op("mul", b.op("sign", n), b.op("floor", b.op("abs", n)))
    valid = b.op("and", b.op("ge", truncated, 0.0), b.op("lt", truncated, literal(INT64_RANGE)))
    return truncated, valid


def _parity(b, n):
    """Return (-1)^n for a non-negative integral float tensor n."""
    odd = b.op("sub", n, b.op("mul", b.op("floor", b.op("mul", n, 0.5)), 2.0))
    return b.op("sub", 1.0, b.op("mul", odd, 2.0))


def _select(b, condition, value, otherwise, dtype: str):
    """select() whose value may be a Python scalar (made a constant of `dtype`)."""
    value = value if hasattr(value, "name") else b.const(value, dtype, "value")
    return b.op("select", condition, value, otherwise)


# kind -> (offset a of the angle factor n + a, form at x >= 0, form at x < 0 (times (-1)^n)); a form
# (f, g) is f((n + a) angle) / g(angle), or g(angle / 2) when a = 1/2: V(-x) = (-1)^n W(x) and back
CHEBYSHEV = {
    "t": (0.0, ("cos", None), ("cos", None)),
    "u": (1.0, ("sin", "sin"), ("sin", "sin")),
    "v": (0.5, ("cos", "cos"), ("sin", "sin")),
    "w": (0.5, ("sin", "sin"), ("cos", "cos")),
}


def _ratio(b, form, angle, factor, half: bool, hyperbolic: bool):
    """Return f(factor * angle) / g(angle or angle / 2) for form (f, g) (their hyperbolic versions
    outside [-1, 1]); g None means no division."""
    suffix = "h" if hyperbolic else ""
    top = b.op(form[0] + suffix, b.op("mul", angle, factor))
    if form[1] is None:
        return top
    return b.op("div", top, b.op(form[1] + suffix, b.op("mul", angle, 0.5) if half else angle))


def _hyperbolic(b, form, t, factor, half: bool):
    """Return (value, log of the value at degree n - 2) of a form outside [-1, 1]. Where the
    numerator's argument y is large, f(y) = e^y / 2 up to rounding, so the value is taken as
    exp(y - log(2 g)): it overflows only where the value does."""
    y = b.op("mul", t, factor)
    denominator = None if form[1] is None else b.op(form[1] + "h", b.op("mul", t, 0.5) if half else t)
    log_scale = literal(math.log(2)) if denominator is None else b.op("log", b.op("mul", denominator, 2.0))
    value = b.op("select", b.op("gt", y, literal(LARGE_ARGUMENT)), b.op("exp", b.op("sub", y, log_scale)),
                 _ratio(b, form, t, factor, half, True))
    return value, b.op("sub", b.op("sub", y, b.op("add", t, t)), log_scale)


# PyTorch uses the closed form inside (-1, 1) above these degrees, its recurrence below
CLOSED_FORM_ABOVE = {False: {"t": 6, "u": 8, "v": 8, "w": 8}, True: {"t": 6, "u": 6, "v": 6, "w": 4}}


def _chebyshev(b, kind: str, x, n, shifted: bool):
    """Emit the Chebyshev polynomial of the given kind with closed forms (any run-time degree)."""
    dtype = b.out_dtype
    x = _tensor(b, x, dtype)
    if shifted:  # PyTorch evaluates the shifted polynomial at x + x - 1, special cases included
        x = b.op("sub", b.op("add", x, x), 1.0)
    n, valid = _degree(b, _tensor(b, n, dtype), dtype)
    offset, positive, negative = CHEBYSHEV[kind]
    factor = b.op("add", n, literal(offset)) if offset else n
    half = offset == 0.5
    parity = _parity(b, n)
    magnitude = b.op("abs", x)
    non_negative = b.op("ge", x, 0.0)
    sign = _select(b, non_negative, 1.0, parity, dtype)
    # at low degrees PyTorch's recurrence is accurate near x = -1: evaluate at |x| and reflect there;
    # above them, use PyTorch's own closed form at x
    theta, t = b.op("acos", magnitude), b.op("acosh", magnitude)
    reflected = b.op("mul", sign, b.op("select", non_negative, _ratio(b, positive, theta, factor, half, False),
                                       _ratio(b, negative, theta, factor, half, False)))
    direct_angle = b.op("acos", x)
    closed = b.op("gt", n, literal(CLOSED_FORM_ABOVE[shifted][kind]))
    inside = b.op("select", closed, _ratio(b, positive, direct_angle, factor, half, False), reflected)
    (above, above_log), (below, below_log) = (_hyperbolic(b, form, t, factor, half) for form in (positive, negative))
    outside = b.op("select", non_negative, above, below)
    # PyTorch's recurrence gives NaN once it overflowed two steps before n (inf - inf), +-inf just after
    overflowed = b.op("gt", b.op("select", non_negative, above_log, below_log), literal(LOG_MAX[dtype]))
    nan = b.const(float("nan"), dtype, "nan")
    outside = b.op("select", overflowed, nan, outside)
    infinite = b.op("select", b.op("ge", n, 3.0), nan, b.const(float("inf"), dtype, "inf"))
    outside = b.op("select", b.op("eq", magnitude, float("inf")), infinite, outside)
    twice = b.op("add", b.op("add", n, n), 1.0)
    at_one = {"t": 1.0, "u": b.op("add", n, 1.0), "v": 1.0, "w": twice}[kind]
    at_minus_one = {"t": parity, "u": b.op("mul", parity, b.op("add", n, 1.0)),
                    "v": b.op("mul", parity, twice), "w": parity}[kind]
    if half:  # where sin (V) or cos (W) of acos(x) / 2 rounds to 1, PyTorch's closed form returns these
        edge = b.op("eq", b.op("sin" if kind == "v" else "cos", b.op("mul", direct_angle, 0.5)), 1.0)
        value = at_minus_one if kind == "v" else parity if shifted else twice
        inside = _select(b, b.op("and", closed, edge), value, inside, dtype)
    out = b.op("select", b.op("lt", magnitude, 1.0), inside, b.op("mul", sign, outside))
    out = _select(b, b.op("eq", x, -1.0), at_minus_one, out, dtype)
    out = _select(b, b.op("eq", x, 1.0), at_one, out, dtype)
    out = _select(b, b.op("eq", n, 0.0), 1.0, out, dtype)
    return _select(b, b.op("not", valid), 0.0, out, dtype)


def _register_chebyshev(kind: str, shifted: bool):
    """Register the three overloads (Tensor x and n, Scalar x, Scalar n) of one Chebyshev polynomial."""
    name = f"special_{'shifted_' if shifted else ''}chebyshev_polynomial_{kind}"

    def fn(b, x, n):
        return _chebyshev(b, kind, x, n, shifted)
    fn.__name__ = f"aten_{name}"
    fn.__doc__ = f"{name}(Tensor x, Tensor n) -> Tensor"
    return lower((f"aten::{name}", f"aten::{name}.x_scalar", f"aten::{name}.n_scalar"))(fn)


for _kind in "tuvw":
    _register_chebyshev(_kind, False)
    _register_chebyshev(_kind, True)


def _constant_degrees(n):
    """Return the degrees as an array when n is known at export time (a Python number or a constant
    tensor), else None."""
    if not hasattr(n, "name"):
        return np.asarray(float(n))
    return None if n.data is None else np.asarray(n.data, dtype=np.float64)


def _full(b, like, value: float, dtype: str):
    """Return a tensor of like's shape filled with value."""
    b.require("tract_core")
    return b.op("tract_core_broadcast", b.const(value, dtype, "fill"), shape=list(like.shape), out_dtype=dtype)


def _unrolled(b, n, first: tuple, step, top: int):
    """Run the recurrence P(k+1) = step(k, P(k-1), P(k)) from (P0, P1) up to degree `top` and return
    P(top), or with a tensor n, P(n) per element (for the elements with 2 <= n <= top)."""
    p, q = first
    out = None
    for k in range(1, top):
        p, q = q, step(k, p, q)
        if hasattr(n, "name"):
            out = q if out is None else b.op("select", b.op("eq", n, literal(k + 1)), q, out)
    return out if hasattr(n, "name") else q


def _recurrence(b, x, n, first, step, limit: int | None, special=None):
    """Emit an orthogonal polynomial by unrolling its recurrence up to the largest degree needed.

    `first(x)` is P1 (P0 is 1); `step(b, x, k, p, q)` is P(k+1) from P(k-1) = p and P(k) = q;
    `limit` is PyTorch's degree cap (NaN above it), or None when it has none, and then a run-time
    degree runs the recurrence in a loop (_scanned_recurrence); `special(x, parity, out)` gives the
    values PyTorch returns at special points ((-1)^n is `parity`)."""
    dtype = b.out_dtype
    x = _tensor(b, x, dtype)
    known = _constant_degrees(n)
    if known is None and limit is None:
        return _scanned_recurrence(b, x, n, first, step, special, dtype)
    finite = np.trunc(known[np.isfinite(known) & (np.abs(known) < INT64_RANGE)]) if known is not None else None
    top = limit if finite is None else int(finite.max(initial=0))
    top = min(top, limit) if limit is not None else top
    if top > MAX_UNROLLED_DEGREE:
        raise UnsupportedOpError(f"{b.node.target.name()} of degree {top}: unrolling its recurrence would take "
                                 f"more than {MAX_UNROLLED_DEGREE} steps")
    first = (b.const(1.0, dtype, "one"), first(x))
    if not hasattr(n, "name"):
        degree = int(finite[0]) if finite.size else -1
        if degree <= 0 or limit is not None and degree > limit:
            return _full(b, x, 0.0 if degree < 0 else 1.0 if degree == 0 else float("nan"), dtype)
        out = _unrolled(b, degree, first, lambda k, p, q: step(b, x, k, p, q), degree)
        return special(x, float((-1) ** degree), out) if special else out
    n, valid = _degree(b, _tensor(b, n, dtype), dtype)
    out = first[1] if top < 2 else _unrolled(b, n, first, lambda k, p, q: step(b, x, k, p, q), top)
    out = b.op("select", b.op("eq", n, 1.0), first[1], out)
    if limit is not None:
        out = _select(b, b.op("gt", n, literal(limit)), float("nan"), out, dtype)
    if special:
        out = special(x, _parity(b, n), out)
    out = _select(b, b.op("eq", n, 0.0), 1.0, out, dtype)
    return _select(b, b.op("not", valid), 0.0, out, dtype)


def _scanned_recurrence(b, x, n, first, step, special, dtype: str):
    """Emit an orthogonal polynomial of run-time degrees n: a tract_core_scan runs its recurrence over
    k = 1 .. max(n) - 1, a range whose length tract takes from the data (PyTorch loops n times too);
    the loop's states are P(k-1), P(k) and, per element, P(n) once k + 1 reaches n."""
    shape = b.shape_of(b.out)
    if not all(isinstance(d, int) for d in shape):
        raise NotImplementedError("a run-time degree on a tensor of dynamic shape")
    count = int(np.prod(shape))
    if count == 0:
        return b.const(np.zeros(shape), dtype, "empty")
    b.require("tract_core")
    xs, degrees = (b.op("reshape", b.op("tract_core_broadcast", t, shape=list(shape), out_shape=shape)
                        if t.shape != shape else t, shape=[count], out_shape=(count,)) for t in (x, _tensor(b, n, dtype)))
    degrees, valid = _degree(b, degrees, dtype)
    top = b.op("squeeze", b.op("max_reduce", b.op("select", valid, degrees, b.const(0.0, dtype, "zero")), axes=[0]),
               axes=[0])
    one = b.const(1.0, dtype, "one")
    steps = b.op("tract_core_range", one, top, one, out_dtype=dtype, out_shape=(None,))
    name = f"{b.node.target._schema.name.split('::')[1]}_step_{dtype}"
    if name not in b.graph.bodies:
        body = b.body(name)
        body.names.update({"p_next", "q_next", "picked_next"})
        k = body.param("k", dtype, (1,))
        p, q, picked, x_in, n_in = (body.param(name, dtype, (count,)) for name in ("p", "q", "picked", "x", "n"))
        q_next = step(body, x_in, k, p, q)
        picked_next = body.op("select", body.op("eq", n_in, body.op("add", k, 1.0)), q_next, picked)
        p_next = body.op("copy", q)
        for tensor, result in ((p_next, "p_next"), (q_next, "q_next"), (picked_next, "picked_next")):
            tensor.name = result
        body.graph.outputs = [p_next, q_next, picked_next]
    params = [t.name for t in b.graph.bodies[name].inputs]
    p0, q0 = b.op("add", b.op("mul", xs, 0.0), 1.0), first(xs)
    picked = b.op("tract_core_scan", body=name, scan=[(params[0], steps, 0, 1)],
                  full=[(params[4], xs), (params[5], degrees)],
                  state=[(params[1], p0, "p_next"), (params[2], q0, "q_next"), (params[3], q0, "picked_next")],
                  output=[("picked_next", "last", 0, 1)], out_dtype=dtype, out_shape=(count,))
    out = b.op("reshape", picked, shape=list(shape), out_shape=shape) if shape else b.op("squeeze", picked, axes=[0])
    n, valid = _degree(b, _tensor(b, n, dtype), dtype)
    out = b.op("select", b.op("eq", n, 1.0), first(x), out)
    if special:
        out = special(x, _parity(b, n), out)
    out = _select(b, b.op("eq", n, 0.0), 1.0, out, dtype)
    return _select(b, b.op("not", valid), 0.0, out, dtype)


def _k(b, k, scale: int, offset: int):
    """Return k * scale + offset: a literal when k is the int of an unrolled step, ops on the loop's
    k tensor in a scan body."""
    if isinstance(k, int):
        return literal(k * scale + offset)
    scaled = b.op("mul", k, literal(scale)) if scale != 1 else k
    return b.op("add", scaled, literal(offset)) if offset else scaled


def _hermite_h_step(b, x, k, p, q):
    """H(k+1) = (x + x) H(k) - 2k H(k-1), in PyTorch's order of operations."""
    return b.op("sub", b.op("mul", b.op("add", x, x), q), b.op("mul", p, literal(2 * k)))


def _hermite_he_step(b, x, k, p, q):
    """He(k+1) = x He(k) - k He(k-1)."""
    return b.op("sub", b.op("mul", x, q), b.op("mul", p, literal(k)))


def _laguerre_step(b, x, k, p, q):
    """L(k+1) = ((2k + (1 - x)) L(k) - k L(k-1)) / (k + 1)."""
    grown = b.op("mul", b.op("add", b.op("sub", 1.0, x), _k(b, k, 2, 0)), q)
    return b.op("div", b.op("sub", grown, b.op("mul", p, _k(b, k, 1, 0))), _k(b, k, 1, 1))


def _legendre_step(b, x, k, p, q):
    """P(k+1) = ((2k + 1) x P(k) - k P(k-1)) / (k + 1)."""
    grown = b.op("mul", b.op("mul", x, _k(b, k, 2, 1)), q)
    return b.op("div", b.op("sub", grown, b.op("mul", p, _k(b, k, 1, 0))), _k(b, k, 1, 1))


def _legendre_special(b, x, parity, out):
    """P(1) = 1 and P(-1) = (-1)^n."""
    out = _select(b, b.op("eq", x, -1.0), parity, out, b.out_dtype)
    return _select(b, b.op("eq", x, 1.0), 1.0, out, b.out_dtype)


@lower(("aten::special_hermite_polynomial_h", "aten::special_hermite_polynomial_h.x_scalar",
        "aten::special_hermite_polynomial_h.n_scalar"))
def aten_special_hermite_polynomial_h(b, x, n):
    """special_hermite_polynomial_h(Tensor x, Tensor n) -> Tensor"""
    return _recurrence(b, x, n, lambda x: b.op("add", x, x), _hermite_h_step,
                       HERMITE_LIMIT.get(b.out_dtype, 1024))


@lower(("aten::special_hermite_polynomial_he", "aten::special_hermite_polynomial_he.x_scalar",
        "aten::special_hermite_polynomial_he.n_scalar"))
def aten_special_hermite_polynomial_he(b, x, n):
    """special_hermite_polynomial_he(Tensor x, Tensor n) -> Tensor"""
    return _recurrence(b, x, n, lambda x: x, _hermite_he_step, HERMITE_LIMIT.get(b.out_dtype, 1024))


@lower(("aten::special_laguerre_polynomial_l", "aten::special_laguerre_polynomial_l.x_scalar",
        "aten::special_laguerre_polynomial_l.n_scalar"))
def aten_special_laguerre_polynomial_l(b, x, n):
    """special_laguerre_polynomial_l(Tensor x, Tensor n) -> Tensor"""
    return _recurrence(b, x, n, lambda x: b.op("sub", 1.0, x), _laguerre_step, None,
                       lambda x, parity, out: _select(b, b.op("eq", x, 0.0), 1.0, out, b.out_dtype))


@lower(("aten::special_legendre_polynomial_p", "aten::special_legendre_polynomial_p.x_scalar",
        "aten::special_legendre_polynomial_p.n_scalar"))
def aten_special_legendre_polynomial_p(b, x, n):
    """special_legendre_polynomial_p(Tensor x, Tensor n) -> Tensor"""
    return _recurrence(b, x, n, lambda x: x, _legendre_step, None,
                       lambda x, parity, out: _legendre_special(b, x, parity, out))
