"""Small helpers shared by the lowering modules."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


INT64_SENTINEL = 2 ** 62  # torch.export writes `x[a:]` as end=sys.maxsize


def axis(dim: int, rank: int) -> int:
    """Return a non-negative axis for `dim` in a tensor of `rank` (tract rejects negative axes)."""
    if not -max(rank, 1) <= dim < max(rank, 1):
        raise IndexError(f"dim {dim} is out of range for rank {rank}")
    return dim % max(rank, 1)


def axes(dims: int | Sequence[int] | None, rank: int) -> list[int]:
    """Return sorted non-negative axes; None or [] means every axis."""
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        return list(range(rank))
    if isinstance(dims, int):
        dims = [dims]
    return sorted({axis(d, rank) for d in dims})


def literal(value: bool | int | float) -> float | bool:
    """Return a scalar for a tensor position: a float literal, which takes the other operand's dtype
    in tract (an integer literal would make a TDim tensor)."""
    return value if isinstance(value, bool) else float(value)


def static(dims: Iterable) -> bool:
    """Tell whether every dim is a plain int."""
    return all(isinstance(d, int) for d in dims)


def lift(b, x, rank: int):
    """Prepend unit axes to x up to `rank` (tract's matmul needs operands of equal rank; batch dims
    of 1 broadcast)."""
    return x if x.rank >= rank else b.op("unsqueeze", x, axes=list(range(rank - x.rank)))


def extreme(dtype: str, largest: bool) -> float | int | bool:
    """Return the largest (or smallest) value of a tract dtype: +-inf for floats."""
    if dtype.startswith("f"):
        return np.inf if largest else -np.inf
    if dtype == "bool":
        return largest
    info = np.iinfo(np.dtype(("uint" if dtype[0] == "u" else "int") + dtype[1:]))
    return int(info.max if largest else info.min)


def running_sum(b, flat):
    """Return the inclusive prefix sums of a 1-D tensor of static length n, as i64 (bools count 1):
    log2(n) doubling steps, each adding the sums so far shifted by 1, 2, 4, ... (exact, O(n log n))."""
    n = flat.shape[0]
    total, shift = b.cast(flat, "i64"), 1
    while shift < n:
        head = b.const(np.zeros(shift, np.int64), "i64", "zeros")
        shifted = b.op("concat", [head, b.op("slice", total, axes=[0], begin=[0], end=[n - shift])], axis=0,
                       out_shape=(n,))
        total, shift = b.op("add", total, shifted), shift * 2
    return total


def true_positions(b, keep, size):
    """Return the positions of the true elements of a 1-D bool tensor, as an i64 tensor of length
    `size` (the torch size of that count, usually an unbacked symbol): computed now when `keep` is a
    constant, else by tract's non_zero, whose count symbol tract binds at run time."""
    if keep.data is not None:
        found = np.flatnonzero(np.asarray(keep.data))
        b.bind_size(size, len(found))
        return b.const(found.astype(np.int64), "i64", "positions")
    n = b.bind_size(size)
    if isinstance(n, int):
        raise NotImplementedError("positions of run-time data counted into a size PyTorch fixed at export time")
    b.require("tract_onnx")
    found = b.op("tract_onnx_non_zero", keep, count_symbol=str(n), out_dtype="i64", out_shape=(1, n))
    return b.op("squeeze", found, axes=[0])
