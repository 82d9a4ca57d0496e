"""The NNEF graph model: tensors, operations and a graph, with no torch import.

A lowering appends `Operation`s to a `Graph`; the serializer prints it. Tensor data is a numpy
array (or any object with `__array__`) that is only read when the `.dat` file is written, or a
`BlockQuantized` weight stored in one of tract's block-quantized formats (Q4_0). A tensor may carry
`QuantParams`: the serializer then writes its `graph.quant` entry (tract's 8-bit types).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Union

import numpy as np

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# tract's parser reads an identifier with one of these prefixes (`inf_1`, `true_x`) as a literal + junk
LITERAL_PREFIX = re.compile(r"^(inf|true|false)")

# numpy dtype name -> tract datum_type string
DTYPES = {
    "float16": "f16", "float32": "f32", "float64": "f64",
    "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64",
    "uint8": "u8", "uint16": "u16", "uint32": "u32", "uint64": "u64",
    "bool": "bool",
}
NUMPY_DTYPES = {v: np.dtype(k) for k, v in DTYPES.items()}  # tract datum type -> numpy dtype


@dataclasses.dataclass(frozen=True)
class Expr:
    """A raw NNEF expression printed as is, e.g. a tract symbol expression `S - 1`."""

    text: str

    def __str__(self) -> str:
        return self.text


Dim = Union[int, Expr]


# block-quantized formats: values per block, bytes per block, .dat item type (vendor "TR")
BLOCK_FORMATS = {"q4_0": (32, 18, 0x3040)}


@dataclasses.dataclass(frozen=True, eq=False)
class BlockQuantized:
    """A float weight stored as tract's Q4_0 blocks (GGML layout, `.dat` item type 0x3040).

    The weight is read row-major in blocks of 32 values; each block is 18 bytes: a little-endian
    f16 scale `d`, then 16 bytes whose byte `i` holds the 4-bit code of value `i` (low nibble)
    and of value `i + 16` (high nibble); a value is `(code - 8) * d`. `blocks` is a uint8 array
    of shape [n_blocks, 18]. As an array (`np.asarray`) it is the decoded float32 weight, so
    anything that reads a variable's values sees what tract computes with.
    """

    shape: tuple[int, ...]
    blocks: np.ndarray
    format: str = "q4_0"

    dtype = np.dtype(np.float32)    # what the weight decodes to

    @property
    def nbytes(self) -> int:
        return self.blocks.nbytes

    def decode(self) -> np.ndarray:
        """Return the float32 weight the blocks hold, of `shape`."""
        scales = self.blocks[:, :2].copy().view("<f2").astype(np.float32)   # [n, 1]
        packed = self.blocks[:, 2:]
        codes = np.concatenate([packed & 0x0F, packed >> 4], axis=1).astype(np.int8) - 8
        return (codes * scales).reshape(self.shape)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self.decode()
        return array if dtype is None else array.astype(dtype)


def block_format(data: Any) -> str | None:
    """Return the block format ("q4_0") a variable's data is written in, or None for plain values."""
    fmt = getattr(data, "format", None)
    return fmt if fmt in BLOCK_FORMATS else None


@dataclasses.dataclass(frozen=True)
class QuantParams:
    """tract's 8-bit (or 32-bit) affine quantization of a tensor, its `graph.quant` entry:
    real = (integer - zero_point) * scale."""

    scale: float
    zero_point: int
    bits: int = 8
    signed: bool = True

    @property
    def dtype(self) -> str:
        """The integer datum type that carries the quantized values."""
        return f"{'i' if self.signed else 'u'}{self.bits}"


@dataclasses.dataclass(eq=False)
class Tensor:
    """A named value of the graph. `data` is set for variables (weights) only."""

    name: str
    dtype: str | None = None           # tract datum type: 'f32', 'i64', 'bool', ...
    shape: tuple[Dim, ...] | None = None
    data: Any = None                   # numpy-convertible or BlockQuantized, written to `<label>.dat`
    label: str | None = None           # variable label (file path in the archive, no suffix)
    quant: QuantParams | None = None   # written to graph.quant: tract reads the tensor as QU8/QI8

    @property
    def rank(self) -> int:
        if self.shape is None:
            raise ValueError(f"tensor {self.name} has no known shape")
        return len(self.shape)


Arg = Any  # Tensor | Expr | bool | int | float | str | list/tuple of Arg


@dataclasses.dataclass(eq=False)
class Operation:
    """One NNEF invocation `outputs = name<generic>(args..., key = attribs...)`."""

    name: str
    args: tuple[Arg, ...]
    attribs: dict[str, Arg]
    outputs: tuple[Tensor, ...]
    generic: str | None = None         # standard NNEF type argument: 'scalar', 'integer', 'logical'
    origin: str = ""                   # what emitted it, for messages: "aten::mean.dim in module enc (Encoder)"

    def reads(self) -> list[Tensor]:
        """Return every tensor the operation reads, positional arguments then attributes."""
        return list(tensors_in((self.args, self.attribs)))


def tensors_in(value: Arg):
    """Yield the tensors in an argument, looking inside lists, tuples and dicts."""
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from tensors_in(item)


@dataclasses.dataclass(eq=False)
class Graph:
    """A whole NNEF document: operations in topological order plus the declarations they need."""

    name: str = "network"
    inputs: list[Tensor] = dataclasses.field(default_factory=list)
    outputs: list[Tensor] = dataclasses.field(default_factory=list)
    operations: list[Operation] = dataclasses.field(default_factory=list)
    registries: set[str] = dataclasses.field(default_factory=set)     # tract_registry ids
    fragments: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> fragment text
    extensions: list[str] = dataclasses.field(default_factory=list)     # Khronos extensions (KHR_...)
    symbols: list[str] = dataclasses.field(default_factory=list)        # tract symbols
    assertions: list[str] = dataclasses.field(default_factory=list)     # tract_assert rules
    properties: dict[str, Any] = dataclasses.field(default_factory=dict)
    # fragments defined by operations (loop bodies): name -> a graph whose inputs and outputs are
    # the fragment's parameters and results
    bodies: dict[str, Graph] = dataclasses.field(default_factory=dict)

    def variables(self) -> list[Tensor]:
        """Return the tensors defined by `variable` operations, in graph order."""
        return [op.outputs[0] for op in self.operations if op.name == "variable"]

    def uses(self) -> dict[int, list[Operation]]:
        """Return, by tensor id, the operations that read each tensor (each listed once), in graph order."""
        uses: dict[int, list[Operation]] = {}
        for op in self.operations:
            for tensor in {id(t): t for t in op.reads()}.values():
                uses.setdefault(id(tensor), []).append(op)
        return uses


def datum_type(array: Any) -> str:
    """Return the tract datum type string of a numpy-convertible array."""
    name = np.dtype(array.dtype).name
    if name not in DTYPES:
        raise TypeError(f"dtype {name} has no NNEF/tract equivalent")
    return DTYPES[name]
