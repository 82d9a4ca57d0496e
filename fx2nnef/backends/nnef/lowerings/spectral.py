"""Spectral lowerings: the Fourier transforms the legalize_complex pass writes, `fx2nnef::fft` and
`fx2nnef::stft`, on complex values stored as (real, imaginary) pairs on a trailing axis of 2.

tract runs them as `tract_core_fft` / `tract_core_stft`. Standard NNEF (the Khronos target) has no
Fourier operator: there they are products with constant cos/sin bases, a matmul for the FFT and a
strided convolution for the STFT (both need the transformed length known at export).
"""
from __future__ import annotations

import math

import numpy as np

from ....errors import LoweringError
from ..registry import lower
from .common import static


def _bases(n: int, frame: int, sign: int) -> tuple[np.ndarray, np.ndarray]:
    """Return cos and sign * sin of 2*pi*j*k/frame, [j, k] for j < n, k < frame."""
    theta = 2 * np.pi * np.outer(np.arange(n), np.arange(frame)) / frame
    return np.cos(theta), sign * np.sin(theta)


def _moved_last(b, x, dim: int):
    """Return x with `dim` moved after every other axis (the pair axis just before it)."""
    order = [a for a in range(x.rank) if a != dim] + [dim]
    return b.op("transpose", x, axes=order), order


def _dft_matmul(b, x, dim: int, inverse: bool):
    """Return the DFT of pairs `x` along `dim` as one product with a [2n, 2n] real matrix: for
    e^(s i theta), s = +1 inverse and -1 forward, re = a cos - s b sin and im = b cos + s a sin."""
    n = x.shape[dim]
    if not static(x.shape):
        raise LoweringError("a Fourier transform in standard NNEF needs static shapes")
    cos, sin = _bases(n, n, 1 if inverse else -1)
    matrix = np.block([[cos, sin], [-sin, cos]]).astype(np.float32)   # rows (part in, j), columns (part out, k)
    moved, order = _moved_last(b, x, dim)                           # [..., 2, n]
    lead = [x.shape[a] for a in order[:-2]]
    flat = b.op("reshape", moved, shape=[math.prod(lead), 2 * n])
    product = b.op("matmul", flat, b.const(matrix, "f32", "dft"))
    back = b.op("reshape", product, shape=lead + [2, n])
    return b.op("transpose", back, axes=[order.index(a) for a in range(x.rank)])


@lower("fx2nnef::fft")
def fx2nnef_fft(b, self, dim, inverse):
    """fft(Tensor self, int dim, bool inverse) -> Tensor"""
    if b.khronos:
        return _dft_matmul(b, self, dim, inverse)
    b.require("tract_core")
    return b.op("tract_core_fft", self, axis=dim, inverse=bool(inverse), out_dtype=self.dtype, out_shape=self.shape)


def _stft_conv(b, x, frame: int, stride: int, window):
    """Return the stft of pairs `x` [..., T, 2] as a strided convolution of its two parts by the
    [2 * frame, 2, frame] filter of window * cos and window * sin: [..., frames, frame, 2]."""
    if not static(x.shape):
        raise LoweringError("an STFT in standard NNEF needs static shapes")
    w = np.ones(frame) if window is None else np.asarray(window.data, dtype=np.float64)
    left = (frame - len(w)) // 2
    w = np.pad(w, (left, frame - len(w) - left))[:, None]
    cos, sin = _bases(frame, frame, 1)                      # forward: re = a cos + b sin, im = b cos - a sin
    blocks = np.array([[w * cos, w * sin], [-w * sin, w * cos]])   # [part out, part in, j, k]
    filters = blocks.transpose(0, 3, 1, 2).reshape(2 * frame, 2, frame).astype(np.float32)
    lead, time = list(x.shape[:-2]), x.shape[-2]
    signal = b.op("reshape", b.op("transpose", x, axes=list(range(x.rank - 2)) + [x.rank - 1, x.rank - 2]),
                  shape=[math.prod(lead), 2, time])
    spectra = b.op("conv", signal, b.const(filters, "f32", "stft_bases"), 0.0, border="constant", padding=[(0, 0)],
                   stride=[stride], dilation=[1], groups=1)   # [M, 2 * frame, frames]
    frames = (time - frame) // stride + 1
    parts = b.op("reshape", spectra, shape=[math.prod(lead), 2, frame, frames])
    return b.op("reshape", b.op("transpose", parts, axes=[0, 3, 2, 1]), shape=lead + [frames, frame, 2])


@lower("fx2nnef::stft")
def fx2nnef_stft(b, self, dim, frame, stride, window=None):
    """stft(Tensor self, int dim, int frame, int stride, Tensor? window) -> Tensor"""
    if window is not None and window.data is None:
        raise LoweringError("the STFT window must be a constant (a parameter, buffer or constant of the model)")
    if b.khronos:
        if dim != self.rank - 2:
            raise LoweringError("fx2nnef::stft in standard NNEF frames the last axis before the pair axis only")
        return _stft_conv(b, self, frame, stride, window)
    b.require("tract_core")
    if window is None:
        return b.op("tract_core_stft", self, axis=dim, frame=frame, stride=stride)
    return b.op("tract_core_stft", self, axis=dim, frame=frame, stride=stride, window=window)
