"""Antialiased resize lowerings. With static sizes the resize is separable and linear: each spatial axis
is multiplied by an (out x in) weight matrix computed here at export time exactly as PyTorch builds
its filter taps, so the graph is two matmuls."""
from __future__ import annotations

import math

import numpy as np

from ....errors import UnsupportedOpError
from ..registry import lower
from .common import static


def _triangle(x: np.ndarray) -> np.ndarray:
    """The bilinear (tent) filter."""
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


def _keys_cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution filter with a = -0.5, the one PyTorch's antialiased bicubic uses (as PIL)."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _scale(in_size: int, out_size: int, align_corners: bool, scale: float | None) -> float:
    """Return the input step per output pixel as PyTorch's area_pixel_compute_scale does."""
    if align_corners:
        return (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    return 1.0 / scale if scale is not None and scale > 0 else in_size / out_size


def aa_weights(in_size: int, out_size: int, align_corners: bool, scale: float | None, taps: int,
               kernel) -> np.ndarray:
    """Return the (out_size, in_size) matrix of PyTorch's antialiased filter along one axis: the kernel is
    widened by the scale when downsampling, clipped to the input and normalized per output pixel."""
    step = _scale(in_size, out_size, align_corners, scale)
    support = taps * 0.5 * step if step >= 1.0 else taps * 0.5
    max_taps = math.ceil(support) * 2 + 1
    inv = 1.0 / step if step >= 1.0 else 1.0
    weights = np.zeros((out_size, in_size))
    for i in range(out_size):
        center = step * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        count = min(max(min(int(center + support + 0.5), in_size) - lo, 0), max_taps)
        w = kernel((np.arange(count) + lo - center + 0.5) * inv)
        total = w.sum()
        weights[i, lo:lo + count] = w / total if total != 0 else w
    return weights


def _resize_aa(b, x, output_size, align_corners: bool, scales: tuple, taps: int, kernel):
    """Resize the last two axes of x with per-axis weight matrices: out = Wh @ x @ Ww^T."""
    sizes = [x.shape[-2], x.shape[-1], *output_size]
    if not static(sizes):
        raise UnsupportedOpError(f"{b.node.target.name()} needs static spatial sizes (got {sizes[:2]} -> "
                                 f"{sizes[2:]}): its filter taps are computed at export time")
    (h, w), (oh, ow) = sizes[:2], sizes[2:]
    lead = [1] * (x.rank - 2)
    rows = aa_weights(h, oh, align_corners, scales[0], taps, kernel).reshape(lead + [oh, h])
    cols = aa_weights(w, ow, align_corners, scales[1], taps, kernel).reshape(lead + [ow, w])
    out = b.op("matmul", x, b.const(cols, x.dtype, "resize_cols"), transposeB=True)
    return b.op("matmul", b.const(rows, x.dtype, "resize_rows"), out)


@lower("aten::_upsample_bilinear2d_aa")
def aten__upsample_bilinear2d_aa(b, self, output_size, align_corners, scales_h=None, scales_w=None):
    """_upsample_bilinear2d_aa(Tensor self, SymInt[2] output_size, bool align_corners, float? scales_h=None, float? scales_w=None) -> Tensor"""
    return _resize_aa(b, self, output_size, align_corners, (scales_h, scales_w), 2, _triangle)


@lower("aten::_upsample_bicubic2d_aa")
def aten__upsample_bicubic2d_aa(b, self, output_size, align_corners, scales_h=None, scales_w=None):
    """_upsample_bicubic2d_aa(Tensor self, SymInt[2] output_size, bool align_corners, float? scales_h=None, float? scales_w=None) -> Tensor"""
    return _resize_aa(b, self, output_size, align_corners, (scales_h, scales_w), 4, _keys_cubic)
