"""Lowerings of the quantize / dequantize ops of PyTorch's PT2E quantization (`quantized_decomposed`).

A PT2E model (torchao's `prepare_pt2e` / `convert_pt2e`) is float ops between Q/DQ pairs. In tract:
`quantize_per_tensor` is `tract_core_cast` to u8/i8 whose output carries a `graph.quant` entry (tract's
QU8/QI8 types), `dequantize_per_tensor` is the cast back to f32, and a constant weight stays its int8
values: per tensor, a variable with its own `graph.quant` entry; per channel, an int8 variable times
its f32 scales (tract folds both at load). graph.quant holds 8- and 32-bit types only: any other
width (a 4-bit torch.uint4 / quint4x2 activation) would abort tract's loader, and is refused here.
"""
from __future__ import annotations

import numpy as np
import torch

from ....errors import UnsupportedOpError
from ..graph import QuantParams, Tensor
from ..registry import lower

# torch dtype of the quantized values -> (bits, signed, full range)
QUANTIZED_DTYPES = {
    torch.uint8: (8, False, (0, 255)),
    torch.int8: (8, True, (-128, 127)),
    torch.int32: (32, True, (-2**31, 2**31 - 1)),
}


def _scalar(b, value, what: str) -> float:
    """Return a quantization parameter known at export time (a literal or a one-element constant)."""
    if isinstance(value, Tensor):
        if value.data is None:
            raise UnsupportedOpError(
                f"the {what} is computed at run time (dynamic quantization): tract's graph.quant needs "
                "constants. Quantize the activations statically (PT2E with a calibrated static config)")
        array = np.asarray(value.data)
        if array.size != 1:
            raise UnsupportedOpError(f"the {what} has {array.size} values where one is expected")
        return array.reshape(()).item()
    return value


def quant_params(b, scale, zero_point, dtype) -> QuantParams:
    """Return tract's quantization of values stored as `dtype` with this scale and zero point."""
    if dtype not in QUANTIZED_DTYPES:
        raise UnsupportedOpError(
            f"quantized values of dtype {dtype}: tract's graph.quant has 8-bit (u8, i8) and 32-bit types only "
            "(a 4- or 16-bit entry aborts its loader); quantize activations to torch.uint8 or torch.int8")
    bits, signed, _ = QUANTIZED_DTYPES[dtype]
    return QuantParams(float(_scalar(b, scale, "scale")), int(_scalar(b, zero_point, "zero point")), bits, signed)


def _clamped(b, input: Tensor, params: QuantParams, quant_min: int, quant_max: int, dtype) -> Tensor:
    """Return `input` clamped in float to what the codes [quant_min, quant_max] represent, when that
    range is narrower than the dtype's (tract's cast saturates at the dtype's range only)."""
    low, high = QUANTIZED_DTYPES[dtype][2]
    if quant_min > low:
        input = b.op("max", input, float(np.float32((quant_min - params.zero_point) * params.scale)))
    if quant_max < high:
        input = b.op("min", input, float(np.float32((quant_max - params.zero_point) * params.scale)))
    return input


def _quantize(b, input, scale, zero_point, quant_min, quant_max, dtype):
    params = quant_params(b, scale, zero_point, dtype)
    b.require("tract_core")
    out = b.op("tract_core_cast", _clamped(b, input, params, _scalar(b, quant_min, "quant_min"),
                                            _scalar(b, quant_max, "quant_max"), dtype), to=params.dtype)
    out.quant = params
    return out


def _dequantize(b, input, scale, zero_point, dtype):
    params = quant_params(b, scale, zero_point, dtype)
    if input.quant is None and input.data is not None:   # a constant: the archive keeps its integers
        input.quant = params
    elif input.quant is None:
        raise UnsupportedOpError(f"dequantizes a {input.dtype} tensor that no quantize_per_tensor produced")
    elif input.quant != params:
        raise UnsupportedOpError(f"dequantizes with {params} a tensor quantized with {input.quant}")
    return b.cast(input, b.out_dtype)


@lower("quantized_decomposed::quantize_per_tensor")
def quantized_decomposed_quantize_per_tensor(b, input, scale, zero_point, quant_min, quant_max, dtype):
    """quantize_per_tensor(Tensor input, float scale, int zero_point, int quant_min, int quant_max, ScalarType dtype) -> Tensor"""
    return _quantize(b, input, scale, zero_point, quant_min, quant_max, dtype)


@lower("quantized_decomposed::quantize_per_tensor.tensor")
def quantized_decomposed_quantize_per_tensor_tensor(b, input, scale, zero_point, quant_min, quant_max, dtype):
    """quantize_per_tensor.tensor(Tensor input, Tensor scale, Tensor zero_point, int quant_min, int quant_max, ScalarType dtype) -> Tensor"""
    return _quantize(b, input, scale, zero_point, quant_min, quant_max, dtype)


@lower("quantized_decomposed::dequantize_per_tensor")
def quantized_decomposed_dequantize_per_tensor(b, input, scale, zero_point, quant_min, quant_max, dtype,
                                               out_dtype=None):
    """dequantize_per_tensor(Tensor input, float scale, int zero_point, int quant_min, int quant_max, ScalarType dtype, *, ScalarType? out_dtype=None) -> Tensor"""
    return _dequantize(b, input, scale, zero_point, dtype)


@lower("quantized_decomposed::dequantize_per_tensor.tensor")
def quantized_decomposed_dequantize_per_tensor_tensor(b, input, scale, zero_point, quant_min, quant_max, dtype,
                                                      out_dtype=None):
    """dequantize_per_tensor.tensor(Tensor input, Tensor scale, Tensor zero_point, int quant_min, int quant_max, ScalarType dtype, *, ScalarType? out_dtype=None) -> Tensor"""
    return _dequantize(b, input, scale, zero_point, dtype)


@lower("quantized_decomposed::dequantize_per_channel")
def quantized_decomposed_dequantize_per_channel(b, input, scales, zero_points, axis, quant_min, quant_max, dtype,
                                                out_dtype=None):
    """dequantize_per_channel(Tensor input, Tensor scales, Tensor? zero_points, int axis, int quant_min, int quant_max, ScalarType dtype, *, ScalarType? out_dtype=None) -> Tensor"""
    if dtype not in QUANTIZED_DTYPES or input.quant is not None:
        raise UnsupportedOpError(f"per-channel dequantization of {dtype} values{' from a quantized tensor' if input.quant else ''}: "
                                 "tract runs it on int8/uint8 constants (PT2E's per-channel weights)")
    rank = input.rank
    axis = axis % rank
    shape = [1] * rank
    shape[axis] = input.shape[axis]
    values = b.cast(input, "f32")                        # the integers themselves: no graph.quant entry
    if zero_points is not None and (zero_points.data is None or np.any(np.asarray(zero_points.data) != 0)):
        values = b.op("sub", values, b.op("reshape", b.cast(zero_points, "f32"), shape=shape))
    out = b.op("mul", values, b.op("reshape", b.cast(scales, "f32"), shape=shape))
    return b.cast(out, b.out_dtype)
