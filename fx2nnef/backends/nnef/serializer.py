"""Print an NNEF graph in the dialect tract reads and write it, with its weights, to disk.

`format_document` gives the `graph.nnef` text and `format_quant` the `graph.quant` text (one
entry per tensor with QuantParams); `save` writes them together with one `<label>.dat` file per
variable into a directory, a `.tar` or a `.tgz`, atomically. Weights are streamed from their numpy
arrays (or Q4_0 blocks, item type 0x3040): no second full copy of the data is made in memory.
"""
from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import errno
import io
import itertools
import sys
import time
import logging
import os
import shutil
import struct
import tarfile
import zlib
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, Union

import numpy as np

from fx2nnef.backends.nnef.graph import (BLOCK_FORMATS, DTYPES, IDENTIFIER, BlockQuantized, Expr, Graph, Operation,
                                         Tensor, block_format)
from fx2nnef.backends.nnef.mapped import FileRange, MappedArray
from fx2nnef.errors import FX2NNEFError, SerializationError

logger = logging.getLogger("fx2nnef")

HEADER_SIZE = 128
MAX_RANK = 8
MAX_DATA_BYTES = 2**32 - 1          # the header stores the data length as a u32
ITEM_TYPES = {"f": 0, "u": 1, "i": 4, "b": 5}   # numpy dtype kind -> NNEF item type (Khronos vendor)
TRACT_VENDOR = 0x5452            # "TR": the item-type vendor of tract's own formats (block-quantized)
BLOCK_BITS = 0xFFFFFFFF          # bits per item of a block-quantized tensor
# Float weights barely compress: on 46 MB of random f32, zlib level 6 gives 0.926 of the size in
# ~12 s on this 2-core machine, level 1 0.929 in ~11 s, and Huffman coding alone 0.924 in ~4 s
# (the exponent bytes are skewed, the rest is noise: string matching finds nothing). Huffman coding
# runs at ~70 MB/s per core, storing at ~500 MB/s: a tensor whose sample codes to more than
# WORTH_CODING of its size is stored (ALBERT-base: 0.35 s of its export for 8 % of its size).
GZIP_LEVEL = 1
GZIP_STRATEGY = zlib.Z_HUFFMAN_ONLY
GZIP_CHUNK = 1 << 20
WORTH_CODING = 0.9
SAMPLE_BYTES = 1 << 16
COPY_BYTES = 64 << 20             # bytes copied at a time from a checkpoint file to the archive
NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF, errno.EPERM}
PROGRESS_AFTER = 3.0              # seconds of writing before progress is reported
REPORT_EVERY = 2.0
INDENT = "  "
PROPERTIES_SIGNATURE = (
    "fragment tract_core_properties() -> (properties: (string, tensor<scalar>)[])"
)
# Attributes left out when they hold their NNEF standard-library default (a stride or dilation of
# ones means what the default [] means): tract's reader parses each literal of an invocation at a
# cost that doubles with its nesting depth, a large part of a small model's load time
# (benchmarks/README.md "Load time").
DEFAULT_ATTRIBUTES = {
    **{name: {"border": "constant", "groups": 1} for name in ("conv", "deconv")},
    **{name: {"border": "constant"} for name in ("box", "avg_pool", "max_pool")},
}
UNIT_LIST_ATTRIBUTES = {name: ("stride", "dilation") for name in ("conv", "deconv", "box", "avg_pool", "max_pool")}


# --------------------------------------------------------------------------------------------
# Text


def format_argument(arg: Any) -> str:
    """Return the NNEF text of an argument: a tensor name, a raw expression or a literal."""
    if isinstance(arg, Tensor):
        return _tensor_name(arg)
    if isinstance(arg, Expr):
        return arg.text
    if isinstance(arg, (bool, np.bool_)):
        return "true" if arg else "false"
    if isinstance(arg, (int, np.integer)):
        return str(int(arg))
    if isinstance(arg, (float, np.floating)):
        return _format_float(arg)
    if isinstance(arg, str):
        return _format_string(arg)
    if isinstance(arg, list):
        return "[" + ", ".join(format_argument(item) for item in arg) + "]"
    if isinstance(arg, tuple):
        return "(" + ", ".join(format_argument(item) for item in arg) + ")"
    raise TypeError(f"cannot write a {type(arg).__name__} ({arg!r}) as an NNEF argument")


def _format_float(value: float | np.floating) -> str:
    """Return a float literal that tract reads as a float: `2.0`, `1e-05`, `inf`, `-inf`."""
    if np.isnan(value):
        raise ValueError("NaN has no NNEF literal; build it at run time (e.g. div(0.0, 0.0))")
    text = str(value).replace("e+", "e")   # numpy floats print their shortest round-trip form
    return text if any(c in text for c in ".ei") else text + ".0"


def _format_string(value: str) -> str:
    """Return `value` as a single-quoted NNEF string literal, escaping `\\` and `'`."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _identifier(text: str, what: str) -> str:
    """Return `text` if it is an NNEF identifier, else raise a SerializationError about `what`."""
    if not isinstance(text, str) or not IDENTIFIER.match(text):
        raise SerializationError(
            f"{what} {text!r} is not an NNEF identifier ([A-Za-z_][A-Za-z0-9_]*); rename it"
        )
    return text


def _tensor_name(tensor: Tensor) -> str:
    """Return the name of `tensor`, checked to be an NNEF identifier."""
    return _identifier(tensor.name, "tensor name")


def format_invocation(op: Operation) -> str:
    """Return the NNEF assignment of one operation, e.g. `y = add(x, 1.0);`."""
    if not op.outputs:
        raise SerializationError(f"operation {op.name}(...) has no output tensor")
    names = [_tensor_name(tensor) for tensor in op.outputs]
    target = names[0] if len(names) == 1 else "(" + ", ".join(names) + ")"
    arguments = [format_argument(arg) for arg in op.args]
    arguments += [
        f"{_identifier(key, 'attribute name')} = {format_argument(value)}"
        for key, value in op.attribs.items() if not _is_default(op.name, key, value)
    ]
    generic = f"<{_identifier(op.generic, 'type argument')}>" if op.generic else ""
    return f"{target} = {_identifier(op.name, 'operation name')}{generic}({', '.join(arguments)});"


def _is_default(op_name: str, key: str, value: Any) -> bool:
    """Tell whether attribute `key` of an `op_name` holds the NNEF standard library's default."""
    if key in UNIT_LIST_ATTRIBUTES.get(op_name, ()):
        return isinstance(value, list) and all(isinstance(v, (int, np.integer)) and v == 1 for v in value)
    defaults = DEFAULT_ATTRIBUTES.get(op_name, {})
    return key in defaults and type(value) is type(defaults[key]) and value == defaults[key]


def format_properties(properties: dict[str, Any]) -> str:
    """Return the `tract_core_properties` fragment declaring the model properties."""
    entries = format_argument([(str(key), value) for key, value in properties.items()])
    return f"{PROPERTIES_SIGNATURE}\n{{\n{INDENT}properties = {entries};\n}}"


def _parameter_type(tensor: Tensor) -> str:
    """Return the NNEF type of a fragment parameter or result: tensor<scalar|integer|logical>."""
    kind = "logical" if tensor.dtype == "bool" else "integer" if tensor.dtype and tensor.dtype[0] in "iu" \
        else "scalar"
    return f"tensor<{kind}>"


def format_body(name: str, body: Graph) -> str:
    """Return the fragment definition of a loop body: its inputs are the parameters, its
    outputs the results, its operations the statements."""
    params = ", ".join(f"{_tensor_name(t)}: {_parameter_type(t)}" for t in body.inputs)
    results = ", ".join(f"{_tensor_name(t)}: {_parameter_type(t)}" for t in body.outputs)
    lines = [f"fragment {_identifier(name, 'fragment name')}({params}) -> ({results})", "{"]
    lines += [INDENT + format_invocation(op) for op in body.operations]
    lines.append("}")
    return "\n".join(lines)


def format_document(graph: Graph) -> str:
    """Return the full, deterministic `graph.nnef` text of `graph`."""
    lines = ["version 1.0;"]
    lines += [f"extension {_identifier(name, 'extension')};" for name in graph.extensions]
    lines += [
        f"extension tract_registry {_identifier(name, 'registry')};"
        for name in sorted(graph.registries)
    ]
    lines += [f"extension tract_symbol {_identifier(name, 'symbol')};" for name in graph.symbols]
    lines += [f"extension tract_assert {rule};" for rule in graph.assertions]
    lines.append("")
    for text in graph.fragments.values():
        lines += [text.strip(), ""]
    for name, body in graph.bodies.items():
        lines += [format_body(name, body), ""]
    if graph.properties:
        lines += [format_properties(graph.properties), ""]
    inputs = ", ".join(_tensor_name(tensor) for tensor in graph.inputs)
    outputs = ", ".join(_tensor_name(tensor) for tensor in graph.outputs)
    lines.append(f"graph {_identifier(graph.name, 'graph name')}({inputs}) -> ({outputs})")
    lines.append("{")
    lines += [INDENT + format_invocation(op) for op in graph.operations]
    lines.append("}")
    return "\n".join(lines) + "\n"


def format_quant(graph: Graph) -> str:
    """Return the `graph.quant` text: one entry per tensor of `graph` that carries QuantParams."""
    lines = []
    for op in graph.operations:
        for tensor in op.outputs:
            q = tensor.quant
            if q is not None:
                lines.append(f'"{_tensor_name(tensor)}": zero_point_linear_quantize(zero_point = {int(q.zero_point)}, '
                             f"scale = {_format_float(np.float32(q.scale))}, bits = {q.bits}, "
                             f"signed = {format_argument(q.signed)});")
    return "\n".join(lines) + "\n" if lines else ""


# --------------------------------------------------------------------------------------------
# Tensor files


Stored = Union[np.ndarray, BlockQuantized, MappedArray]   # what a `.dat` file holds


def _dat_array(array: Any, what: str = "array") -> Stored:
    """Return `array` as a C-contiguous little-endian numpy array a `.dat` file can hold (block-
    quantized weights, and weights still in their checkpoint file, as they are: the latter are read
    while written)."""
    if isinstance(array, BlockQuantized):
        if array.format not in BLOCK_FORMATS or len(array.shape) > MAX_RANK:
            raise SerializationError(f"{what}: cannot store a {array.format} tensor of shape {list(array.shape)}")
        return array
    if isinstance(array, MappedArray):
        if array.dtype.name not in DTYPES or array.ndim > MAX_RANK or array.nbytes > MAX_DATA_BYTES:
            raise SerializationError(f"{what}: a {array.dtype.name} tensor of shape {list(array.shape)} cannot be "
                                     "stored in a tract .dat file")
        return array
    try:
        result = np.asarray(array)
    except Exception as exc:  # e.g. a bf16 torch tensor refuses __array__
        raise SerializationError(f"{what}: cannot convert to a numpy array: {exc}") from exc
    name = result.dtype.name
    if name not in DTYPES:
        raise SerializationError(
            f"{what}: dtype {name} cannot be stored in a tract .dat file "
            f"(supported: {', '.join(DTYPES)}); cast bfloat16 to float16/float32 first"
        )
    if result.ndim > MAX_RANK:
        raise SerializationError(f"{what}: rank {result.ndim} exceeds the NNEF limit of {MAX_RANK}")
    if result.nbytes > MAX_DATA_BYTES:
        raise SerializationError(f"{what}: {result.nbytes} bytes do not fit a .dat file (4 GiB max)")
    # np.require keeps rank 0 (ascontiguousarray would not) and copies only when it must
    return np.require(result, dtype=result.dtype.newbyteorder("<"), requirements="C")


def _dat_header(array: Stored) -> bytes:
    """Return the 128-byte NNEF tensor-file header of a `_dat_array` result."""
    header = bytearray(HEADER_SIZE)
    struct.pack_into("<BBBBII", header, 0, 0x4E, 0xEF, 1, 0, array.nbytes, len(array.shape))
    struct.pack_into(f"<{len(array.shape)}I", header, 12, *array.shape)
    if block_format(array):
        struct.pack_into("<IHH", header, 44, BLOCK_BITS, BLOCK_FORMATS[array.format][2], TRACT_VENDOR)
    else:
        struct.pack_into("<IHH", header, 44, array.dtype.itemsize * 8, ITEM_TYPES[array.dtype.kind], 0)
    return bytes(header)


def _data_view(array: Stored) -> memoryview:
    """Return the raw bytes of a C-contiguous array (or of quantized blocks) as a memoryview, without copying."""
    if isinstance(array, BlockQuantized):
        array = array.blocks
    return memoryview(np.require(array, requirements="C").reshape(-1).view(np.uint8))


def dat_size(array: Any) -> int:
    """Return the size in bytes of the `.dat` file of `array` (header plus data)."""
    return HEADER_SIZE + _dat_array(array).nbytes


def _pieces(array: Stored) -> Iterator[memoryview | FileRange]:
    """Yield the data bytes of a `_dat_array` result: one view, a mapped weight's converted pieces,
    or the range of its file when it is written as stored."""
    if isinstance(array, MappedArray) and array.verbatim and array.file is not None:
        yield FileRange(array.file, array.offset, array.nbytes)
    elif isinstance(array, MappedArray):
        for chunk in array.chunks():
            yield _data_view(chunk)
    else:
        yield _data_view(array)


def _write(stream: BinaryIO, piece: bytes | memoryview | FileRange, progress: "Progress | None") -> int:
    """Write one piece to `stream`; a file range is copied file to file by the kernel when `stream`
    is a plain file, else read and written in COPY_BYTES pieces. Return the bytes written."""
    if not isinstance(piece, FileRange):
        stream.write(piece)
        if progress is not None:
            progress.advance(memoryview(piece).nbytes)
        return memoryview(piece).nbytes
    with open(piece.file, "rb") as source:
        offset, end = piece.offset, piece.offset + piece.length
        if isinstance(stream, (io.BufferedWriter, io.FileIO)):
            stream.flush()
            try:
                while offset < end:
                    count = os.copy_file_range(source.fileno(), stream.fileno(), min(end - offset, COPY_BYTES), offset)
                    if count <= 0:
                        break
                    offset += count
                    if progress is not None:
                        progress.advance(count)
            except OSError as exc:  # a kernel or file system without it: copied below instead
                if exc.errno not in NO_KERNEL_COPY:
                    raise
        source.seek(offset)
        while offset < end:
            block = source.read(min(end - offset, COPY_BYTES))
            if not block:
                raise SerializationError(f"{piece.file} ends before byte {end}")
            stream.write(block)
            offset += len(block)
            if progress is not None:
                progress.advance(len(block))
    return piece.length


def write_dat(f: BinaryIO, array: Any, progress: "Progress | None" = None) -> int:
    """Write `array` to the binary file `f` as an NNEF tensor file; return the bytes written."""
    data = _dat_array(array)
    f.write(_dat_header(data))
    for piece in _pieces(data):
        _write(f, piece, progress)
    return HEADER_SIZE + data.nbytes


def _deflate_block(data: bytes, code: bool = True, level: int | None = None) -> bytes:
    """Return `data` as raw deflate blocks (Huffman-coded, or stored unless `code`; with a zlib
    `level`, fully deflated at that level) ending byte-aligned and not final (a sync flush), so that
    independent blocks concatenate into one deflate stream."""
    if level is not None:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY)
    else:
        compressor = zlib.compressobj(GZIP_LEVEL if code else 0, zlib.DEFLATED, -15, 9, GZIP_STRATEGY)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


def worth_coding(array: Stored) -> bool:
    """Tell whether Huffman coding shrinks the array's bytes enough to pay for its time, by coding
    a sample of them (random or trained float weights save ~8 %: not worth it)."""
    if isinstance(array, MappedArray):  # weights in checkpoints are floats: stored
        return False
    sample = _data_view(array)[:SAMPLE_BYTES]
    return len(_deflate_block(sample)) < WORTH_CODING * len(sample)


class _GzipWriter(io.RawIOBase):
    """A write-only, single-member gzip stream (no file name, mtime 0) into `target`.

    Data is cut into GZIP_CHUNK-byte pieces deflated on every core at once (zlib releases the GIL);
    Huffman-only coding has no back-references, so pieces compress independently at no size cost.
    `code(False)` stores the following pieces instead (tensors not worth coding).
    At most two pieces per worker are in memory at a time."""

    def __init__(self, target: BinaryIO, level: int | None = None) -> None:
        super().__init__()
        self._target = target
        self._level = level
        self._workers = os.cpu_count() or 1
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=self._workers)
        self._pending: collections.deque = collections.deque()
        self._buffer = bytearray()
        self._code = True
        self._crc = 0
        self._written = 0
        target.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")  # magic, deflate, no flags, mtime 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        """Return the count of uncompressed bytes written (tarfile asks)."""
        return self._written

    def write(self, data: Any) -> int:
        """Queue `data` for compression into the target; return its length."""
        view = memoryview(data).cast("B")
        self._crc = zlib.crc32(view, self._crc)
        self._written += view.nbytes
        start = 0
        while start < view.nbytes:  # a big tensor is buffered a chunk at a time, never whole
            end = min(view.nbytes, start + GZIP_CHUNK - len(self._buffer))
            self._buffer += view[start:end]
            start = end
            if len(self._buffer) >= GZIP_CHUNK:
                self._submit()
        return view.nbytes

    def code(self, on: bool) -> None:
        """Huffman-code (on) or store (off) the bytes written from now on."""
        if on != self._code and self._buffer:
            self._submit()
        self._code = on

    def _submit(self) -> None:
        """Hand the buffered bytes to a worker, writing out finished pieces to bound memory."""
        self._pending.append(self._pool.submit(_deflate_block, bytes(self._buffer), self._code, self._level))
        self._buffer.clear()
        while len(self._pending) > 2 * self._workers or (self._pending and self._pending[0].done()):
            self._target.write(self._pending.popleft().result())

    def close(self) -> None:
        """Write the remaining pieces, a final empty block and the gzip trailer (once)."""
        if not self.closed:
            try:
                if self._buffer:
                    self._submit()
                while self._pending:
                    self._target.write(self._pending.popleft().result())
                self._target.write(zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15).flush(zlib.Z_FINISH))
                self._target.write(struct.pack("<II", self._crc, self._written & 0xFFFFFFFF))
            finally:
                self._pool.shutdown(cancel_futures=True)
        super().close()


# --------------------------------------------------------------------------------------------
# Variables


def _check_label(label: Any, tensor: Tensor) -> str:
    """Return `label` if it is a safe relative file path that tract can find, else raise."""
    if not isinstance(label, str) or not label:
        raise SerializationError(
            f"variable {tensor.name} has no `label` attribute (a non-empty string)"
        )
    parts = label.split("/")
    if "\0" in label or any(not part or part.startswith(".") for part in parts):
        raise SerializationError(
            f"variable {tensor.name}: label {label!r} must be a relative path whose parts are "
            "non-empty and do not start with '.' (tract skips such files)"
        )
    return label


def _same_data(first: Stored, second: Stored) -> bool:
    """Tell whether two `_dat_array` results hold the same kind, dtype, shape and bytes."""
    if isinstance(first, MappedArray) or isinstance(second, MappedArray):
        return first is second or (isinstance(first, MappedArray) and first.same_source(second))
    return (
        first is second
        or (type(first) is type(second) and first.dtype == second.dtype and first.shape == second.shape
            and _data_view(first) == _data_view(second))
    )


def variable_arrays(graph: Graph) -> dict[str, Stored]:
    """Return label -> array (or quantized blocks) for the `variable` operations of `graph`, each label once."""
    arrays: dict[str, Stored] = {}
    for op in graph.operations:
        if op.name != "variable":
            continue
        tensor = op.outputs[0]
        label = _check_label(op.attribs.get("label"), tensor)
        if tensor.data is None:
            raise SerializationError(f"variable {tensor.name} (label {label!r}) has no data")
        array = _dat_array(tensor.data, f"variable {tensor.name} (label {label!r})")
        previous = arrays.setdefault(label, array)
        if not _same_data(previous, array):
            raise SerializationError(
                f"label {label!r} is used by variables with different data "
                f"(variable {tensor.name} differs from an earlier one); give them distinct labels"
            )
    return arrays


# --------------------------------------------------------------------------------------------
# Progress


class Progress:
    """Reports the writing of tensor files when it takes long: every REPORT_EVERY seconds after the
    first PROGRESS_AFTER, tensors written, bytes, speed and time left, on one refreshed line of a
    terminal or as log records otherwise. `current` is the tensor being written."""

    def __init__(self, tensors: int, total: int, stream=None) -> None:
        self.tensors, self.total = tensors, total
        self.stream = stream if stream is not None else sys.stderr
        self.written = self.count = 0
        self.start = self.last = time.perf_counter()
        self.shown = False
        self.current: str | None = None

    @contextlib.contextmanager
    def tensor(self, label: str) -> Iterator[None]:
        """Count one tensor file, written within the block."""
        self.current = label
        yield
        self.current = None
        self.count += 1

    def advance(self, size: int) -> None:
        """Count `size` more bytes written, and report if it is time to."""
        self.written += size
        now = time.perf_counter()
        if now - self.start >= PROGRESS_AFTER and now - self.last >= REPORT_EVERY:
            self.last = now
            self._report(now)

    def _report(self, now: float) -> None:
        elapsed = now - self.start
        speed = self.written / max(elapsed, 1e-9)
        left = (self.total - self.written) / speed if speed > 0 else float("inf")
        text = (f"wrote {self.count}/{self.tensors} tensors, {self.written / 2**30:.2f}/{self.total / 2**30:.2f} GiB, "
                f"{speed / 2**20:.0f} MiB/s, about {left:.0f} s left")
        if getattr(self.stream, "isatty", lambda: False)():
            self.stream.write("\r" + text)
            self.stream.flush()
            self.shown = True
        else:
            logger.info("%s", text)

    def done(self) -> None:
        """End the terminal line, if one was shown."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------------------------
# Containers


def _write_directory(root: Path, document: bytes, quant: bytes, arrays: dict[str, Stored],
                     progress: "Progress") -> None:
    """Write `graph.nnef`, `graph.quant` (when not empty) and the `.dat` files into the new directory `root`."""
    root.mkdir()
    (root / "graph.nnef").write_bytes(document)
    if quant:
        (root / "graph.quant").write_bytes(quant)
    for label, array in arrays.items():
        path = root / f"{label}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        with progress.tensor(label), open(path, "wb") as f:
            write_dat(f, array, progress)


def _add_member(stream: BinaryIO, name: str, size: int, pieces: Iterable[bytes | memoryview | FileRange],
                progress: "Progress | None" = None) -> int:
    """Write one regular file of `size` bytes made of `pieces` as a tar member (GNU format): header,
    data written as it comes, padding to the 512-byte block. Return the bytes written."""
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    header = info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
    stream.write(header)
    written = 0
    for piece in pieces:
        written += _write(stream, piece, progress)
    if written != size:
        raise SerializationError(f"{name}: {written} bytes written for a declared size of {size}")
    stream.write(bytes(-size % tarfile.BLOCKSIZE))
    return len(header) + size + -size % tarfile.BLOCKSIZE


def _write_tar(path: Path, document: bytes, quant: bytes, arrays: dict[str, Stored], compress: bool,
               level: int | None, progress: "Progress") -> None:
    """Write `graph.nnef`, `graph.quant` (when not empty) and the `.dat` files as members at the root
    of a new tar file, each tensor streamed from its array (or its checkpoint file) into the archive."""
    with contextlib.ExitStack() as stack:
        stream: BinaryIO = stack.enter_context(open(path, "xb"))
        if compress:  # fixed mtime and no file name: identical inputs give identical bytes
            stream = stack.enter_context(_GzipWriter(stream, level))
        total = _add_member(stream, "graph.nnef", len(document), [document])
        if quant:
            total += _add_member(stream, "graph.quant", len(quant), [quant])
        for label, array in arrays.items():
            if compress:
                stream.code(worth_coding(array))
            with progress.tensor(label):
                total += _add_member(stream, f"{label}.dat", HEADER_SIZE + array.nbytes,
                                     itertools.chain([_dat_header(array)], _pieces(array)), progress)
        if compress:
            stream.code(True)  # the tar's end: two zero blocks, then zeros up to a whole record
        end = 2 * tarfile.BLOCKSIZE
        stream.write(bytes(end + -(total + end) % tarfile.RECORDSIZE))


def container_kind(path: Path) -> str:
    """Return 'tgz', 'tar' or 'directory': the container `save` writes for `path`."""
    name = path.name.lower()
    if name.endswith((".tgz", ".tar.gz")):
        return "tgz"
    if name.endswith(".tar"):
        return "tar"
    return "directory"


def remove(path: Path) -> None:
    """Delete a file, symlink or directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def _sibling(path: Path, suffix: str) -> Path:
    """Return an unused hidden path next to `path`, for temporaries and backups."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{suffix}")


def move(temporary: Path, target: Path) -> None:
    """Move `temporary` onto `target`, deleting a previous target only once the move succeeded."""
    if not os.path.lexists(target) or not (target.is_dir() or temporary.is_dir()):
        os.replace(temporary, target)
        return
    backup = _sibling(target, ".old")
    os.replace(target, backup)
    try:
        os.replace(temporary, target)
    except BaseException:
        os.replace(backup, target)
        raise
    try:
        remove(backup)
    except OSError as exc:
        logger.warning("could not delete the previous %s moved to %s: %s", target, backup, exc)


def save(graph: Graph, path: str | os.PathLike[str], compression_level: int | None = None) -> Path:
    """Write `graph` and its weights to `path` (directory, `.tar` or `.tgz`/`.tar.gz`) atomically. A
    .tgz is Huffman-coded where that pays (see WORTH_CODING), or deflated at `compression_level`."""
    target = Path(path)
    kind = container_kind(target)
    temporary = _sibling(target, ".tmp")
    progress = None
    try:
        document = format_document(graph).encode("utf-8")
        quant = format_quant(graph).encode("utf-8")
        arrays = variable_arrays(graph)
        progress = Progress(len(arrays), sum(array.nbytes for array in arrays.values()))
        if kind == "directory":
            _write_directory(temporary, document, quant, arrays, progress)
        else:
            _write_tar(temporary, document, quant, arrays, kind == "tgz", compression_level, progress)
        progress.done()
        move(temporary, target)
    except BaseException as exc:
        remove(temporary)
        if isinstance(exc, FX2NNEFError) or not isinstance(exc, Exception):
            raise
        where = f" (writing the tensor {progress.current})" if progress is not None and progress.current else ""
        raise SerializationError(f"cannot write the NNEF model {target}{where}: {exc}") from exc
    logger.debug(
        "wrote %s (%s): graph.nnef %d bytes, %d tensor files %d bytes",
        target, kind, len(document), len(arrays),
        sum(HEADER_SIZE + array.nbytes for array in arrays.values()),
    )
    return target
