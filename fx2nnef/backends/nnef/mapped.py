"""Weights that stay in their checkpoint file until the serializer streams them into the archive.

A `MappedArray` wraps a memory-mapped array (a slice of a .safetensors file, accelerate's offload
folder, a `torch.load(mmap=True)` state dict): it is read piece by piece when its `.dat` is
written, converted to the archive's dtype on the way, so that a model of any size is exported
with a bounded amount of memory. Pages of a mapped file are page cache, not the process's own
memory. No torch import.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterator

import numpy as np

from .graph import BLOCK_FORMATS, BlockQuantized
from .q4_0 import pack_q4_0

CHUNK_BYTES = 32 << 20        # bytes read (and converted) at a time


@dataclasses.dataclass(frozen=True)
class FileRange:
    """`length` bytes of `file` from `offset`: what a weight written as stored holds, which the
    serializer copies file to file in the kernel (os.copy_file_range) where it can."""

    file: str
    offset: int
    length: int


def bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    """Return bf16 values stored as uint16 as float32 (a bf16 is the high half of an f32)."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class MappedArray:
    """A tensor read from `data` (memory-mapped; bf16 stored as uint16 with `stored="bf16"`) and
    written as `dtype`, or, with a block `format` ("q4_0"), as tract's blocks of its float32 values
    (packed piece by piece with `calibration`). `name` is its checkpoint key, for messages."""

    data: np.ndarray
    dtype: np.dtype
    name: str
    stored: str | None = None       # "bf16" when `data` holds bf16 bits as uint16
    format: str | None = None
    calibration: str = "min_max"
    file: str | None = None         # the file `data` maps, and where in it (for a kernel-side copy)
    offset: int = 0

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def nbytes(self) -> int:
        """The bytes written: values as `dtype`, or blocks."""
        if self.format is not None:
            values, block_bytes, _ = BLOCK_FORMATS[self.format]
            return math.prod(self.shape) // values * block_bytes
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    @property
    def verbatim(self) -> bool:
        """Tell whether the stored bytes are written as they are (same dtype, no blocks)."""
        return self.stored is None and self.format is None and self.data.dtype == self.dtype

    def astype(self, dtype) -> "MappedArray":
        """Return the same stored tensor, written as `dtype`."""
        return dataclasses.replace(self, dtype=np.dtype(dtype))

    def quantized(self, format: str, calibration: str) -> "MappedArray":
        """Return the same stored tensor, written as blocks of `format` packed with `calibration`."""
        return dataclasses.replace(self, dtype=np.dtype(np.float32), format=format, calibration=calibration)

    def same_source(self, other: "MappedArray") -> bool:
        """Tell whether both read the same stored bytes as the same dtype."""
        return (isinstance(other, MappedArray) and self.dtype == other.dtype and self.shape == other.shape
                and self.data.__array_interface__["data"][0] == other.data.__array_interface__["data"][0])

    def chunks(self, max_bytes: int = CHUNK_BYTES) -> Iterator[np.ndarray]:
        """Yield what is written, in order: the values as `dtype`, flattened row-major, in pieces of
        at most `max_bytes` (a multiple of 32 values), or the blocks packed from such pieces."""
        flat = self.data.reshape(-1)
        step = max(32, max_bytes // max(np.dtype(self.dtype).itemsize, 4) // 32 * 32)
        for start in range(0, flat.size, step):
            piece = self._convert(flat[start:start + step])
            if self.format is None:
                yield piece
            else:
                yield pack_q4_0(piece.reshape(-1, BLOCK_FORMATS[self.format][0]), self.calibration).blocks.reshape(-1)

    def _convert(self, piece: np.ndarray) -> np.ndarray:
        """Return one stored piece as `dtype`."""
        if self.stored == "bf16":
            piece = bf16_to_f32(piece)
        return np.ascontiguousarray(piece, dtype=np.dtype(self.dtype).newbyteorder("<"))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Read the whole tensor as it is written (blocks decoded): for small tensors and tests."""
        whole = np.concatenate(list(self.chunks())) if self.data.size else np.empty(0, self.dtype)
        if self.format is not None:
            whole = BlockQuantized(self.shape, whole.reshape(-1, BLOCK_FORMATS[self.format][1]), self.format).decode()
        whole = whole.reshape(self.shape)
        return whole if dtype is None else whole.astype(dtype)
