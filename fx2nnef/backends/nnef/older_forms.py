"""Older forms: what to emit instead of an operator the targeted tract release cannot read.

`Builder.op` looks an operator up here when `versions.supports(target, op)` is false: each
function takes the builder and the operator's arguments and emits the same computation with
operators that older releases read. An operator with no older form is a LoweringError naming
it and the first release that reads it.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

OLDER_FORMS: dict[str, Callable[..., Any]] = {}


def older_form(*operators: str):
    """Register the decorated function as the older form of `operators`."""
    def register(function):
        for operator in operators:
            OLDER_FORMS[operator] = function
        return function
    return register


@older_form("tract_core_silu")
def silu(b, x, **_):
    """x * sigmoid(x)."""
    return b.op("mul", x, b.op("sigmoid", x))


@older_form("tract_core_gelu_approx")
def gelu_approx(b, x, **_):
    """0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))."""
    cube = b.op("mul", b.op("mul", x, x), x)
    inner = b.op("mul", b.op("add", x, b.op("mul", cube, 0.044715)), math.sqrt(2 / math.pi))
    return b.op("mul", b.op("mul", x, 0.5), b.op("add", b.op("tanh", inner), 1.0))


@older_form("tract_core_rms_norm")
def rms_norm(b, x, axis, eps, **_):
    """x / sqrt(mean(x^2 over axis) + eps)."""
    mean_square = b.op("mean_reduce", b.op("mul", x, x), axes=[axis])
    return b.op("mul", x, b.op("rsqrt", b.op("add", mean_square, eps)))


@older_form("tract_core_is_nan")
def is_nan(b, x, **_):
    """x != x."""
    return b.op("ne", x, x, out_dtype="bool")


@older_form("tract_core_is_inf")
def is_inf(b, x, detect_positive=True, detect_negative=True, **_):
    """x == +inf and/or x == -inf."""
    tests = [b.op("eq", x, b.const(sign * np.inf, x.dtype, "inf"), out_dtype="bool")
             for sign, wanted in ((1, detect_positive), (-1, detect_negative)) if wanted]
    if not tests:  # nothing to detect: always false
        return b.op("lt", x, b.const(-np.inf, x.dtype, "inf"), out_dtype="bool")
    return tests[0] if len(tests) == 1 else b.op("or", *tests, out_dtype="bool")


@older_form("tract_core_log_softmax")
def log_softmax(b, x, axes, **_):
    """(x - max) - log(sum(exp(x - max))) over `axes`."""
    shifted = b.op("sub", x, b.op("max_reduce", x, axes=axes))
    return b.op("sub", shifted, b.op("log", b.op("sum_reduce", b.op("exp", shifted), axes=axes)))


@older_form("any_reduce")
def any_reduce(b, x, axes, **_):
    """sum(x as f32) != 0 over `axes` (false on an empty axis, like any)."""
    return b.op("ne", b.op("sum_reduce", b.cast(x, "f32"), axes=axes), 0.0, out_dtype="bool")


@older_form("all_reduce")
def all_reduce(b, x, axes, **_):
    """sum(not x as f32) == 0 over `axes` (true on an empty axis, like all)."""
    return b.op("eq", b.op("sum_reduce", b.cast(b.op("not", x), "f32"), axes=axes), 0.0, out_dtype="bool")


@older_form("copy")
def copy(b, x, **_):
    """squeeze(unsqueeze(x)): a new tensor equal to x, of any dtype."""
    return b.op("squeeze", b.op("unsqueeze", x, axes=[0]), axes=[0], out_dtype=x.dtype, out_shape=x.shape)


@older_form("tract_core_resize")
def resize(b, *args, **attribs):
    """tract_onnx_resize: the same operator, in the tract_onnx registry before tract 0.23.3."""
    b.require("tract_onnx")
    return b.op("tract_onnx_resize", *args, **attribs)


@older_form("tract_core_grid_sample")
def grid_sample(b, *args, **attribs):
    """tract_onnx_grid_sample: the same operator, in the tract_onnx registry before tract 0.23.3."""
    b.require("tract_onnx")
    return b.op("tract_onnx_grid_sample", *args, **attribs)
