"""Neural-network lowerings: linear algebra, normalization, softmax, convolution, pooling."""
from __future__ import annotations

import functools
import re

import numpy as np

from ..registry import lower
from .common import axis, extreme, lift, literal


def _matmul(b, a, w, transpose_b: bool = False):
    """Emit a batched matmul, lifting 1-D operands and equalizing ranks as torch.matmul does."""
    squeeze = []
    if a.rank == 1:
        a = b.op("unsqueeze", a, axes=[0])
        squeeze.append(-2)
    if w.rank == 1:
        w = b.op("unsqueeze", w, axes=[1])
        squeeze.append(-1)
    rank = max(a.rank, w.rank)
    out = b.op("matmul", lift(b, a, rank), lift(b, w, rank), transposeB=transpose_b)
    if squeeze:
        out = b.op("squeeze", out, axes=sorted(axis(d, rank) for d in squeeze))
    return out


@lower("aten::linear")
def aten_linear(b, input, weight, bias=None):
    """linear(Tensor input, Tensor weight, Tensor? bias=None) -> Tensor"""
    if input.rank == 1:
        out = _matmul(b, input, b.op("transpose", weight, axes=[1, 0]) if weight.rank == 2 else weight)
    else:
        out = b.op("matmul", input, lift(b, weight, input.rank), transposeB=True)
    return b.op("add", out, bias) if bias is not None else out


@lower("aten::matmul")
def aten_matmul(b, self, other):
    """matmul(Tensor self, Tensor other) -> Tensor"""
    return _matmul(b, self, other)


@lower(("aten::mm", "aten::bmm"))
def aten_bmm(b, self, mat2):
    """bmm(Tensor self, Tensor mat2) -> Tensor"""
    return _matmul(b, self, mat2)


@lower("aten::baddbmm")
def aten_baddbmm(b, self, batch1, batch2, beta=1, alpha=1):
    """baddbmm(Tensor self, Tensor batch1, Tensor batch2, *, Scalar beta=1, Scalar alpha=1) -> Tensor"""
    return aten_addmm(b, self, batch1, batch2, beta, alpha)


@lower("aten::addmm")
def aten_addmm(b, self, mat1, mat2, beta=1, alpha=1):
    """addmm(Tensor self, Tensor mat1, Tensor mat2, *, Scalar beta=1, Scalar alpha=1) -> Tensor"""
    return _add_scaled(b, b.op("matmul", mat1, mat2, out_shape=tuple(b.shape_of(b.out))), self, beta, alpha)


def _add_scaled(b, product, self, beta, alpha):
    """Return beta * self + alpha * product (the epilogue of addmm, addmv, addbmm, baddbmm)."""
    if alpha != 1:
        product = b.op("mul", product, literal(alpha))
    if beta == 0:
        return product
    return b.op("add", product, self if beta == 1 else b.op("mul", self, literal(beta)))


@lower("aten::addmv")
def aten_addmv(b, self, mat, vec, beta=1, alpha=1):
    """addmv(Tensor self, Tensor mat, Tensor vec, *, Scalar beta=1, Scalar alpha=1) -> Tensor"""
    return _add_scaled(b, _matmul(b, mat, vec), self, beta, alpha)


@lower("aten::addbmm")
def aten_addbmm(b, self, batch1, batch2, beta=1, alpha=1):
    """addbmm(Tensor self, Tensor batch1, Tensor batch2, *, Scalar beta=1, Scalar alpha=1) -> Tensor"""
    products = b.op("matmul", batch1, batch2)
    return _add_scaled(b, b.op("squeeze", b.op("sum_reduce", products, axes=[0]), axes=[0]), self, beta, alpha)


@lower("aten::layer_norm")
def aten_layer_norm(b, input, normalized_shape, weight=None, bias=None, eps=1e-5, cudnn_enable=True):
    """layer_norm(Tensor input, SymInt[] normalized_shape, Tensor? weight=None, Tensor? bias=None, float eps=1e-05, bool cudnn_enable=True) -> Tensor"""
    return aten_native_layer_norm(b, input, normalized_shape, weight, bias, eps)[0]


def _moments(b, x, ax, eps):
    """Return ((x - mean) / sqrt(var + eps), mean, 1 / sqrt(var + eps)) of x over the axes `ax`
    (biased variance), in x's dtype. f16 statistics are computed in f32, as torch does: the
    squares of f16 values overflow f16 from |x - mean| > 256 (a group norm of f16 activations
    of magnitude ~300 gave zeros)."""
    dtype = x.dtype
    x = b.cast(x, "f32") if dtype == "f16" else x
    mean = b.op("mean_reduce", x, axes=ax)
    centered = b.op("sub", x, mean)
    rstd = _rsqrt_mean_square(b, centered, ax, eps)
    return tuple(b.cast(t, dtype) for t in (b.op("mul", centered, rstd), mean, rstd))


def _rsqrt_mean_square(b, x, ax, eps):
    """Return 1 / sqrt(mean(x², ax) + eps), keeping the reduced axes."""
    return b.op("rsqrt", b.op("add", b.op("mean_reduce", b.op("sqr", x), axes=ax), literal(eps)))


@lower(("aten::softmax.int", "aten::_softmax"))
def aten_softmax(b, self, dim, dtype=None, half_to_float=False):
    """softmax.int(Tensor self, int dim, ScalarType? dtype=None) -> Tensor
    _softmax(Tensor self, int dim, bool half_to_float) -> Tensor"""
    x = b.cast(self, b.out_dtype)
    return b.op("softmax", x, axes=[axis(dim, self.rank)])


@lower(("aten::log_softmax.int", "aten::_log_softmax"))
def aten_log_softmax(b, self, dim, dtype=None, half_to_float=False):
    """log_softmax.int(Tensor self, int dim, ScalarType? dtype=None) -> Tensor
    _log_softmax(Tensor self, int dim, bool half_to_float) -> Tensor"""
    x = b.cast(self, b.out_dtype)
    ax = [axis(dim, self.rank)]
    if b.khronos:  # x - max - log(sum(exp(x - max)))
        shifted = b.op("sub", x, b.op("max_reduce", x, axes=ax))
        return b.op("sub", shifted, b.op("log", b.op("sum_reduce", b.op("exp", shifted), axes=ax)))
    b.require("tract_core")
    return b.op("tract_core_log_softmax", x, axes=ax)


@lower("aten::convolution")
def aten_convolution(b, input, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    """convolution(Tensor input, Tensor weight, Tensor? bias, SymInt[] stride, SymInt[] padding, SymInt[] dilation, bool transposed, SymInt[] output_padding, SymInt groups) -> Tensor"""
    spatial = input.rank - 2
    stride, dilation = list(stride) * (spatial // len(stride)), list(dilation) * (spatial // len(dilation))
    pads = [(p, p) for p in list(padding) * (spatial // len(padding))]
    bias_arg = b.op("unsqueeze", bias, axes=[0]) if bias is not None else 0.0
    if not transposed:
        if weight.data is None and isinstance(weight.shape, tuple) and all(isinstance(d, int) for d in weight.shape):
            # a computed filter ends with a reshape: tract 0.23.9 misreads a filter made by unsqueeze
            # (Mamba's conv1d.weight.view(C, K).unsqueeze(1) gives wrong outputs)
            weight = b.op("reshape", weight, shape=list(weight.shape))
        return b.op("conv", input, weight, bias_arg, border="constant", padding=pads, stride=stride,
                    dilation=dilation, groups=groups)
    # torch's deconv filter is [C_in, C_out/g, k...]; NNEF wants [C_out, C_in/g, k...] per group
    c_in, c_out_g = weight.shape[0], weight.shape[1]
    k = list(weight.shape[2:])
    w = b.op("reshape", weight, shape=[groups, c_in // groups, c_out_g] + k)
    w = b.op("transpose", w, axes=[0, 2, 1] + list(range(3, 3 + spatial)))
    w = b.op("reshape", w, shape=[groups * c_out_g, c_in // groups] + k)
    out_spatial = [int(d) for d in b.shape_of(b.out)[2:]]
    return b.op("deconv", input, w, bias_arg, border="constant", padding=pads, stride=stride,
                dilation=dilation, groups=groups, output_shape=out_spatial)


def _pool_padding(input, kernel, stride, padding, dilation, ceil_mode):
    """Return full-rank (before, after) pads; ceil_mode adds what the last partial window needs."""
    pads = [(0, 0), (0, 0)]
    for i, (k, s, p, d) in enumerate(zip(kernel, stride, padding, dilation)):
        size = input.shape[2 + i]
        after = p
        if ceil_mode:
            span = size + 2 * p - d * (k - 1) - 1
            out = -(-span // s) + 1
            if (out - 1) * s >= size + p:
                out -= 1
            after = max(p, (out - 1) * s + d * (k - 1) + 1 - size - p)
        pads.append((p, after))
    return pads


def _expand(value, n):
    value = list(value) if isinstance(value, (list, tuple)) else [value]
    return value * (n // len(value)) if value else []


def _spatial_rank(b) -> int:
    """Return how many spatial axes the current pooling node has (1, 2 or 3: its name says)."""
    return int(re.search(r"pool(\d)d", b.node.target.name()).group(1))


def _batched(b, x, spatial: int):
    """Return x with leading unit axes up to rank spatial + 2, and how many were added: tract's
    pools read axes 0 and 1 as N and C (an unbatched (C, L) input is not (N, C): a pool on a rank-2
    tensor aborts tract's run)."""
    return lift(b, x, spatial + 2), max(spatial + 2 - x.rank, 0)


def _unbatched(b, y, added: int):
    """Undo `_batched` on a pool's result."""
    return b.op("squeeze", y, axes=list(range(added))) if added else y


@lower(("aten::max_pool2d", "aten::max_pool1d", "aten::max_pool3d"))
def aten_max_pool2d(b, self, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    """max_pool2d(Tensor self, int[2] kernel_size, int[2] stride=[], int[2] padding=0, int[2] dilation=1, bool ceil_mode=False) -> Tensor"""
    n = _spatial_rank(b)
    x, added = _batched(b, self, n)
    kernel = _expand(kernel_size, n)
    stride = _expand(stride, n) or kernel
    padding, dilation = _expand(padding, n), _expand(dilation, n)
    pads = _pool_padding(x, kernel, stride, padding, dilation, ceil_mode)
    return _unbatched(b, b.op("max_pool", x, size=[1, 1] + kernel, border="ignore", padding=pads,
                              stride=[1, 1] + stride, dilation=[1, 1] + dilation), added)


@lower(("aten::avg_pool2d", "aten::avg_pool1d", "aten::avg_pool3d"))
def aten_avg_pool2d(b, self, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
                    divisor_override=None):
    """avg_pool2d(Tensor self, int[2] kernel_size, int[2] stride=[], int[2] padding=0, bool ceil_mode=False, bool count_include_pad=True, int? divisor_override=None) -> Tensor"""
    n = _spatial_rank(b)
    x, added = _batched(b, self, n)
    kernel = _expand(kernel_size, n)
    stride = _expand(stride, n) or kernel
    padding = _expand(padding, n)
    pads = _pool_padding(x, kernel, stride, padding, [1] * n, ceil_mode)
    out_shape = (1,) * added + b.shape_of(b.out)
    if divisor_override:
        total = b.op("box", x, size=[1, 1] + kernel, border="constant", padding=pads, stride=[1, 1] + stride,
                     out_shape=out_shape)
        return _unbatched(b, b.op("div", total, literal(divisor_override)), added)
    if count_include_pad and any(p[1] != p[0] for p in pads):  # windows past the padding count only the padding
        total = b.op("box", x, size=[1, 1] + kernel, border="constant", padding=pads, stride=[1, 1] + stride,
                     out_shape=out_shape)
        divisors = _ceil_mode_divisors(out_shape[2:], x.shape[2:], kernel, stride, padding)
        return _unbatched(b, b.op("div", total, b.const(divisors, self.dtype, "pool_divisors")), added)
    return _unbatched(b, b.op("avg_pool", x, size=[1, 1] + kernel, border="constant" if count_include_pad else "ignore",
                              padding=pads, stride=[1, 1] + stride), added)


def _ceil_mode_divisors(out, size, kernel, stride, padding) -> np.ndarray:
    """Return torch's avg_pool divisor per output position with count_include_pad: the window's
    extent clipped to the padded input (ceil_mode windows may reach past it)."""
    if not all(isinstance(d, int) for d in (*out, *size)):
        raise NotImplementedError("avg_pool with ceil_mode and count_include_pad on symbolic sizes")
    extents = [np.minimum(np.arange(o) * s - p + k, n + p) - (np.arange(o) * s - p)
               for o, n, k, s, p in zip(out, size, kernel, stride, padding)]
    return functools.reduce(np.multiply.outer, extents).astype(np.float64)


@lower(("aten::adaptive_avg_pool2d", "aten::adaptive_avg_pool1d", "aten::_adaptive_avg_pool2d",
        "aten::adaptive_avg_pool3d", "aten::_adaptive_avg_pool3d"))
def aten_adaptive_avg_pool2d(b, self, output_size):
    """adaptive_avg_pool2d(Tensor self, SymInt[2] output_size) -> Tensor"""
    n = len(output_size)
    first = self.rank - n
    spatial = list(self.shape[first:])
    out = [s if o is None else o for s, o in zip(spatial, output_size)]
    if all(o == 1 for o in out):
        return b.op("mean_reduce", self, axes=list(range(first, self.rank)))
    if spatial == out:
        return self
    if not any(s % o for s, o in zip(spatial, out)):
        kernel = [s // o for s, o in zip(spatial, out)]
        x, added = _batched(b, self, n)
        first = x.rank - n
        return _unbatched(b, b.op("avg_pool", x, size=[1] * first + kernel, border="constant",
                                  padding=[(0, 0)] * x.rank, stride=[1] * first + kernel), added)
    x = self
    for i, (size, o) in enumerate(zip(spatial, out)):  # uneven windows: one averaging matrix per axis
        x = _average_axis(b, x, first + i, _window_matrix(size, o))
    return x


def _window_matrix(size: int, out: int) -> np.ndarray:
    """Return the [size, out] matrix averaging torch's adaptive windows [floor(i*s/o), ceil((i+1)*s/o))."""
    matrix = np.zeros((size, out))
    for i in range(out):
        lo, hi = (i * size) // out, -(-((i + 1) * size) // out)
        matrix[lo:hi, i] = 1.0 / (hi - lo)
    return matrix


def _average_axis(b, x, d: int, matrix: np.ndarray):
    """Contract axis d of x with `matrix` ([size, out]) and put the result back on axis d."""
    perm = [a for a in range(x.rank) if a != d] + [d]
    moved = b.op("transpose", x, axes=perm) if d != x.rank - 1 else x
    weights = b.const(matrix, x.dtype, "windows")
    weights = b.op("unsqueeze", weights, axes=list(range(x.rank - 2))) if x.rank > 2 else weights
    if x.rank == 1:
        moved = b.op("unsqueeze", moved, axes=[0])
    out = b.op("matmul", moved, weights)
    if x.rank == 1:
        return b.op("squeeze", out, axes=[0])
    back = [perm.index(a) for a in range(x.rank)]
    return b.op("transpose", out, axes=back) if d != x.rank - 1 else out


@lower("aten::_native_batch_norm_legit_no_training")
def aten__native_batch_norm_legit_no_training(b, input, weight, bias, running_mean, running_var, momentum, eps):
    """_native_batch_norm_legit_no_training(Tensor input, Tensor? weight, Tensor? bias, Tensor running_mean, Tensor running_var, float momentum, float eps) -> (Tensor, Tensor, Tensor)"""
    per_channel = [input.shape[1]] + [1] * (input.rank - 2)
    known = [running_mean, running_var] + [t for t in (weight, bias) if t is not None]
    if all(t.data is not None for t in known):  # fold to one scale and shift, which tract fuses into a conv
        scale = 1.0 / np.sqrt(np.asarray(running_var.data, np.float64) + eps)
        if weight is not None:
            scale = scale * np.asarray(weight.data, np.float64)
        shift = -np.asarray(running_mean.data, np.float64) * scale
        if bias is not None:
            shift = shift + np.asarray(bias.data, np.float64)
        out = b.op("mul", input, b.const(scale.reshape(per_channel), input.dtype, "bn_scale"))
        return b.op("add", out, b.const(shift.reshape(per_channel), input.dtype, "bn_shift")), None, None

    def channel(t):
        return b.op("reshape", t, shape=[t.shape[0]] + [1] * (input.rank - 2))
    out = b.op("mul", b.op("sub", input, channel(running_mean)),
               channel(b.op("rsqrt", b.op("add", running_var, literal(eps)))))
    if weight is not None:
        out = b.op("mul", out, channel(weight))
    if bias is not None:
        out = b.op("add", out, channel(bias))
    return out, None, None


@lower("aten::rms_norm")
def aten_rms_norm(b, input, normalized_shape, weight=None, eps=None):
    """rms_norm(Tensor input, SymInt[] normalized_shape, Tensor? weight=None, float? eps=None) -> Tensor"""
    if eps is None:
        eps = float(np.finfo(np.float16 if input.dtype == "f16" else np.float32).eps)
    ax = list(range(input.rank - len(normalized_shape), input.rank))
    x = b.cast(input, "f32") if input.dtype == "f16" else input  # as torch: squares of f16 overflow from 256
    if b.khronos or len(ax) != 1:
        out = b.op("mul", x, _rsqrt_mean_square(b, x, ax, eps))
    else:
        out = b.op("tract_core_rms_norm", x, axis=ax[0], eps=literal(eps), out_dtype=x.dtype, out_shape=x.shape)
    out = b.cast(out, input.dtype)
    return out if weight is None else b.op("mul", out, weight)


@lower("aten::batch_norm")
def aten_batch_norm(b, input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled):
    """batch_norm(Tensor input, Tensor? weight, Tensor? bias, Tensor? running_mean, Tensor? running_var, bool training, float momentum, float eps, bool cudnn_enabled) -> Tensor"""
    if not training:
        return aten__native_batch_norm_legit_no_training(b, input, weight, bias, running_mean, running_var,
                                                         momentum, eps)[0]
    # batch statistics (track_running_stats=False; updates of running stats never reach here: they
    # are mutations, which DecomposePass functionalizes away from this op)
    return _batch_statistics_norm(b, input, weight, bias, eps)[0]


def _batch_statistics_norm(b, input, weight, bias, eps):
    """Return (normalized input, mean, 1 / std) with statistics over the batch and spatial axes,
    the statistics keeping unit axes."""
    out, mean, rstd = _moments(b, input, [0] + list(range(2, input.rank)), eps)
    per_channel = [input.shape[1]] + [1] * (input.rank - 2)
    if weight is not None:
        out = b.op("mul", out, b.op("reshape", weight, shape=per_channel))
    if bias is not None:
        out = b.op("add", out, b.op("reshape", bias, shape=per_channel))
    return out, mean, rstd


def _window_max(b, x, positions: list[np.ndarray], indices: bool):
    """Max over windows of the last len(positions) axes of x, and (if `indices`) where each max is, as a
    flat index into those axes. positions[i] is an [out_i, k_i] table of input positions along spatial
    axis i, -1 outside the input. One gather takes every window from the flattened input, padded with
    one smallest-value slot for the positions outside."""
    n = len(positions)
    lead = x.rank - n
    spatial = list(x.shape[lead:])
    if not all(isinstance(d, int) for d in spatial):
        raise NotImplementedError("pooling with indices (or adaptive max pooling) needs static spatial dims")
    size = int(np.prod(spatial))
    flat_index = np.zeros([p.shape[0] for p in positions] + [p.shape[1] for p in positions], np.int64)
    outside = np.zeros(flat_index.shape, bool)
    for i, p in enumerate(positions):  # out axes first, then kernel axes
        shape = [1] * (2 * n)
        shape[i], shape[n + i] = p.shape
        flat_index = flat_index * spatial[i] + p.reshape(shape)
        outside |= (p < 0).reshape(shape)
    table = np.where(outside, size, flat_index).reshape([p.shape[0] for p in positions] + [-1])
    flat = b.op("reshape", x, shape=[0] * lead + [size], out_shape=tuple(x.shape[:lead]) + (size,))
    padded = b.op("pad", flat, padding=[(0, 0)] * lead + [(0, 1)], border="constant",
                  value=literal(extreme(x.dtype, False)), out_shape=tuple(x.shape[:lead]) + (size + 1,),
                  out_dtype=x.dtype)
    b.require("tract_core")
    windows = b.op("tract_core_gather", padded, b.const(table, "i64", "windows"), axis=lead)
    last = windows.rank - 1
    values = b.op("squeeze", b.op("max_reduce", windows, axes=[last]), axes=[last])
    if not indices:
        return values, None
    first = b.op("argmax_reduce", windows, axes=[last])  # torch keeps the first maximum of a window
    every = b.op("tract_core_broadcast", b.const(table, "i64", "window_index"), shape=list(windows.shape))
    where = b.op("tract_core_gather_elements", every, first, axis=last, out_dtype="i64", out_shape=first.shape)
    return values, b.op("squeeze", where, axes=[last])


def _indices_used(b) -> bool:
    """Tell whether the second output (the indices) of the current node is read."""
    return any(user.args[1] == 1 and user.users for user in b.node.users)


@lower(("aten::max_pool2d_with_indices", "aten::max_pool3d_with_indices"))
def aten_max_pool2d_with_indices(b, self, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    """max_pool2d_with_indices(Tensor self, int[2] kernel_size, int[2] stride=[], int[2] padding=0, int[2] dilation=1, bool ceil_mode=False) -> (Tensor, Tensor)"""
    if not _indices_used(b):
        return aten_max_pool2d(b, self, kernel_size, stride, padding, dilation, ceil_mode), None
    n = 2 if "2d" in b.node.target.name() else 3
    kernel = _expand(kernel_size, n)
    stride = _expand(stride, n) or kernel
    padding, dilation = _expand(padding, n), _expand(dilation, n)
    positions = []
    for i in range(n):
        out = int(b.out[0].shape[self.rank - n + i])
        p = np.arange(out)[:, None] * stride[i] - padding[i] + np.arange(kernel[i])[None, :] * dilation[i]
        positions.append(np.where((p >= 0) & (p < self.shape[self.rank - n + i]), p, -1))
    return _window_max(b, self, positions, True)


@lower(("aten::adaptive_max_pool2d", "aten::adaptive_max_pool3d"))
def aten_adaptive_max_pool2d(b, self, output_size):
    """adaptive_max_pool2d(Tensor self, int[2] output_size) -> (Tensor, Tensor)"""
    n = len(output_size)
    positions = []
    for size, out in zip(self.shape[self.rank - n:], output_size):
        starts = [(i * size) // out for i in range(out)]
        ends = [-(-((i + 1) * size) // out) for i in range(out)]
        k = max(e - s for s, e in zip(starts, ends))
        p = np.array(starts)[:, None] + np.arange(k)[None, :]
        positions.append(np.where(p < np.array(ends)[:, None], p, -1))
    return _window_max(b, self, positions, _indices_used(b))


@lower("aten::native_layer_norm")
def aten_native_layer_norm(b, input, normalized_shape, weight, bias, eps):
    """native_layer_norm(Tensor input, SymInt[] normalized_shape, Tensor? weight, Tensor? bias, float eps) -> (Tensor, Tensor, Tensor)"""
    ax = list(range(input.rank - len(normalized_shape), input.rank))
    if b.khronos or len(ax) != 1 or input.dtype == "f16":  # f16: statistics in f32 (_moments)
        out, mean, rstd = _moments(b, input, ax, eps)
    else:  # what tract's optimizer makes of the moments anyway, in one operation to read
        b.require("tract_core")
        mean = b.op("mean_reduce", input, axes=ax)
        centered = b.op("sub", input, mean)
        out = b.op("tract_core_rms_norm", centered, axis=ax[0], eps=literal(eps), out_dtype=centered.dtype,
                   out_shape=centered.shape)
        # dead, and dropped, unless a user reads it
        rstd = _rsqrt_mean_square(b, centered, ax, eps)
    if weight is not None:
        out = b.op("mul", out, weight)
    if bias is not None:
        out = b.op("add", out, bias)
    return out, mean, rstd


@lower("aten::native_group_norm")
def aten_native_group_norm(b, input, weight, bias, N, C, HxW, group, eps):
    """native_group_norm(Tensor input, Tensor? weight, Tensor? bias, SymInt N, SymInt C, SymInt HxW, int group, float eps) -> (Tensor, Tensor, Tensor)"""
    # [N, C, *spatial] -> [N, group, C / group, *spatial] with every dim written out: tract checks a
    # reshape of symbolic dims by product, while a -1 would make it divide symbolic expressions
    shape = [input.shape[0], group, C // group, *input.shape[2:]]
    grouped = b.op("reshape", input, shape=shape, out_shape=tuple(shape))
    reduced = list(range(2, len(shape)))
    normalized, mean, rstd = _moments(b, grouped, reduced, eps)
    out = b.op("reshape", normalized, shape=list(input.shape), out_shape=tuple(input.shape))
    per_channel = [C] + [1] * (input.rank - 2)
    if weight is not None:
        out = b.op("mul", out, b.op("reshape", weight, shape=per_channel, out_shape=tuple(per_channel)))
    if bias is not None:
        out = b.op("add", out, b.op("reshape", bias, shape=per_channel, out_shape=tuple(per_channel)))
    return out, b.op("squeeze", mean, axes=reduced), b.op("squeeze", rstd, axes=reduced)


def _resize(b, x, sizes, coord: str, interpolator: str, nearest_mode: str = "floor"):
    b.require("tract_core")
    return b.op("tract_core_resize", x, sizes=b.const(list(x.shape[:2]) + list(sizes), "i64", "sizes"),
                coord_transformer=coord, interpolator=interpolator, nearest_mode=nearest_mode)


@lower(("aten::upsample_nearest2d.vec", "aten::upsample_nearest1d.vec", "aten::upsample_nearest3d.vec"))
def aten_upsample_nearest2d(b, input, output_size, scale_factors):
    """upsample_nearest2d.vec(Tensor input, SymInt[]? output_size, float[]? scale_factors) -> Tensor"""
    if scale_factors:  # torch picks floor(i / factor), not floor(i * in / out)
        b.require("tract_core")
        return b.op("tract_core_resize", input, scales=b.const([1.0, 1.0] + list(scale_factors), "f32", "scales"),
                    coord_transformer="asymmetric", interpolator="nearest", nearest_mode="floor")
    return _resize(b, input, b.shape_of(b.out)[2:], "asymmetric", "nearest")


@lower(("aten::upsample_bilinear2d.vec", "aten::upsample_linear1d.vec", "aten::upsample_trilinear3d.vec",
        "aten::upsample_bicubic2d.vec"))
def aten_upsample_bilinear2d(b, input, output_size, align_corners, scale_factors):
    """upsample_bilinear2d.vec(Tensor input, SymInt[]? output_size, bool align_corners, float[]? scale_factors) -> Tensor"""
    cubic = "bicubic" in b.node.target.name()
    if scale_factors and not align_corners:  # torch maps coordinates with the given factors, not out / in
        b.require("tract_core")
        return b.op("tract_core_resize", input, scales=b.const([1.0, 1.0] + list(scale_factors), "f32", "scales"),
                    coord_transformer=_half_pixel(b), interpolator="cubic" if cubic else "linear",
                    nearest_mode="floor")
    return _resize(b, input, b.shape_of(b.out)[2:], "align_corners" if align_corners else _half_pixel(b),
                   "cubic" if cubic else "linear")


def _half_pixel(b) -> str:
    """Return the coordinate transformer of torch's align_corners=False resize: tract's
    `pytorch_half_pixel` samples index 0 for an output length of 1 where torch samples
    0.5 * in - 0.5 (ONNX's rule), and `half_pixel` (the same elsewhere) samples what torch does."""
    return "half_pixel" if 1 in b.shape_of(b.out)[2:] else "pytorch_half_pixel"


@lower(("aten::grid_sampler_2d", "aten::grid_sampler_3d"))
def aten_grid_sampler_2d(b, input, grid, interpolation_mode, padding_mode, align_corners):
    """grid_sampler_2d(Tensor input, Tensor grid, int interpolation_mode, int padding_mode, bool align_corners) -> Tensor"""
    b.require("tract_core")
    if (interpolation_mode, padding_mode) == (2, 1) and input.rank == 4:
        return _bicubic_border(b, input, grid, bool(align_corners))
    return b.op("tract_core_grid_sample", input, grid, mode=("bilinear", "nearest", "bicubic")[interpolation_mode],
                padding_mode=("zeros", "border", "reflection")[padding_mode], align_corners=bool(align_corners))


def _cubic_weights(b, t):
    """Return torch's four bicubic tap weights (A = -0.75) for the fractional offsets t."""
    a = -0.75

    def near(x):  # ((A + 2) x - (A + 3)) x^2 + 1
        return b.op("add", b.op("mul", b.op("sub", b.op("mul", x, a + 2.0), a + 3.0), b.op("mul", x, x)), 1.0)

    def far(x):  # ((A x - 5A) x + 8A) x - 4A
        return b.op("sub", b.op("mul", b.op("add", b.op("mul", b.op("sub", b.op("mul", x, a), 5.0 * a), x), 8.0 * a),
                                       x), 4.0 * a)
    rest = b.op("sub", 1.0, t)
    return [far(b.op("add", t, 1.0)), near(t), near(rest), far(b.op("add", rest, 1.0))]


def _bicubic_border(b, input, grid, align_corners: bool):
    """grid_sample(mode='bicubic', padding_mode='border') as torch computes it: each of the 16 taps is
    clamped into the input on its own (tract clamps the sampling point instead)."""
    n, c, h, w = input.shape
    _, ho, wo, _ = grid.shape
    if not all(isinstance(d, int) for d in (h, w, ho, wo)):
        raise NotImplementedError("bicubic grid_sample with border padding needs static spatial dims")
    points = ho * wo
    flat = b.op("reshape", input, shape=[0, 0, h * w], out_shape=(n, c, h * w))
    taps, weights = [], []
    for k, size in enumerate((w, h)):  # grid holds (x, y)
        coord = b.op("reshape", b.op("slice", grid, axes=[3], begin=[k], end=[k + 1]), shape=[0, points],
                     out_shape=(n, points))
        if align_corners:  # unnormalize: (g + 1) / 2 * (size - 1), or ((g + 1) * size - 1) / 2
            coord = b.op("mul", b.op("add", coord, 1.0), (size - 1) / 2.0)
        else:
            coord = b.op("div", b.op("sub", b.op("mul", b.op("add", coord, 1.0), float(size)), 1.0), 2.0)
        start = b.op("floor", coord)
        weights.append(_cubic_weights(b, b.op("sub", coord, start)))
        taps.append([b.op("min", b.op("max", b.op("add", start, float(i - 1)), 0.0), float(size - 1))
                     for i in range(4)])
    out = None
    for j in range(4):
        for i in range(4):
            index = b.cast(b.op("add", b.op("mul", taps[1][j], float(w)), taps[0][i]), "i64")
            index = b.op("tract_core_broadcast", b.op("unsqueeze", index, axes=[1]), shape=[n, c, points])
            value = b.op("tract_core_gather_elements", flat, index, axis=2, out_dtype=input.dtype,
                         out_shape=(n, c, points))
            term = b.op("mul", value, b.op("unsqueeze", b.op("mul", weights[0][i], weights[1][j]), axes=[1]))
            out = term if out is None else b.op("add", out, term)
    return b.op("reshape", out, shape=[0, 0, ho, wo], out_shape=(n, c, ho, wo))


@lower("aten::constant_pad_nd")
def aten_constant_pad_nd(b, self, pad, value=0):
    """constant_pad_nd(Tensor self, SymInt[] pad, Scalar value=0) -> Tensor"""
    pairs = [(0, 0)] * self.rank
    for i in range(len(pad) // 2):
        pairs[self.rank - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    crops = [(a, -lo if lo < 0 else 0, hi if hi < 0 else None) for a, (lo, hi) in enumerate(pairs)
             if isinstance(lo, int) and lo < 0 or isinstance(hi, int) and hi < 0]
    for a, begin, end in crops:  # negative padding crops
        self = b.op("slice", self, axes=[a], begin=[begin], end=[self.shape[a] + end if end else self.shape[a]])
    pairs = [(max(lo, 0) if isinstance(lo, int) else lo, max(hi, 0) if isinstance(hi, int) else hi)
             for lo, hi in pairs]
    if all(p == (0, 0) for p in pairs):
        return self
    return b.op("pad", self, padding=pairs, border="constant", value=literal(value),
                out_shape=b.shape_of(b.out), out_dtype=self.dtype)


@lower(("aten::_embedding_bag_forward_only", "aten::_embedding_bag"))
def aten__embedding_bag_forward_only(b, weight, indices, offsets, scale_grad_by_freq=False, mode=0, sparse=False,
                                     per_sample_weights=None, include_last_offset=False, padding_idx=-1):
    """_embedding_bag_forward_only(Tensor weight, Tensor indices, Tensor offsets, bool scale_grad_by_freq=False, int mode=0, bool sparse=False, Tensor? per_sample_weights=None, bool include_last_offset=False, int padding_idx=-1) -> (Tensor, Tensor, Tensor, Tensor)"""
    if any(user.args[1] != 0 and user.users for user in b.node.users):
        raise NotImplementedError("embedding_bag's offset2bag, bag_size and max_indices outputs")
    length, bags = indices.shape[0], offsets.shape[0] - int(bool(include_last_offset))
    b.require("tract_core")
    offsets = b.cast(offsets, "i64")
    starts = b.op("slice", offsets, axes=[0], begin=[0], end=[bags]) if include_last_offset else offsets
    if include_last_offset:
        ends = b.op("slice", offsets, axes=[0], begin=[1], end=[bags + 1])
    else:  # the last bag ends with the indices
        ends = b.op("concat", [b.op("slice", offsets, axes=[0], begin=[1], end=[bags]),
                               b.const([length], "i64", "length")], axis=0, out_shape=(bags,), out_dtype="i64")
    position = b.const(np.arange(length)[None, :], "i64", "position")
    member = b.op("and", b.op("ge", position, b.op("unsqueeze", starts, axes=[1])),
                  b.op("lt", position, b.op("unsqueeze", ends, axes=[1])))  # [bags, length]
    if padding_idx is not None and padding_idx >= 0:
        member = b.op("and", member, b.op("ne", b.op("unsqueeze", b.cast(indices, "i64"), axes=[0]),
                                          b.const(padding_idx, "i64", "padding_idx")))
    rows = b.op("tract_core_gather", weight, indices, axis=0, out_shape=(length, weight.shape[1]),
                out_dtype=weight.dtype)
    if per_sample_weights is not None:
        rows = b.op("mul", rows, b.op("unsqueeze", per_sample_weights, axes=[1]))
    counts = b.op("sum_reduce", b.cast(member, weight.dtype), axes=[1])  # [bags, 1]
    if mode == 2:
        taken = b.op("select", b.op("unsqueeze", member, axes=[2]), b.op("unsqueeze", rows, axes=[0]),
                     b.const(extreme(weight.dtype, False), weight.dtype, "smallest"))
        largest = b.op("squeeze", b.op("max_reduce", taken, axes=[1]), axes=[1])
        out = b.op("select", b.op("gt", counts, 0.0), largest, b.const(0.0, weight.dtype, "empty"))  # empty bag: 0
    else:
        out = b.op("matmul", b.cast(member, weight.dtype), rows)
        if mode == 1:
            out = b.op("div", out, b.op("max", counts, 1.0))
    return out, None, None, None


@lower("aten::_trilinear")
def aten__trilinear(b, i1, i2, i3, expand1, expand2, expand3, sumdim, unroll_dim=1):
    """_trilinear(Tensor i1, Tensor i2, Tensor i3, int[] expand1, int[] expand2, int[] expand3, int[] sumdim, int unroll_dim=1) -> Tensor"""
    rank = i1.rank + len(expand1)
    if b.out_dtype in ("f16", "f32", "f64"):  # one einsum: no [.., out, in1, in2] product in memory
        letters = "abcdefghijklmnopqrstuvwxyz"[:rank]
        operands = ["".join(letters[a] for a in range(rank) if a not in e) for e in (expand1, expand2, expand3)]
        kept = "".join(letters[a] for a in range(rank) if a not in sumdim)
        b.require("tract_core")
        return b.op("tract_core_einsum", [i1, i2, i3], expr=",".join(operands) + "->" + kept, acc=b.out_dtype,
                    out_dtype=b.out_dtype)
    terms = [b.op("unsqueeze", t, axes=sorted(e)) if e else t for t, e in zip((i1, i2, i3), (expand1, expand2, expand3))]
    product = b.op("mul", b.op("mul", terms[0], terms[1]), terms[2])
    if not sumdim:
        return product
    return b.op("squeeze", b.op("sum_reduce", product, axes=sorted(sumdim)), axes=sorted(sumdim))


def _linear_nll(b, input, linear_weight, target, linear_bias, weight, ignore_index):
    """Return the per-row losses -weight[t] * log_softmax(input @ W.T + bias)[t] (0 where t is
    ignore_index) and the per-row weights (0 where ignored), both [N]."""
    logits = aten_linear(b, input, linear_weight, linear_bias)
    b.require("tract_core")
    log_p = b.op("tract_core_log_softmax", logits, axes=[1], out_dtype=logits.dtype, out_shape=logits.shape)
    target = b.cast(target, "i64")
    keep = b.op("ne", target, b.const(ignore_index, "i64", "ignore_index"))
    safe = b.op("select", keep, target, b.const(0, "i64", "zero"))  # any valid class for ignored rows
    picked = b.op("squeeze", b.op("tract_core_gather_elements", log_p, b.op("unsqueeze", safe, axes=[1]), axis=1,
                                  out_dtype=log_p.dtype, out_shape=(log_p.shape[0], 1)), axes=[1])
    row_weight = b.const(1.0, log_p.dtype, "one") if weight is None else \
        b.op("tract_core_gather", weight, safe, axis=0, out_dtype=log_p.dtype, out_shape=safe.shape)
    row_weight = b.op("select", keep, row_weight, b.const(0.0, log_p.dtype, "zero"))
    return b.op("neg", b.op("mul", picked, row_weight)), row_weight


@lower("torch_nn::_linear_cross_entropy_batch_chunked")
def torch_nn_linear_cross_entropy_batch_chunked(b, input, linear_weight, target, linear_bias, weight, reduction,
                                                ignore_index, label_smoothing, batch_chunk_size, acc_policy,
                                                acc_dtype, allow_retain_graph, compute_input_grad,
                                                compute_linear_weight_grad, compute_linear_bias_grad):
    """_linear_cross_entropy_batch_chunked(Tensor input, Tensor linear_weight, Tensor target, Tensor? linear_bias, Tensor? weight, str reduction, SymInt ignore_index, float label_smoothing, SymInt batch_chunk_size, str acc_policy, ScalarType acc_dtype, bool allow_retain_graph, bool compute_input_grad, bool compute_linear_weight_grad, bool compute_linear_bias_grad) -> (Tensor, Tensor, Tensor, Tensor)"""
    if label_smoothing or any(user.args[1] != 0 and user.users for user in b.node.users):
        raise NotImplementedError("linear_cross_entropy with label smoothing, or reading its gradient outputs")
    losses, row_weights = _linear_nll(b, input, linear_weight, target, linear_bias, weight, ignore_index)
    total = b.op("squeeze", b.op("sum_reduce", losses, axes=[0]), axes=[0])
    if reduction == "mean":
        total = b.op("div", total, b.op("squeeze", b.op("sum_reduce", row_weights, axes=[0]), axes=[0]))
    return total, None, None, None


@lower("torch_nn::_linear_cross_entropy_batch_chunked_no_reduction")
def torch_nn_linear_cross_entropy_batch_chunked_no_reduction(b, input, linear_weight, target, linear_bias, weight,
                                                             ignore_index, batch_chunk_size, acc_policy, acc_dtype):
    """_linear_cross_entropy_batch_chunked_no_reduction(Tensor input, Tensor linear_weight, Tensor target, Tensor? linear_bias, Tensor? weight, SymInt ignore_index, SymInt batch_chunk_size, str acc_policy, ScalarType acc_dtype) -> Tensor"""
    return _linear_nll(b, input, linear_weight, target, linear_bias, weight, ignore_index)[0]


@lower("transformers::grouped_mm_fallback")
def transformers_grouped_mm_fallback(b, input, weight, offs):
    """grouped_mm_fallback(Tensor input, Tensor weight, Tensor offs) -> Tensor

    transformers' mixture-of-experts product: the rows offs[e-1] <= r < offs[e] of `input`
    (sorted by expert) times weight[e], rows past offs[-1] zero. tract has no grouped product:
    every expert's product of every row is computed (the experts' work times their count) and
    each row keeps its expert's."""
    rows, experts = input.shape[0], weight.shape[0]
    products = b.op("matmul", b.op("unsqueeze", input, axes=[0]), weight)  # [E, S, M]
    ends = b.op("unsqueeze", b.cast(offs, "i64"), axes=[1])  # [E, 1]
    starts = b.const(np.zeros((1, 1)), "i64", "zero")
    if experts > 1:
        starts = b.op("concat", [starts, b.op("slice", ends, axes=[0], begin=[0], end=[experts - 1])], axis=0)
    if isinstance(rows, int):
        row = b.const(np.arange(rows).reshape(1, rows), "i64", "rows")
    else:   # as many rows as tokens times experts per token
        b.require("tract_core")
        row = b.op("unsqueeze", b.op("tract_core_range", 0, rows, 1, out_dtype="i64", out_shape=(rows,)), axes=[0])
    mine = b.op("and", b.op("ge", row, starts), b.op("lt", row, ends))  # [E, S]
    kept = b.op("select", b.op("unsqueeze", mine, axes=[2]), products, literal(0.0))
    return b.op("squeeze", b.op("sum_reduce", kept, axes=[0]), axes=[0])


@lower("aten::native_batch_norm")
def aten_native_batch_norm(b, input, weight, bias, running_mean, running_var, training, momentum, eps):
    """native_batch_norm(Tensor input, Tensor? weight, Tensor? bias, Tensor? running_mean, Tensor? running_var, bool training, float momentum, float eps) -> (Tensor, Tensor, Tensor)"""
    if not training:  # torch saves no statistics in evaluation
        out = aten_batch_norm(b, input, weight, bias, running_mean, running_var, training, momentum, eps, False)
        return out, *(b.const(np.zeros(b.shape_of(v)), input.dtype, "unsaved") for v in b.out[1:])
    out, mean, inverse_std = _batch_statistics_norm(b, input, weight, bias, eps)
    ax = [0] + list(range(2, input.rank))
    return out, b.op("squeeze", mean, axes=ax), b.op("squeeze", inverse_std, axes=ax)
