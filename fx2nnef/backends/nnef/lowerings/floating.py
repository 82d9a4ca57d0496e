"""Lowerings that read a float's exponent, written with arithmetic (tract has no bitcast)."""
from __future__ import annotations

import math

import numpy as np

from ..registry import lower
from .common import literal


def _scale(b, x, exponent):
    """Return x * 2^exponent for an integral float tensor exponent, applied as two factors 2^(e // 2)
    and 2^(e - e // 2) so that neither overflows nor goes subnormal for exponents spanning subnormals
    to the largest floats (exact: each step is a power-of-two scaling)."""
    low = b.op("floor", b.op("mul", exponent, 0.5))
    return b.op("mul", b.op("mul", x, b.op("pow", 2.0, low)), b.op("pow", 2.0, b.op("sub", exponent, low)))


def _exponent(b, x):
    """Return (e, |x| / 2^e) with |x| / 2^e in [0.5, 1) (frexp's exponent and mantissa magnitude) for
    finite non-zero x; e = 0 for zeros, infinities and NaN."""
    magnitude = b.op("abs", x)
    exponent = b.op("add", b.op("floor", b.op("mul", b.op("log", magnitude), literal(1 / math.log(2)))), 1.0)
    finite = b.op("and", b.op("gt", magnitude, 0.0), b.op("lt", magnitude, float("inf")))
    zero = b.const(0.0, x.dtype, "zero")
    exponent = b.op("select", finite, exponent, zero)  # keeps log's -inf / NaN out of the scaling
    scaled = _scale(b, magnitude, b.op("neg", exponent))
    # log2 may round across an integer: one step either way puts the mantissa back in [0.5, 1)
    exponent = b.op("add", exponent, b.op("sub", b.cast(b.op("ge", scaled, 1.0), x.dtype),
                                          b.cast(b.op("lt", scaled, 0.5), x.dtype)))
    exponent = b.op("select", finite, exponent, zero)
    return exponent, _scale(b, magnitude, b.op("neg", exponent))


@lower("aten::frexp.Tensor", registries=("tract_core",))
def aten_frexp(b, self):
    """frexp.Tensor(Tensor self) -> (Tensor mantissa, Tensor exponent)

    exponent = floor(log2|x|) + 1, corrected by one where rounding put |x| / 2^exponent outside
    [0.5, 1); mantissa = x / 2^exponent (exact: a power-of-two scaling). Zeros, infinities and NaN give
    (x, 0), as in PyTorch; subnormals are handled (the scaling is split in two factors).
    """
    exponent, _ = _exponent(b, self)
    return _scale(b, self, b.op("neg", exponent)), b.cast(exponent, "i32")


# dtype -> (significand bits, smallest subnormal, largest finite)
FLOATS = {"f16": (11, 2.0 ** -24, 65504.0), "f32": (24, 2.0 ** -149, float(np.finfo(np.float32).max)),
          "f64": (53, 2.0 ** -1074, float(np.finfo(np.float64).max))}


@lower("aten::nextafter", registries=("tract_core",))
def aten_nextafter(b, self, other):
    """nextafter(Tensor self, Tensor other) -> Tensor

    The float after x toward y is x +- its spacing 2^(e - bits) (frexp's e; at least the smallest
    subnormal), halved when stepping toward zero from a power of two; 0 steps to the smallest subnormal,
    an infinity to the largest float, x == y gives y and a NaN operand NaN, as C's nextafter.
    """
    bits, smallest, largest = FLOATS[self.dtype]
    x, y, dtype = self, other, self.dtype
    exponent, mantissa = _exponent(b, x)
    up = b.op("gt", y, x)
    direction = b.op("select", up, b.const(1.0, dtype, "up"), b.const(-1.0, dtype, "down"))
    toward_zero = b.op("select", b.op("gt", x, 0.0), b.op("not", up), up)
    spacing = b.op("max", b.op("pow", 2.0, b.op("sub", exponent, literal(bits))), literal(smallest))
    halved = b.op("max", b.op("pow", 2.0, b.op("sub", exponent, literal(bits + 1))), literal(smallest))
    step = b.op("select", b.op("and", toward_zero, b.op("eq", mantissa, 0.5)), halved, spacing)
    out = b.op("add", x, b.op("mul", direction, step))
    out = b.op("select", b.op("eq", x, 0.0), b.op("mul", direction, literal(smallest)), out)
    out = b.op("select", b.op("eq", b.op("abs", x), float("inf")), b.op("mul", b.op("sign", x), literal(largest)), out)
    out = b.op("select", b.op("eq", x, y), y, out)
    return b.op("select", b.op("or", b.op("ne", x, x), b.op("ne", y, y)), b.op("add", x, y), out)
