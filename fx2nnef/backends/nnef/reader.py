"""Read what an NNEF archive holds, for `fx2nnef inspect`: its signature, symbols and assertions,
properties, operation counts and tensor files. It reads the text and the 128-byte headers only
(not the weights); no torch import.
"""
from __future__ import annotations

import collections
import dataclasses
import re
import struct
import tarfile
from pathlib import Path
from typing import Iterator

from fx2nnef.errors import ExportInputError

from .serializer import HEADER_SIZE

ASSIGNMENT = re.compile(r"^\s*(?:\(?[\w, ]+\)?|\[[\w, ]+\])\s*=\s*([A-Za-z_]\w*)\s*(?:<\w+>)?\s*\(")
EXTENSION = re.compile(r"^extension\s+(\w+)\s*(.*?);\s*$")
SIGNATURE = re.compile(r"^graph\s+\w+\s*\(.*\)\s*->\s*\(.*\)")
EXTERNAL = re.compile(r"^\s*(\w+)\s*=\s*(?:tract_core_external|external)\s*(?:<(\w+)>)?\s*\(\s*shape\s*=\s*"
                      r"\[([^\]]*)\](?:\s*,\s*datum_type\s*=\s*'(\w+)')?")
PROPERTY = re.compile(r"\(\s*['\"]([^'\"]*)['\"]\s*,\s*(.+?)\s*\)(?=\s*[,\]])")
# (item type, vendor, bits) of a .dat header -> a dtype name
ITEM_TYPES = {(0, 0): "f", (1, 0): "u", (2, 0): "u", (3, 0): "i", (4, 0): "i", (5, 0): "bool"}
TRACT_ITEM_TYPES = {0x1000: "string", 0x2040: "q4_0", 0x3040: "q4_0", 0x3080: "q8_1"}


@dataclasses.dataclass
class TensorFile:
    """One `.dat` file: its label, dtype (f32, i64, q4_0, ...), shape and size in bytes."""

    label: str
    dtype: str
    shape: tuple[int, ...]
    size: int


@dataclasses.dataclass
class ArchiveSummary:
    """What `read_archive` finds in an archive."""

    signature: str
    inputs: list[tuple[str, str, str]]          # (name, shape text, dtype)
    registries: list[str]
    symbols: list[str]
    assertions: list[str]
    properties: dict[str, str]
    operations: collections.Counter
    tensors: list[TensorFile]
    quantized: int                              # graph.quant entries

    def bytes_per_dtype(self) -> dict[str, int]:
        """Return the bytes of tensor data per dtype, largest first."""
        total = collections.Counter()
        for tensor in self.tensors:
            total[tensor.dtype] += tensor.size
        return dict(total.most_common())


def read_archive(path: str | Path) -> ArchiveSummary:
    """Summarize the archive (directory, .tar or .tgz) at `path`; ExportInputError if it is not one."""
    files = dict(_members(Path(path)))
    if "graph.nnef" not in files:
        raise ExportInputError(f"{path} holds no graph.nnef: it is not an NNEF archive")
    text = files.pop("graph.nnef").decode("utf-8", errors="replace")
    quant = files.pop("graph.quant", b"").decode("utf-8", errors="replace")
    summary = ArchiveSummary("", [], [], [], [], {}, collections.Counter(), [],
                             sum(1 for line in quant.splitlines() if ":" in line))
    in_body = False
    for line in text.splitlines():
        extension = EXTENSION.match(line)
        if extension:
            kind, rest = extension.groups()
            {"tract_registry": summary.registries, "tract_symbol": summary.symbols,
             "tract_assert": summary.assertions}.get(kind, []).append(rest)
        elif SIGNATURE.match(line):
            summary.signature, in_body = line.strip(), True
        elif in_body:
            external = EXTERNAL.match(line)
            if external:
                name, generic, shape, dtype = external.groups()
                summary.inputs.append((name, f"[{shape.strip()}]", dtype or generic or "scalar"))
            operation = ASSIGNMENT.match(line)
            if operation:
                summary.operations[operation.group(1)] += 1
    properties = re.search(r"properties\s*=\s*\[(.*?)\];", text, re.S)
    if properties:
        summary.properties = {k: v.strip("'\"") for k, v in PROPERTY.findall(properties.group(1) + ",")}
    summary.tensors = [_tensor_file(name[:-4], data) for name, data in files.items() if name.endswith(".dat")]
    return summary


def _members(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield (relative name, bytes) of graph.nnef, graph.quant and the .dat headers of an archive."""
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            if file.is_file():
                with open(file, "rb") as f:
                    yield _relative(file.relative_to(path).as_posix()), _read_part(f, file.name)
        return
    if not path.is_file():
        raise ExportInputError(f"no archive at {path}")
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile():
                    yield _relative(member.name), _read_part(tar.extractfile(member), member.name)
    except tarfile.TarError as exc:
        raise ExportInputError(f"{path} is neither a directory nor a .tar/.tgz archive: {exc}") from None


def _read_part(f, name: str) -> bytes:
    """Read the whole of a text file, the header only of a tensor file."""
    return f.read(HEADER_SIZE) if name.endswith(".dat") else f.read()


def _relative(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def _tensor_file(label: str, header: bytes) -> TensorFile:
    """Decode a .dat header."""
    if len(header) < HEADER_SIZE or header[:2] != b"\x4e\xef":
        return TensorFile(label, "invalid", (), 0)
    size, rank = struct.unpack_from("<II", header, 4)
    shape = struct.unpack_from(f"<{min(rank, 8)}I", header, 12)
    bits, item, vendor = struct.unpack_from("<IHH", header, 44)
    if vendor == 0x5452:
        dtype = TRACT_ITEM_TYPES.get(item, f"tract:{item:#x}")
    else:
        kind = ITEM_TYPES.get((item, 0), f"item{item}")
        dtype = kind if kind == "bool" else f"{kind}{bits}" + ("(q)" if item in (2, 3) else "")
    return TensorFile(label, dtype, tuple(shape), size)


def read_tensor_files(path: str | Path, chunk: int = 32 << 20) -> Iterator[tuple[str, str, tuple, Iterator[bytes]]]:
    """Yield (label, numpy dtype name or block format ("q4_0"), shape, data pieces) for each tensor
    file of an archive, reading at most `chunk` bytes at a time; consume each data iterator before
    the next item."""
    path = Path(path)
    kinds = {"f": "float", "u": "uint", "i": "int"}

    def pieces(f) -> Iterator[bytes]:
        while block := f.read(chunk):
            yield block

    def described(label: str, f) -> tuple[str, str, tuple, Iterator[bytes]] | None:
        tensor = _tensor_file(label, f.read(HEADER_SIZE))
        kind, bits = tensor.dtype.removesuffix("(q)")[:1], tensor.dtype.removesuffix("(q)")[1:]
        if tensor.dtype in ("bool", "q4_0"):
            return label, tensor.dtype, tensor.shape, pieces(f)
        if kind in kinds and bits.isdigit():
            return label, f"{kinds[kind]}{bits}", tensor.shape, pieces(f)
        return None

    if path.is_dir():
        for file in sorted(path.rglob("*.dat")):
            with open(file, "rb") as f:
                item = described(file.relative_to(path).as_posix()[:-4], f)
                if item:
                    yield item
        return
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".dat"):
                item = described(_relative(member.name)[:-4], tar.extractfile(member))
                if item:
                    yield item
