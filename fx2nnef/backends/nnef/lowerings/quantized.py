"""Lowerings of the quantize / dequantize ops of PyTorch's PT2E quantization (`quantized_decomposed`).

A PT2E model (torchao's `prepare_pt2e` / `convert_pt2e`) is float ops between Q/DQ pairs. In tract:
`quantize_per_tensor` is `tract_core_cast` to u8/i8 whose output carries a `graph.quant` entry (tract's
QU8/QI8 types), `dequantize_per_tensor` is the cast back to f32, and a constant weight stays its int8
values: per tensor, a variable with its own `graph.quant` entry; per channel, an int8 variable times
its f32 scales (tract folds both at load). Binary ops never see two quantized operands: they run
on dequantized values whose sum, product or concatenation is quantized again, so tensors of
different parameters are requantized explicitly. With `TractNNEF(int8_kernels=True)`,
FuseQuantizedOpsPass turns convolutions and linears with per-tensor weights into
`fx2nnef::quantized_*` ops, lowered here to tract's `conv` / `linear` on quantized operands with an
i32 bias, whose i32 accumulator (a graph.quant entry of scale input x weight scale) is cast back to
f32 (integer kernels). graph.quant holds 8- and 32-bit types only: any other
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


def _integer_operands(b, input, weight, bias, input_scale, input_zero_point, weight_scale, weight_zero_point):
    """Return (bias as i32 [1, C], the accumulator's QuantParams) for an integer conv/linear, after
    giving the int8 weight its graph.quant entry and checking the input's."""
    expected = QuantParams(float(input_scale), int(input_zero_point), 8, input.dtype == "i8")
    if input.quant != expected:
        raise UnsupportedOpError(f"integer kernel input quantized with {input.quant}, expected {expected}")
    weight.quant = QuantParams(float(weight_scale), int(weight_zero_point), 8, True)
    scale = float(np.float32(input_scale) * np.float32(weight_scale))   # the i32 accumulator's
    channels = weight.shape[0]
    values = np.zeros(channels) if bias is None else np.asarray(bias.data, np.float64) / scale
    label = f"{bias.label}.i32" if bias is not None else f"constants/{weight.label}.bias.i32"
    bias_i32 = b.variable(np.round(values).astype(np.int32).reshape(1, channels), b.fresh("bias_i32"), label)
    return bias_i32, QuantParams(scale, 0, 32, True)


@lower("fx2nnef::quantized_convolution")
def fx2nnef_quantized_convolution(b, input, weight, bias, stride, padding, dilation, groups, input_scale,
                                  input_zero_point, weight_scale, weight_zero_point):
    """quantized_convolution(Tensor input, Tensor weight, Tensor? bias, int[] stride, int[] padding, int[] dilation, int groups, float input_scale, int input_zero_point, float weight_scale, int weight_zero_point) -> Tensor"""
    bias_i32, accumulator = _integer_operands(b, input, weight, bias, input_scale, input_zero_point, weight_scale,
                                              weight_zero_point)
    spatial = input.rank - 2
    out = b.op("conv", input, weight, bias_i32, border="constant",
               padding=[(p, p) for p in list(padding) * (spatial // len(padding))],
               stride=list(stride) * (spatial // len(stride)), dilation=list(dilation) * (spatial // len(dilation)),
               groups=groups, out_dtype="i32", out_shape=b.shape_of(b.out))
    out.quant = accumulator
    return b.cast(out, b.out_dtype)


@lower("fx2nnef::quantized_linear")
def fx2nnef_quantized_linear(b, input, weight, bias, input_scale, input_zero_point, weight_scale, weight_zero_point):
    """quantized_linear(Tensor input, Tensor weight, Tensor? bias, float input_scale, int input_zero_point, float weight_scale, int weight_zero_point) -> Tensor"""
    bias_i32, accumulator = _integer_operands(b, input, weight, bias, input_scale, input_zero_point, weight_scale,
                                              weight_zero_point)
    rows = input if input.rank == 2 else b.op("reshape", input, shape=[-1, input.shape[-1]])  # tract's linear takes a matrix
    out = b.op("linear", rows, weight, bias_i32, out_dtype="i32")
    out.quant = accumulator
    out = b.cast(out, b.out_dtype)
    return out if input.rank == 2 else b.op("reshape", out, shape=list(b.shape_of(b.out)))
