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

CHUNK_BYTES = 32 << 20        # bytes read (and converted) at a time


def bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    """Return bf16 values stored as uint16 as float32 (a bf16 is the high half of an f32)."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class MappedArray:
    """A tensor read from `data` (memory-mapped; bf16 stored as uint16 with `stored="bf16"`) and
    written as `dtype`. `name` is its checkpoint key, for messages."""

    data: np.ndarray
    dtype: np.dtype
    name: str
    stored: str | None = None       # "bf16" when `data` holds bf16 bits as uint16

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    def astype(self, dtype) -> "MappedArray":
        """Return the same stored tensor, written as `dtype`."""
        return dataclasses.replace(self, dtype=np.dtype(dtype))

    def same_source(self, other: "MappedArray") -> bool:
        """Tell whether both read the same stored bytes as the same dtype."""
        return (isinstance(other, MappedArray) and self.dtype == other.dtype and self.shape == other.shape
                and self.data.__array_interface__["data"][0] == other.data.__array_interface__["data"][0])

    def chunks(self, max_bytes: int = CHUNK_BYTES) -> Iterator[np.ndarray]:
        """Yield the tensor as `dtype`, flattened row-major, in consecutive pieces of at most
        `max_bytes` (a multiple of 32 values, so block formats can pack each piece alone)."""
        flat = self.data.reshape(-1)
        step = max(32, max_bytes // max(np.dtype(self.dtype).itemsize, 4) // 32 * 32)
        for start in range(0, flat.size, step):
            yield self._convert(flat[start:start + step])

    def _convert(self, piece: np.ndarray) -> np.ndarray:
        """Return one stored piece as `dtype`."""
        if self.stored == "bf16":
            piece = bf16_to_f32(piece)
        return np.ascontiguousarray(piece, dtype=np.dtype(self.dtype).newbyteorder("<"))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Read the whole tensor (for small tensors and tests)."""
        whole = np.concatenate(list(self.chunks())) if self.data.size else np.empty(0, self.dtype)
        whole = whole.reshape(self.shape)
        return whole if dtype is None else whole.astype(dtype)
