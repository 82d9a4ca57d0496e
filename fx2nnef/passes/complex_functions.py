"""Elementary functions of complex values written on their parts: each takes the parts (a, b) of z (real
nodes or numbers) and returns the parts of f(z), built with a PairWriter's arithmetic."""
from __future__ import annotations

import math
from typing import Any

import torch

from .complex_pairs import PairWriter, is_number

aten = torch.ops.aten


def pair_abs(r: PairWriter, p: torch.fx.Node) -> torch.fx.Node:
    """Return |z| of a pair node."""
    return r.emit(aten.sqrt.default, r.emit(aten.sum.dim_IntList, r.mul(p, p), [r.pval(p).dim() - 1]))


def pair_angle(r: PairWriter, p: torch.fx.Node) -> torch.fx.Node:
    return r.emit(aten.atan2.default, r.part(p, 1), r.part(p, 0))


def apply(r: PairWriter, op, x: Any) -> Any:
    """Return op(x) for a real node, or for a number."""
    return float(op(torch.tensor(float(x)))) if is_number(x) else r.emit(op, x)


def cexp(r: PairWriter, a: Any, b: Any) -> tuple[Any, Any]:
    e = apply(r, aten.exp.default, a)
    return r.mul(e, apply(r, aten.cos.default, b)), r.mul(e, apply(r, aten.sin.default, b))


def clog(r: PairWriter, a: Any, b: Any) -> tuple[Any, Any]:
    """log z = log|z| + i atan2(b, a) (|z| from a hypot-free sqrt, fine within f32 range)."""
    size = apply(r, aten.sqrt.default, r.norm2(a, b))
    angle = r.emit(aten.atan2.default, *[x if isinstance(x, torch.fx.Node) else like(r, x, a, b) for x in (b, a)])
    return apply(r, aten.log.default, size), angle


def like(r: PairWriter, value: float, *others: Any) -> torch.fx.Node:
    """Return a node filled with `value` shaped like the first node among `others`."""
    template = next(x for x in others if isinstance(x, torch.fx.Node))
    return r.emit(aten.full_like.default, template, value)


def cmul(r: PairWriter, z: tuple, w: tuple) -> tuple[Any, Any]:
    (a, b), (c, d) = z, w
    return r.sub(r.mul(a, c), r.mul(b, d)), r.add(r.mul(a, d), r.mul(b, c))


def cdiv(r: PairWriter, z: tuple, w: tuple) -> tuple[Any, Any]:
    (a, b), (c, d) = z, w
    den = r.norm2(c, d)
    return r.div(r.add(r.mul(a, c), r.mul(b, d)), den), r.div(r.sub(r.mul(b, c), r.mul(a, d)), den)


def csqrt(r: PairWriter, a: Any, b: Any) -> tuple[Any, Any]:
    """Principal square root: sqrt|z| (cos θ/2 + i sin θ/2)."""
    size = apply(r, aten.sqrt.default, apply(r, aten.sqrt.default, r.norm2(a, b)))
    half = r.mul(r.emit(aten.atan2.default, *[x if isinstance(x, torch.fx.Node) else like(r, x, a, b)
                                                 for x in (b, a)]), 0.5)
    return r.mul(size, r.emit(aten.cos.default, half)), r.mul(size, r.emit(aten.sin.default, half))


def trig(kind: str):
    """Return the parts function of sin, cos, sinh, cosh, tan, tanh."""
    def fn(r: PairWriter, a: Any, b: Any) -> tuple[Any, Any]:
        f = lambda op, x: apply(r, op, x)  # noqa: E731
        if kind == "sin":
            return r.mul(f(aten.sin.default, a), f(aten.cosh.default, b)), r.mul(f(aten.cos.default, a), f(aten.sinh.default, b))
        if kind == "cos":
            return r.mul(f(aten.cos.default, a), f(aten.cosh.default, b)), r.neg(r.mul(f(aten.sin.default, a), f(aten.sinh.default, b)))
        if kind == "sinh":
            return r.mul(f(aten.sinh.default, a), f(aten.cos.default, b)), r.mul(f(aten.cosh.default, a), f(aten.sin.default, b))
        if kind == "cosh":
            return r.mul(f(aten.cosh.default, a), f(aten.cos.default, b)), r.mul(f(aten.sinh.default, a), f(aten.sin.default, b))
        a2, b2 = r.mul(a, 2.0), r.mul(b, 2.0)
        if kind == "tan":   # (sin 2a + i sinh 2b) / (cos 2a + cosh 2b)
            den = r.add(f(aten.cos.default, a2), f(aten.cosh.default, b2))
            return r.div(f(aten.sin.default, a2), den), r.div(f(aten.sinh.default, b2), den)
        den = r.add(f(aten.cosh.default, a2), f(aten.cos.default, b2))   # tanh: (sinh 2a + i sin 2b) / (...)
        return r.div(f(aten.sinh.default, a2), den), r.div(f(aten.sin.default, b2), den)
    return fn


def asinh(r: PairWriter, a: Any, b: Any) -> tuple[Any, Any]:
    """asinh z = log(z + sqrt(z² + 1)), computed on the half plane re >= 0 (asinh is odd) to avoid
    the cancellation of z + sqrt(z² + 1) for re z < 0."""
    negative = r.emit(aten.lt.Scalar, a, 0.0)
    sign = r.emit(aten.where.self, negative, like(r, -1.0, a), like(r, 1.0, a))
    a, b = r.mul(a, sign), r.mul(b, sign)
    root = csqrt(r, *add_pairs(r, cmul(r, (a, b), (a, b)), (1.0, 0.0)))
    re, im = clog(r, *add_pairs(r, (a, b), root))
    return r.mul(re, sign), r.mul(im, sign)


def add_pairs(r: PairWriter, z: tuple, w: tuple) -> tuple[Any, Any]:
    return r.add(z[0], w[0]), r.add(z[1], w[1])


def acosh(r: PairWriter, a: Any, b: Any) -> tuple[Any, Any]:
    """acosh z = log(z + sqrt(z + 1) sqrt(z - 1))."""
    root = cmul(r, csqrt(r, r.add(a, 1.0), b), csqrt(r, r.sub(a, 1.0), b))
    return clog(r, *add_pairs(r, (a, b), root))


def atanh(r: PairWriter, a: Any, b: Any) -> tuple[Any, Any]:
    """atanh z = (log(1 + z) - log(1 - z)) / 2."""
    plus, minus = clog(r, r.add(a, 1.0), b), clog(r, r.sub(1.0, a), r.neg(b))
    return r.mul(r.sub(plus[0], minus[0]), 0.5), r.mul(r.sub(plus[1], minus[1]), 0.5)


def times_i(fn):
    """Return the parts function of -i f(i z) (asin from asinh, atan from atanh)."""
    def g(r: PairWriter, a: Any, b: Any) -> tuple[Any, Any]:
        re, im = fn(r, r.neg(b), a)      # f(i z), i z = -b + a i
        return im, r.neg(re)             # -i (re + i im) = im - i re
    return g


def acos(r: PairWriter, a: Any, b: Any) -> tuple[Any, Any]:
    """acos z = pi/2 - asin z."""
    re, im = times_i(asinh)(r, a, b)
    return r.sub(math.pi / 2, re), r.neg(im)


def log1p(r: PairWriter, a: Any, b: Any) -> tuple[Any, Any]:
    """log(1 + z): real part log1p(2a + a² + b²) / 2 (exact near 0), imaginary part atan2(b, 1 + a)."""
    re = r.mul(r.emit(aten.log1p.default, r.add(r.mul(a, 2.0), r.norm2(a, b))), 0.5)
    return re, r.emit(aten.atan2.default, b, r.add(a, 1.0))


def expm1(r: PairWriter, a: Any, b: Any) -> tuple[Any, Any]:
    """exp(z) - 1: real part expm1(a) cos b - 2 sin²(b/2) (exact near 0)."""
    half = r.emit(aten.sin.default, r.mul(b, 0.5))
    re = r.sub(r.mul(r.emit(aten.expm1.default, a), r.emit(aten.cos.default, b)), r.mul(r.mul(half, half), 2.0))
    return re, r.mul(r.emit(aten.exp.default, a), r.emit(aten.sin.default, b))


def scaled_log(base: float):
    def fn(r: PairWriter, a: Any, b: Any) -> tuple[Any, Any]:
        re, im = clog(r, a, b)
        return r.mul(re, 1 / math.log(base)), r.mul(im, 1 / math.log(base))
    return fn


def sigmoid(r: PairWriter, a: Any, b: Any) -> tuple[Any, Any]:
    """1 / (1 + exp(-z))."""
    e = cexp(r, r.neg(a), r.neg(b))
    return cdiv(r, (1.0, 0.0), (r.add(e[0], 1.0), e[1]))


def silu(r: PairWriter, a: Any, b: Any) -> tuple[Any, Any]:
    return cmul(r, (a, b), sigmoid(r, a, b))


def exp2(r: PairWriter, a: Any, b: Any) -> tuple[Any, Any]:
    return cexp(r, r.mul(a, math.log(2)), r.mul(b, math.log(2)))


def rsqrt(r: PairWriter, a: Any, b: Any) -> tuple[Any, Any]:
    return cdiv(r, (1.0, 0.0), csqrt(r, a, b))
