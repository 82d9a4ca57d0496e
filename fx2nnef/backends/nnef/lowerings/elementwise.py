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
    "reciprocal": "recip", "logical_not": "not", "erf": "tract_core_erf", "round": "tract_core_round_even",
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


def _operand(x):
    """Return a tensor operand as is and a Python scalar as a literal."""
    return x if hasattr(x, "name") else literal(x)


@lower(("aten::add.Tensor", "aten::add.Scalar"))
def aten_add(b, self, other, alpha=1):
    """add.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor"""
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
    return b.op("mul", _operand(self), _operand(other))


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
        return b.op("floor", q)
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
            return b.op("sqr", self)
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


@lower(("aten::bitwise_and.Tensor", "aten::bitwise_and.Scalar"))
def aten_bitwise_and(b, self, other):
    """bitwise_and.Tensor(Tensor self, Tensor other) -> Tensor"""
    if b.out_dtype == "bool":
        return _logical(b, "and", self, other)
    b.require("tract_core")
    return b.op("tract_core_bitand", _operand(self), _operand(other))


@lower(("aten::bitwise_or.Tensor", "aten::bitwise_or.Scalar"))
def aten_bitwise_or(b, self, other):
    """bitwise_or.Tensor(Tensor self, Tensor other) -> Tensor"""
    if b.out_dtype == "bool":
        return _logical(b, "or", self, other)
    b.require("tract_core")
    return b.op("tract_core_bitor", _operand(self), _operand(other))


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
