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


def extreme(dtype: str, largest: bool) -> float | int | bool:
    """Return the largest (or smallest) value of a tract dtype: +-inf for floats."""
    if dtype.startswith("f"):
        return np.inf if largest else -np.inf
    if dtype == "bool":
        return largest
    info = np.iinfo(np.dtype(("uint" if dtype[0] == "u" else "int") + dtype[1:]))
    return int(info.max if largest else info.min)
