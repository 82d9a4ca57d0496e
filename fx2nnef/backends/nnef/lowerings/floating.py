"""Lowerings that read a float's exponent, written with arithmetic (tract has no bitcast)."""
from __future__ import annotations

import math

from ..registry import lower
from .common import literal


def _scale(b, x, exponent):
    """Return x * 2^exponent for an integral float tensor exponent, applied as two factors 2^(e // 2)
    and 2^(e - e // 2) so that neither overflows nor goes subnormal for exponents spanning subnormals
    to the largest floats (exact: each step is a power-of-two scaling)."""
    low = b.op("floor", b.op("mul", exponent, 0.5))
    return b.op("mul", b.op("mul", x, b.op("pow", 2.0, low)), b.op("pow", 2.0, b.op("sub", exponent, low)))


@lower("aten::frexp.Tensor", registries=("tract_core",))
def aten_frexp(b, self):
    """frexp.Tensor(Tensor self) -> (Tensor mantissa, Tensor exponent)

    exponent = floor(log2|x|) + 1, corrected by one where rounding put |x| / 2^exponent outside
    [0.5, 1); mantissa = x / 2^exponent (exact: a power-of-two scaling). Zeros, infinities and NaN give
    (x, 0), as in PyTorch; subnormals are handled (the scaling is split in two factors).
    """
    magnitude = b.op("abs", self)
    exponent = b.op("add", b.op("floor", b.op("mul", b.op("log", magnitude), literal(1 / math.log(2)))), 1.0)
    finite = b.op("and", b.op("gt", magnitude, 0.0), b.op("lt", magnitude, float("inf")))
    zero = b.const(0.0, self.dtype, "zero")
    exponent = b.op("select", finite, exponent, zero)  # keeps log's -inf / NaN out of the scaling
    scaled = _scale(b, magnitude, b.op("neg", exponent))
    exponent = b.op("add", exponent, b.op("sub", b.cast(b.op("ge", scaled, 1.0), self.dtype),
                                          b.cast(b.op("lt", scaled, 0.5), self.dtype)))
    exponent = b.op("select", finite, exponent, zero)
    mantissa = _scale(b, self, b.op("neg", exponent))
    return mantissa, b.cast(exponent, "i32")
