"""Element-wise lowerings: unary maths, binary arithmetic, comparisons, logic, selection, activations.

Operands of binary ops share one dtype (the legalize_dtypes pass inserted the casts); Python
scalars become float literals, which tract gives the other operand's dtype.
"""
from __future__ import annotations

import math

import torch

from ..registry import lower
from ..standard import ERF_FRAGMENT, FRAGMENT_EXTENSION
from .common import literal

COMPARISONS = {"eq", "ne", "lt", "le", "gt", "ge"}

# aten op (default overload) -> NNEF/tract op with the same semantics
UNARY = {
    "abs": "abs", "neg": "neg", "exp": "exp", "log": "log", "sqrt": "sqrt", "rsqrt": "rsqrt",
    "sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu", "sin": "sin", "cos": "cos", "tan": "tan",
    "asin": "asin", "acos": "acos", "atan": "atan", "sinh": "sinh", "cosh": "cosh", "asinh": "asinh",
    "acosh": "acosh", "atanh": "atanh", "floor": "floor", "ceil": "ceil", "sign": "sign",
    "reciprocal": "recip", "erf": "tract_core_erf", "round": "tract_core_round_even",
    "isnan": "tract_core_is_nan",
}


def erf(b, x):
    """Emit erf(x): tract's operator, or on the Khronos target a standard-NNEF fragment."""
    if b.khronos:
        b.fragment("erf", ERF_FRAGMENT)
        if FRAGMENT_EXTENSION not in b.graph.extensions:
            b.graph.extensions.append(FRAGMENT_EXTENSION)
        return b.op("erf", x, out_dtype=x.dtype)
    b.require("tract_core")
    return b.op("tract_core_erf", x)


# standard NNEF forms of the unary ops that tract lowers to its own operators (Khronos target)
STANDARD_UNARY = {
    "erf": erf,
    "round": lambda b, x: b.op("round", x),
    "isnan": lambda b, x: b.op("ne", x, x),
}


def _unary(aten_name: str, nnef_op: str):
    """Register the lowering of a unary aten op that maps to one NNEF op."""
    def fn(b, self):
        if b.khronos and aten_name in STANDARD_UNARY:
            return STANDARD_UNARY[aten_name](b, self)
        if nnef_op.startswith("tract_core_"):
            b.require("tract_core")
        return b.op(nnef_op, self)
    fn.__name__ = f"aten_{aten_name}"
    fn.__doc__ = str(getattr(torch.ops.aten, aten_name).default._schema)
    return lower(f"aten::{aten_name}")(fn)


for _aten, _nnef in UNARY.items():
    _unary(_aten, _nnef)


# tract has no bool arithmetic or bool comparison kernels: the logical equivalents
BOOL_BINARY = {"add": "or", "max": "or", "min": "and", "mul": "and", "ne": "xor", "eq": "xnor",
               "gt": "gt", "lt": "lt", "ge": "ge", "le": "le"}


def _is_bool(x) -> bool:
    return hasattr(x, "name") and x.dtype == "bool"


def _bool_binary(b, op: str, x, y):
    """Emit `op` on bool tensors with logical ops (a scalar operand becomes a bool constant)."""
    y = y if hasattr(y, "name") else b.const(bool(y), "bool", "flag")
    kind = BOOL_BINARY[op]
    if kind in ("or", "and"):
        return _logical(b, kind, x, y)
    if kind in ("xor", "xnor"):
        out = _xor(b, x, y)
        return out if kind == "xor" else b.op("not", out)
    first, second = (x, y) if kind in ("gt", "ge") else (y, x)
    strict = _logical(b, "and", first, b.op("not", second))  # True > False is the only strict order
    return strict if kind in ("gt", "lt") else _logical(b, "or", strict, b.op("not", _xor(b, x, y)))


def _xor(b, x, y):
    """Emit a bool xor (tract_core_xor on tract; and/or/not on Khronos NNEF)."""
    if b.khronos:
        return b.op("or", b.op("and", x, b.op("not", y)), b.op("and", b.op("not", x), y))
    b.require("tract_core")
    return b.op("tract_core_xor", x, y, out_dtype="bool")


def _zero(b, x):
    """Return a constant 0 of x's dtype (float literals do not compare with integer tensors in tract)."""
    return b.const(0, x.dtype, "zero")


def _operand(x):
    """Return a tensor operand as is and a Python scalar as a literal."""
    return x if hasattr(x, "name") else literal(x)


@lower(("aten::add.Tensor", "aten::add.Scalar"))
def aten_add(b, self, other, alpha=1):
    """add.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor"""
    if _is_bool(self) and b.out_dtype == "bool":
        return _bool_binary(b, "add", self, other)
    other = _operand(other)
    if alpha != 1:
        other = b.op("mul", other, literal(alpha)) if hasattr(other, "name") else other * alpha
    return b.op("add", _operand(self), other)


@lower(("aten::sub.Tensor", "aten::sub.Scalar"))
def aten_sub(b, self, other, alpha=1):
    """sub.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor"""
    other = _operand(other)
    if alpha != 1:
        other = b.op("mul", other, literal(alpha)) if hasattr(other, "name") else other * alpha
    return b.op("sub", _operand(self), other)


@lower(("aten::rsub.Scalar", "aten::rsub.Tensor"))
def aten_rsub(b, self, other, alpha=1):
    """rsub.Scalar(Tensor self, Scalar other, Scalar alpha=1) -> Tensor"""
    return aten_sub(b, other, self, alpha)


def _logical(b, op: str, self, other):
    """Emit a bool and/or: standard `and`/`or` for Khronos NNEF, tract_core_bitand/bitor for tract,
    whose `and`/`or` lose symbolic dims when both operands are computed from shapes alone (e.g. an
    arange-based mask and a constant)."""
    if b.khronos:
        return b.op(op, _operand(self), _operand(other))
    b.require("tract_core")
    return b.op(f"tract_core_bit{op}", _operand(self), _operand(other))


@lower(("aten::mul.Tensor", "aten::mul.Scalar"))
def aten_mul(b, self, other):
    """mul.Tensor(Tensor self, Tensor other) -> Tensor"""
    if b.out_dtype == "bool":
        return _logical(b, "and", self, other)
    if self is other and not b.out_dtype.startswith("f"):
        return _integer_square(b, self)
    return b.op("mul", _operand(self), _operand(other))


def _integer_square(b, x):
    """Return x * x for an integer x as -(x * -x): tract rewrites mul(x, x) (and pow(x, 2)) into its
    Square op, which has no integer kernel ("Square does not support I64" at run time)."""
    return b.op("neg", b.op("mul", x, b.op("neg", x)))


@lower(("aten::div.Tensor", "aten::div.Scalar"))
def aten_div(b, self, other):
    """div.Tensor(Tensor self, Tensor other) -> Tensor"""
    return b.op("div", _operand(self), _operand(other))


@lower(("aten::div.Tensor_mode", "aten::div.Scalar_mode"))
def aten_div_mode(b, self, other, rounding_mode=None):
    """div.Tensor_mode(Tensor self, Tensor other, *, str? rounding_mode) -> Tensor"""
    q = b.op("div", _operand(self), _operand(other))
    is_float = b.out_dtype.startswith("f")
    if rounding_mode is None:
        return q
    if rounding_mode == "trunc":
        return b.op("mul", b.op("sign", q), b.op("floor", b.op("abs", q))) if is_float else q
    if is_float:
        return _float_floor_div(b, _operand(self), _operand(other))
    # integer floor division: tract truncates, so step down where the remainder's sign differs
    r = b.op("sub", _operand(self), b.op("mul", q, _operand(other)))
    if hasattr(other, "name"):
        b.require("tract_core")  # tract's ne rejects bools: the sign mismatch is a xor
        fix = b.op("and", b.op("ne", r, 0.0), b.op("tract_core_xor", b.op("lt", r, 0.0), b.op("lt", other, 0.0)))
    else:  # a scalar divisor: its sign is known now
        fix = b.op("lt", r, 0.0) if other > 0 else b.op("gt", r, 0.0)
    return b.op("select", fix, b.op("sub", q, 1.0), q)


@lower(("aten::pow.Tensor_Scalar", "aten::pow.Tensor_Tensor"))
def aten_pow(b, self, exponent):
    """pow.Tensor_Scalar(Tensor self, Scalar exponent) -> Tensor"""
    if not hasattr(exponent, "name"):
        if exponent == 1:
            return self
        if exponent == 2:
            return b.op("sqr", self) if b.out_dtype.startswith("f") else _integer_square(b, self)
        if exponent == 0.5:
            return b.op("sqrt", self)
    return b.op("pow", self, _operand(exponent))


@lower("aten::pow.Scalar")
def aten_pow_scalar(b, self, exponent):
    """pow.Scalar(Scalar self, Tensor exponent) -> Tensor"""
    return b.op("pow", literal(self), exponent)


def _binary(aten_names: tuple[str, ...], nnef_op: str, schema: str):
    """Register a binary aten op (Tensor and Scalar overloads) that maps to one NNEF op."""
    def fn(b, self, other):
        if b.khronos and nnef_op in COMPARISONS:  # standard comparisons take scalars: compare integers as such
            self, other = (b.cast(x, "f32") if hasattr(x, "name") and x.dtype != "bool" else x for x in (self, other))
        if _is_bool(self) and nnef_op in BOOL_BINARY:
            return _bool_binary(b, nnef_op, self, other)
        return b.op(nnef_op, _operand(self), _operand(other))
    fn.__name__ = "aten_" + aten_names[0].split("::")[1].split(".")[0]
    fn.__doc__ = schema
    return lower(aten_names)(fn)


for _name, _op in {"eq": "eq", "ne": "ne", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge"}.items():
    _binary((f"aten::{_name}.Tensor", f"aten::{_name}.Scalar"), _op,
            f"{_name}.Tensor(Tensor self, Tensor other) -> Tensor")
_binary(("aten::maximum",), "max", "maximum(Tensor self, Tensor other) -> Tensor")
_binary(("aten::minimum",), "min", "minimum(Tensor self, Tensor other) -> Tensor")


@lower("aten::logical_and")
def aten_logical_and(b, self, other):
    """logical_and(Tensor self, Tensor other) -> Tensor"""
    return _logical(b, "and", b.cast(self, "bool"), b.cast(other, "bool"))


@lower("aten::logical_or")
def aten_logical_or(b, self, other):
    """logical_or(Tensor self, Tensor other) -> Tensor"""
    return _logical(b, "or", b.cast(self, "bool"), b.cast(other, "bool"))


def _bitwise(b, kind: str, self, other):
    """Emit a bitwise and/or/xor: logical ops on bool tensors, tract_core_bit<kind> on integers."""
    if b.out_dtype == "bool":
        return _bool_binary(b, "ne", self, other) if kind == "xor" else _logical(b, kind, self, other)
    b.require("tract_core")
    return b.op(f"tract_core_bit{kind}", _operand(self), _operand(other))


@lower(("aten::bitwise_and.Tensor", "aten::bitwise_and.Scalar"))
def aten_bitwise_and(b, self, other):
    """bitwise_and.Tensor(Tensor self, Tensor other) -> Tensor"""
    return _bitwise(b, "and", self, other)


@lower(("aten::bitwise_or.Tensor", "aten::bitwise_or.Scalar"))
def aten_bitwise_or(b, self, other):
    """bitwise_or.Tensor(Tensor self, Tensor other) -> Tensor"""
    return _bitwise(b, "or", self, other)


@lower("aten::bitwise_not")
def aten_bitwise_not(b, self):
    """bitwise_not(Tensor self) -> Tensor"""
    if b.out_dtype == "bool":
        return b.op("not", self)
    b.require("tract_core")
    return b.op("tract_core_bitnot", self)


def _value(b, value, dtype: str):
    """Return a select() branch: a tensor as is, a scalar as a constant of the output dtype
    (select does not promote literals)."""
    return value if hasattr(value, "name") else b.const(value, dtype, "scalar")


@lower(("aten::where.self", "aten::where.ScalarOther", "aten::where.ScalarSelf", "aten::where.Scalar"))
def aten_where(b, condition, self, other):
    """where.self(Tensor condition, Tensor self, Tensor other) -> Tensor"""
    return b.op("select", condition, _value(b, self, b.out_dtype), _value(b, other, b.out_dtype))


@lower(("aten::masked_fill.Scalar", "aten::masked_fill.Tensor"))
def aten_masked_fill(b, self, mask, value):
    """masked_fill.Scalar(Tensor self, Tensor mask, Scalar value) -> Tensor"""
    if hasattr(value, "name"):
        value = b.cast(value, self.dtype)
    return b.op("select", mask, _value(b, value, b.out_dtype), self)


@lower(("aten::clamp", "aten::clamp.Tensor"))
def aten_clamp(b, self, min=None, max=None):
    """clamp(Tensor self, Scalar? min=None, Scalar? max=None) -> Tensor"""
    out = self
    if min is not None:
        out = b.op("max", out, _operand(min))
    if max is not None:
        out = b.op("min", out, _operand(max))
    return out


@lower("aten::gelu")
def aten_gelu(b, self, approximate="none"):
    """gelu(Tensor self, *, str approximate='none') -> Tensor"""
    if approximate == "tanh":
        if not b.khronos:
            b.require("tract_core")
            return b.op("tract_core_gelu_approx", self, fast_impl=False)
        inner = b.op("mul", b.op("add", self, b.op("mul", b.op("mul", b.op("sqr", self), self), 0.044715)),
                     literal(math.sqrt(2 / math.pi)))
        return b.op("mul", b.op("mul", self, 0.5), b.op("add", b.op("tanh", inner), 1.0))
    phi = erf(b, b.op("mul", self, literal(1 / math.sqrt(2))))
    return b.op("mul", b.op("mul", self, 0.5), b.op("add", phi, 1.0))


@lower("aten::silu")
def aten_silu(b, self):
    """silu(Tensor self) -> Tensor"""
    if b.khronos:
        return b.op("silu", self)
    b.require("tract_core")
    return b.op("tract_core_silu", self)


@lower("aten::leaky_relu")
def aten_leaky_relu(b, self, negative_slope=0.01):
    """leaky_relu(Tensor self, Scalar negative_slope=0.01) -> Tensor"""
    return b.op("leaky_relu", self, alpha=literal(negative_slope))


@lower("aten::hardtanh")
def aten_hardtanh(b, self, min_val=-1.0, max_val=1.0):
    """hardtanh(Tensor self, Scalar min_val=-1, Scalar max_val=1) -> Tensor"""
    return b.op("min", b.op("max", self, literal(min_val)), literal(max_val))


@lower("aten::log1p")
def aten_log1p(b, self):
    """log1p(Tensor self) -> Tensor"""
    return b.op("log", b.op("add", self, 1.0))


@lower("aten::expm1")
def aten_expm1(b, self):
    """expm1(Tensor self) -> Tensor"""
    return b.op("sub", b.op("exp", self), 1.0)


def _float_unary(aten_name: str, build):
    """Register a unary aten op written as a small NNEF expression of its input."""
    def fn(b, self):
        return build(b, self)
    fn.__name__ = f"aten_{aten_name}"
    fn.__doc__ = str(getattr(torch.ops.aten, aten_name).default._schema)
    return lower(f"aten::{aten_name}")(fn)


def _trunc(b, x):
    """Round toward zero (floats only; integers are returned as is)."""
    if not x.dtype.startswith("f"):
        return x
    return b.op("mul", b.op("sign", x), b.op("floor", b.op("abs", x)))


_float_unary("log2", lambda b, x: b.op("mul", b.op("log", x), literal(1 / math.log(2))))
_float_unary("log10", lambda b, x: b.op("mul", b.op("log", x), literal(1 / math.log(10))))
_float_unary("exp2", lambda b, x: b.op("exp", b.op("mul", x, literal(math.log(2)))))
_float_unary("trunc", _trunc)
_float_unary("frac", lambda b, x: b.op("sub", x, _trunc(b, x)))
_float_unary("sgn", lambda b, x: b.op("sign", x))
_float_unary("erfc", lambda b, x: b.op("sub", 1.0, _erf(b, x)))
_float_unary("hardswish", lambda b, x: b.op("mul", x, _hardsigmoid(b, x)))
_float_unary("hardsigmoid", lambda b, x: _hardsigmoid(b, x))
_float_unary("mish", lambda b, x: b.op("mul", x, b.op("tanh", _softplus(b, x, 1.0, 20.0))))
_float_unary("sinc", lambda b, x: _sinc(b, x))
_float_unary("deg2rad", lambda b, x: b.op("mul", x, literal(math.pi / 180)))
_float_unary("rad2deg", lambda b, x: b.op("mul", x, literal(180 / math.pi)))
_float_unary("relu6", lambda b, x: b.op("min", b.op("max", x, 0.0), 6.0))
_float_unary("isinf", lambda b, x: _isinf(b, x))
_float_unary("isfinite", lambda b, x: _isfinite(b, x))
_float_unary("isneginf", lambda b, x: b.op("eq", x, float("-inf")) if x.dtype.startswith("f") else _false(b, x))
_float_unary("isposinf", lambda b, x: b.op("eq", x, float("inf")) if x.dtype.startswith("f") else _false(b, x))
_float_unary("signbit", lambda b, x: b.op("lt", x, 0.0))
_float_unary("positive", lambda b, x: x)
_float_unary("logical_not", lambda b, x: b.op("not", b.cast(x, "bool")))


def _erf(b, x):
    b.require("tract_core")
    return b.op("tract_core_erf", x)


def _hardsigmoid(b, x):
    return b.op("div", b.op("min", b.op("max", b.op("add", x, 3.0), 0.0), 6.0), 6.0)


def _softplus(b, x, beta: float, threshold: float):
    """log(1 + exp(beta x)) / beta, linear above the threshold as in torch."""
    bx = b.op("mul", x, literal(beta)) if beta != 1 else x
    soft = b.op("log", b.op("add", b.op("exp", bx), 1.0))
    if beta != 1:
        soft = b.op("div", soft, literal(beta))
    return b.op("select", b.op("gt", bx, literal(threshold)), x, soft)


def _sinc(b, x):
    px = b.op("mul", x, literal(math.pi))
    ratio = b.op("div", b.op("sin", px), px)
    return b.op("select", b.op("eq", x, 0.0), b.const(1.0, x.dtype, "one"), ratio)


def _isinf(b, x):
    if not x.dtype.startswith("f"):
        return _false(b, x)
    b.require("tract_core")
    return b.op("tract_core_is_inf", x, detect_positive=True, detect_negative=True, out_dtype="bool",
                out_shape=x.shape)


def _isfinite(b, x):
    if not x.dtype.startswith("f"):
        return b.op("not", _false(b, x))
    return b.op("eq", b.op("sub", x, x), 0.0)


def _false(b, x):
    """Return a bool tensor of x's shape, all false."""
    return b.op("ne", x, x)


@lower("aten::softplus")
def aten_softplus(b, self, beta=1, threshold=20):
    """softplus(Tensor self, Scalar beta=1, Scalar threshold=20) -> Tensor"""
    return _softplus(b, self, float(beta), float(threshold))


@lower("aten::elu")
def aten_elu(b, self, alpha=1, scale=1, input_scale=1):
    """elu(Tensor self, Scalar alpha=1, Scalar scale=1, Scalar input_scale=1) -> Tensor"""
    x = b.op("mul", self, literal(input_scale)) if input_scale != 1 else self
    negative = b.op("mul", b.op("sub", b.op("exp", x), 1.0), literal(alpha * scale))
    positive = b.op("mul", self, literal(scale)) if scale != 1 else self
    return b.op("select", b.op("gt", self, 0.0), positive, negative)


@lower("aten::celu")
def aten_celu(b, self, alpha=1.0):
    """celu(Tensor self, Scalar alpha=1.0) -> Tensor"""
    negative = b.op("mul", b.op("sub", b.op("exp", b.op("div", self, literal(alpha))), 1.0), literal(alpha))
    return b.op("select", b.op("gt", self, 0.0), self, negative)


@lower("aten::selu")
def aten_selu(b, self):
    """selu(Tensor self) -> Tensor"""
    return aten_elu(b, self, 1.6732632423543772848170429916717, 1.0507009873554804934193349852946)


@lower("aten::logit")
def aten_logit(b, self, eps=None):
    """logit(Tensor self, float? eps=None) -> Tensor"""
    x = self if eps is None else b.op("min", b.op("max", self, literal(eps)), literal(1 - eps))
    return b.op("log", b.op("div", x, b.op("sub", 1.0, x)))


@lower(("aten::hardshrink", "aten::softshrink"))
def aten_hardshrink(b, self, lambd=0.5):
    """hardshrink(Tensor self, Scalar lambd=0.5) -> Tensor"""
    outside = b.op("gt", b.op("abs", self), literal(lambd))
    zero = b.const(0.0, self.dtype, "zero")
    if b.node.target.name() == "aten::hardshrink":
        return b.op("select", outside, self, zero)
    shrunk = b.op("sub", self, b.op("mul", b.op("sign", self), literal(lambd)))
    return b.op("select", outside, shrunk, zero)


@lower("aten::threshold")
def aten_threshold(b, self, threshold, value):
    """threshold(Tensor self, Scalar threshold, Scalar value) -> Tensor"""
    return b.op("select", b.op("gt", self, literal(threshold)), self, b.const(value, self.dtype, "value"))


@lower("aten::atan2")
def aten_atan2(b, self, other):
    """atan2(Tensor self, Tensor other) -> Tensor"""
    y, x = self, other
    # signs read through 1/v, which is -inf for -0: atan2(-0, -0) is -pi and atan2(0, -0) is pi, as torch
    x_negative, y_negative = (b.op("lt", b.op("recip", v), 0.0) for v in (x, y))
    base = b.op("atan", b.op("div", y, x))
    pi = b.op("select", y_negative, b.const(-math.pi, b.out_dtype, "pi"), b.const(math.pi, b.out_dtype, "pi"))
    out = b.op("select", x_negative, b.op("add", base, pi), base)
    both_zero = b.op("and", b.op("eq", x, 0.0), b.op("eq", y, 0.0))
    return b.op("select", both_zero, b.op("select", x_negative, pi, b.op("mul", y, 0.0)), out)


def _float_floor_div(b, a, c):
    """Return floor(a / c) for float operands. tract's f32 div is not correctly rounded (x / x is
    1 - 2^-24 for ~14 % of x), so floor(div(a, c)) can be one off where a / c is an integer: q is
    stepped down where a - q * c has not c's sign, up where it is as large as |c| (a - q * c is
    then in c's half-open range, as torch's remainder). f16 is computed in f32, as torch does (an
    f16 a - q * c rounds onto |c|)."""
    half = b.out_dtype == "f16"
    if half:
        a, c = (b.cast(x, "f32") if hasattr(x, "name") else x for x in (a, c))
    divisor = c if hasattr(c, "name") else b.const(c, "f32" if half else b.out_dtype, "divisor")
    q = b.op("floor", b.op("div", a, divisor))
    zero = _zero(b, q)
    r = b.op("sub", a, b.op("mul", q, divisor))
    wrong_sign = b.op("and", b.op("ne", r, zero), _xor(b, b.op("lt", r, zero), b.op("lt", divisor, zero)))
    too_far = b.op("ge", b.op("abs", r), b.op("abs", divisor))  # |r| == |c| when a / c rounded down to an integer
    q = b.op("select", too_far, b.op("add", q, 1.0), b.op("select", wrong_sign, b.op("sub", q, 1.0), q))
    return b.cast(q, "f16") if half else q


def _floor_div(b, a, c, dtype: str):
    """a // c rounded toward minus infinity, for float or integer operands."""
    if dtype.startswith("f"):
        return _float_floor_div(b, a, c)
    q = b.op("div", a, c)
    # tract's integer division truncates: step down where the remainder's sign differs from the divisor's
    r = b.op("sub", a, b.op("mul", q, c))
    zero = _zero(b, r)
    negative_r = b.op("lt", r, zero)
    differs = _bool_binary(b, "ne", negative_r, b.op("lt", c, zero)) if hasattr(c, "name") else \
        (b.op("not", negative_r) if c < 0 else negative_r)
    fix = b.op("and", b.op("ne", r, zero), differs)
    return b.op("select", fix, b.op("sub", q, 1.0), q)


@lower(("aten::remainder.Tensor", "aten::remainder.Scalar"))
def aten_remainder(b, self, other):
    """remainder.Tensor(Tensor self, Tensor other) -> Tensor"""
    a, c = _operand(self), _operand(other)
    return b.op("sub", a, b.op("mul", _floor_div(b, a, c, b.out_dtype), c))


@lower(("aten::fmod.Tensor", "aten::fmod.Scalar"))
def aten_fmod(b, self, other):
    """fmod.Tensor(Tensor self, Tensor other) -> Tensor"""
    a, c = _operand(self), _operand(other)
    q = b.op("div", a, c)
    return b.op("sub", a, b.op("mul", _trunc(b, q) if b.out_dtype.startswith("f") else q, c))


@lower(("aten::floor_divide", "aten::floor_divide.Scalar"))
def aten_floor_divide(b, self, other):
    """floor_divide(Tensor self, Tensor other) -> Tensor"""
    return _floor_div(b, _operand(self), _operand(other), b.out_dtype)


@lower(("aten::copysign.Tensor", "aten::copysign.Scalar"))
def aten_copysign(b, self, other):
    """copysign.Tensor(Tensor self, Tensor other) -> Tensor"""
    magnitude = b.op("abs", _operand(self))
    other = _operand(other)
    if not hasattr(other, "name"):
        return b.op("neg", magnitude) if other < 0 else magnitude
    return b.op("select", b.op("lt", other, 0.0), b.op("neg", magnitude), magnitude)


@lower(("aten::fmax", "aten::fmin"))
def aten_fmax(b, self, other):
    """fmax(Tensor self, Tensor other) -> Tensor"""
    pick = b.op("max" if b.node.target.name() == "aten::fmax" else "min", self, other)
    if not b.out_dtype.startswith("f"):
        return pick
    b.require("tract_core")
    pick = b.op("select", b.op("tract_core_is_nan", self), other, pick)
    return b.op("select", b.op("tract_core_is_nan", other), self, pick)


@lower(("aten::logical_xor",))
def aten_logical_xor(b, self, other):
    """logical_xor(Tensor self, Tensor other) -> Tensor"""
    return _bool_binary(b, "ne", b.cast(self, "bool"), b.cast(other, "bool"))


@lower(("aten::bitwise_xor.Tensor", "aten::bitwise_xor.Scalar"))
def aten_bitwise_xor(b, self, other):
    """bitwise_xor.Tensor(Tensor self, Tensor other) -> Tensor"""
    return _bitwise(b, "xor", self, other)


@lower(("aten::bitwise_left_shift.Tensor", "aten::bitwise_left_shift.Tensor_Scalar",
        "aten::bitwise_right_shift.Tensor", "aten::bitwise_right_shift.Tensor_Scalar"))
def aten_bitwise_left_shift(b, self, other):
    """bitwise_left_shift.Tensor(Tensor self, Tensor other) -> Tensor"""
    b.require("tract_core")
    op = "tract_shl" if "left" in b.node.target.name() else "tract_shr"
    other = other if hasattr(other, "name") else b.const(other, self.dtype, "shift")
    return b.op(op, self, other)


@lower(("aten::clamp_min", "aten::clamp_min.Tensor"))
def aten_clamp_min(b, self, min):
    """clamp_min(Tensor self, Scalar min) -> Tensor"""
    return b.op("max", self, _operand(min))


@lower(("aten::clamp_max", "aten::clamp_max.Tensor"))
def aten_clamp_max(b, self, max):
    """clamp_max(Tensor self, Scalar max) -> Tensor"""
    return b.op("min", self, _operand(max))


@lower("aten::nan_to_num")
def aten_nan_to_num(b, self, nan=None, posinf=None, neginf=None):
    """nan_to_num(Tensor self, float? nan=None, float? posinf=None, float? neginf=None) -> Tensor"""
    if not self.dtype.startswith("f"):
        return self
    import numpy as np
    info = np.finfo(np.float32 if self.dtype == "f32" else np.float16 if self.dtype == "f16" else np.float64)
    b.require("tract_core")
    out = b.op("select", b.op("tract_core_is_nan", self), b.const(nan or 0.0, self.dtype, "nan"), self)
    out = b.op("select", b.op("eq", self, float("inf")),
               b.const(info.max if posinf is None else posinf, self.dtype, "posinf"), out)
    return b.op("select", b.op("eq", self, float("-inf")),
                b.const(info.min if neginf is None else neginf, self.dtype, "neginf"), out)


@lower("aten::round.decimals")
def aten_round_decimals(b, self, decimals=0):
    """round.decimals(Tensor self, *, int decimals) -> Tensor"""
    b.require("tract_core")
    scale = literal(10.0 ** decimals)
    return b.op("div", b.op("tract_core_round_even", b.op("mul", self, scale)), scale)


@lower("aten::hypot")
def aten_hypot(b, self, other):
    """hypot(Tensor self, Tensor other) -> Tensor"""
    return b.op("sqrt", b.op("add", b.op("mul", self, self), b.op("mul", other, other)))


@lower(("aten::ldexp.Tensor",))
def aten_ldexp(b, self, other):
    """ldexp.Tensor(Tensor self, Tensor other) -> Tensor"""
    return b.op("mul", self, b.op("pow", 2.0, b.cast(other, b.out_dtype)))


@lower("aten::angle")
def aten_angle(b, self):
    """angle(Tensor self) -> Tensor"""
    x = b.cast(self, b.out_dtype)
    angle = b.op("select", b.op("lt", x, 0.0), b.const(math.pi, b.out_dtype, "pi"), b.const(0.0, b.out_dtype, "zero"))
    b.require("tract_core")
    return b.op("select", b.op("tract_core_is_nan", x), x, angle)
