"""What standard (Khronos) NNEF 1.0.5 offers: its operations, its three types, and the fragments
fx2nnef defines for the KhronosNNEF target. No torch import.

Standard NNEF has no concrete dtypes: a tensor is `scalar` (real), `integer` or `logical`.
Arithmetic, comparisons, reductions and activations take `tensor<scalar>` only; data-movement
ops (reshape, slice, concat, gather, select, ...) are generic and take any of the three.
"""
from __future__ import annotations

# the operations of the NNEF 1.0.5 standard library
STANDARD_OPS = frozenset({
    "external", "variable", "constant", "update", "reshape", "transpose", "concat", "split", "slice",
    "squeeze", "unsqueeze", "stack", "unstack", "tile", "pad", "gather", "cast",
    "add", "sub", "mul", "div", "pow", "exp", "log", "sin", "cos", "tan", "sinh", "cosh", "tanh", "asin",
    "acos", "atan", "asinh", "acosh", "atanh", "abs", "sign", "rcp", "neg", "copy",
    "lt", "gt", "le", "ge", "eq", "ne", "and", "or", "not", "floor", "ceil", "round", "select",
    "sqr", "sqrt", "rsqr", "rsqrt", "log2", "min", "max", "clamp", "matmul",
    "conv", "deconv", "box", "debox", "argmax_pool", "sample", "desample",
    "nearest_downsample", "area_downsample", "nearest_upsample", "multilinear_upsample",
    "sum_reduce", "max_reduce", "min_reduce", "argmax_reduce", "argmin_reduce", "any_reduce", "all_reduce",
    "mean_reduce", "moments", "relu", "sigmoid", "softabs", "softmax", "softplus", "elu", "selu", "gelu",
    "silu", "prelu", "leaky_relu", "max_pool_with_index", "max_pool", "avg_pool", "rms_pool",
    "linear", "separable_conv", "separable_deconv", "local_response_normalization",
    "local_mean_normalization", "local_variance_normalization", "local_contrast_normalization",
    "l1_normalization", "l2_normalization", "batch_normalization",
    "avg_roi_pool", "max_roi_pool", "roi_resample", "avg_roi_align", "max_roi_align",
    "add_n", "copy_n", "avg_unpool", "max_unpool",
})
# standard ops that accept tensors of any type; every other one takes scalar or logical tensors
GENERIC_OPS = frozenset({
    "external", "variable", "constant", "update", "reshape", "transpose", "concat", "split", "slice",
    "squeeze", "unsqueeze", "stack", "unstack", "tile", "gather", "cast", "copy", "select", "copy_n",
})
# NNEF keywords and type names: not usable as tensor names
KEYWORDS = frozenset({
    "version", "extension", "fragment", "graph", "tensor", "integer", "scalar", "logical", "string",
    "true", "false", "for", "in", "if", "else", "yield", "length_of", "shape_of", "range_of",
})
LOGICAL_OPS = frozenset({"and", "or", "not", "any_reduce", "all_reduce"})

# Khronos fragments fx2nnef defines (name -> text); they need KHR_enable_fragment_definitions
ERF_FRAGMENT = """fragment erf( x: tensor<scalar> ) -> ( y: tensor<scalar> )
{
    # Abramowitz & Stegun 7.1.26, absolute error below 1.5e-7
    t = rcp(add(1.0, mul(0.3275911, abs(x))));
    p = mul(t, add(0.254829592, mul(t, add(-0.284496736, mul(t, add(1.421413741,
        mul(t, add(-1.453152027, mul(t, 1.061405429)))))))));
    y = mul(sign(x), sub(1.0, mul(p, exp(neg(sqr(x))))));
}"""
FRAGMENT_EXTENSION = "KHR_enable_fragment_definitions"


def khronos_type(dtype: str) -> str:
    """Return the standard NNEF type of a tract datum type: 'scalar', 'integer' or 'logical'."""
    if dtype == "bool":
        return "logical"
    if dtype.startswith("f"):
        return "scalar"
    return "integer"
