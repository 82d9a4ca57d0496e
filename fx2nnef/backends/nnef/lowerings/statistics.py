"""Order-statistics lowerings written with pairwise comparisons over a dim of known length."""
from __future__ import annotations

import numpy as np

from ..registry import lower
from .common import axis

LARGEST = {"f16": np.inf, "f32": np.inf, "f64": np.inf, "i8": 2 ** 7 - 1, "i16": 2 ** 15 - 1, "i32": 2 ** 31 - 1,
           "i64": 2 ** 63 - 1, "u8": 2 ** 8 - 1, "u16": 2 ** 16 - 1, "u32": 2 ** 32 - 1, "u64": 2 ** 64 - 1}


@lower("aten::mode", registries=("tract_core",))
def aten_mode(b, self, dim=-1, keepdim=False):
    """mode(Tensor self, int dim=-1, bool keepdim=False) -> (Tensor values, Tensor indices)

    Counts, for every element, the elements of its row equal to it (an n x n comparison), keeps the
    most frequent values and picks the smallest of them, as torch does on ties. The index is the
    last position of that value in the row: what torch's CPU kernel gives (its sort keeps equal
    values in order on rows of up to 16 elements; on longer rows torch leaves the choice unspecified).
    Rows holding NaN give an unspecified pick in torch and are not matched.
    """
    if self.rank == 0:
        return self, b.const(0, "i64", "index")
    d = axis(dim, self.rank)
    x = b.cast(self, "i64") if self.dtype == "bool" else self
    # equal[..., i, j, ...] = x[..., i, ...] == x[..., j, ...], i on axis d and j on axis d + 1
    equal = b.op("eq", b.op("unsqueeze", x, axes=[d + 1]), b.op("unsqueeze", x, axes=[d]))
    counts = b.op("sum_reduce", b.cast(equal, "f32"), axes=[d + 1])            # count of x[i] in the row
    counts = b.op("squeeze", counts, axes=[d + 1])
    most = b.op("eq", counts, b.op("max_reduce", counts, axes=[d]))
    largest = b.const(LARGEST[x.dtype], x.dtype, "largest")
    value = b.op("min_reduce", b.op("select", most, x, largest), axes=[d])     # smallest of the most frequent
    where = b.cast(b.op("eq", x, value), "f32")
    index = b.op("tract_core_argmax_reduce_last", where, axes=[d], out_dtype="i64")
    if self.dtype == "bool":
        value = b.cast(value, "bool")
    if not keepdim:
        value, index = b.op("squeeze", value, axes=[d]), b.op("squeeze", index, axes=[d])
    return value, index
