"""Models whose weights stay on disk: capture them on placeholders, write them from the checkpoint.

A model whose parameters are on the meta device — built under `accelerate.init_empty_weights()`
or `torch.device("meta")`, or offloaded to disk by accelerate (`disk_offload`,
`load_checkpoint_and_dispatch` with a disk device map) — is exported without loading its
weights: each parameter is swapped, for the capture only, for an uninitialized CPU tensor of the
same shape and dtype (which costs no memory until written, and is never written) that
`source_of` maps to its memory-mapped bytes in the checkpoint. Passes that would read weight
values see none (`known_value` gives None: they skip such weights and say so), and the
serializer streams each weight from its file into its `.dat`, converting its dtype on the way.
The user's model is restored as it was (meta parameters, accelerate hooks).

Checkpoints: a `.safetensors` file, a directory of safetensors shards (with or without its
`*.safetensors.index.json`), a `.bin`/`.pt`/`.pth` state dict saved by `torch.save` (read with
`mmap=True`), or accelerate's offload folder (`index.json` + `<name>.dat`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import mmap
import os
import struct
import weakref
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import torch

from ..backends.nnef.mapped import MappedArray
from ..errors import ExportInputError

log = logging.getLogger("fx2nnef")

# a placeholder's storage address -> (the placeholder, alive as long as the program; its weight)
_SOURCES: dict[int, tuple[weakref.ref, MappedArray]] = {}

SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64,
                      "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
TORCH_DTYPES = {torch.float64: np.float64, torch.float32: np.float32, torch.float16: np.float16,
                torch.bfloat16: np.float32, torch.int64: np.int64, torch.int32: np.int32, torch.int16: np.int16,
                torch.int8: np.int8, torch.uint8: np.uint8, torch.bool: np.bool_}


def source_of(tensor: torch.Tensor) -> MappedArray | None:
    """Return the stored weight a placeholder (or a view of its whole storage, e.g. `.detach()`)
    stands for, or None for a tensor with real data."""
    if not isinstance(tensor, torch.Tensor) or tensor.is_meta or not tensor.numel():
        return None
    entry = _SOURCES.get(tensor.untyped_storage().data_ptr())
    if entry is None or entry[0]() is None:
        return None
    placeholder, source = entry[0](), entry[1]
    if tensor.shape != placeholder.shape or tensor.dtype != placeholder.dtype:
        return None  # another view of the storage: not the stored weight as it is
    return source


def placeholder_like(source: MappedArray, dtype: torch.dtype, parameter: bool = False) -> torch.Tensor:
    """Return an uninitialized tensor (a Parameter with `parameter`) of `source`'s shape and `dtype`
    standing for `source` written as `dtype` (torch.empty takes no memory until written)."""
    tensor = torch.empty(source.shape, dtype=dtype)
    if parameter:
        tensor = torch.nn.Parameter(tensor, requires_grad=False)
    if tensor.numel():
        _SOURCES[tensor.untyped_storage().data_ptr()] = (weakref.ref(tensor), source.astype(TORCH_DTYPES[dtype]))
    return tensor


def is_lazy(model: torch.nn.Module) -> bool:
    """Tell whether some parameter or buffer of `model` is on the meta device."""
    return any(t.is_meta for t in _tensors(model))


# ------------------------------------------------------------------------------------- sources


def checkpoint_arrays(path: str | os.PathLike) -> dict[str, MappedArray]:
    """Map each tensor name of a checkpoint to its memory-mapped array, written as stored (bf16 as
    f32). Missing or unreadable files are ExportInputErrors naming them."""
    path = Path(path)
    if path.is_dir():
        if (path / "index.json").is_file():
            return _offload_folder(path, json.loads((path / "index.json").read_text()))
        files = _index_files(path) or sorted(path.glob("*.safetensors")) or \
            sorted(p for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth"))
        if not files:
            raise ExportInputError(f"{path} holds no checkpoint (.safetensors, .bin, .pt, or accelerate's index.json)")
    elif path.is_file():
        files = [path]
    else:
        raise ExportInputError(f"no checkpoint at {path}")
    arrays: dict[str, MappedArray] = {}
    for file in files:
        arrays.update(_safetensors(file) if file.suffix == ".safetensors" else _state_dict(file))
    return arrays


def _index_files(directory: Path) -> list[Path]:
    """Return the shard files a `*.index.json` of `directory` names (each must exist)."""
    indexes = sorted(directory.glob("*.index.json"))
    if not indexes:
        return []
    weight_map = json.loads(indexes[0].read_text()).get("weight_map", {})
    files = [directory / name for name in dict.fromkeys(weight_map.values())]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ExportInputError(f"{indexes[0]} names shard(s) that are missing: {', '.join(missing)}")
    return files


def _mapped(array: np.ndarray, name: str, bf16: bool, file: Path | None = None, offset: int = 0) -> MappedArray:
    """Return a stored array (bf16 as uint16 bits) as a MappedArray written as stored (bf16 as f32)."""
    return MappedArray(array, np.dtype(np.float32 if bf16 else array.dtype), name, "bf16" if bf16 else None,
                       file=None if file is None else str(file), offset=offset)


def _safetensors(file: Path) -> Iterator[tuple[str, MappedArray]]:
    """Yield (name, array) for each tensor of a .safetensors file, memory-mapped."""
    try:
        with open(file, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
            region = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        region.madvise(mmap.MADV_SEQUENTIAL)  # read once, in order: the kernel reads ahead
        mapped = np.frombuffer(region, dtype=np.uint8)
    except (OSError, ValueError, struct.error) as exc:
        raise ExportInputError(f"cannot read the safetensors file {file}: {exc}") from None
    base = 8 + length
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in SAFETENSORS_DTYPES:
            raise ExportInputError(f"{file}: {name} has dtype {info['dtype']}, which fx2nnef cannot read")
        begin, end = info["data_offsets"]
        dtype = np.dtype(SAFETENSORS_DTYPES[info["dtype"]])
        array = mapped[base + begin:base + end].view(dtype).reshape(info["shape"])
        yield name, _mapped(array, name, info["dtype"] == "BF16", file, base + begin)


def _state_dict(file: Path) -> Iterator[tuple[str, MappedArray]]:
    """Yield (name, array) for each tensor of a torch.save state dict, memory-mapped."""
    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise ExportInputError(f"cannot memory-map the state dict {file} ({exc}); re-save it with torch.save "
                               "(zip format) or as .safetensors") from None
    for name, tensor in (loaded.items() if isinstance(loaded, Mapping) else []):
        if isinstance(tensor, torch.Tensor):
            yield name, _numpy_view(tensor, name)


def _numpy_view(tensor: torch.Tensor, name: str) -> MappedArray:
    """Return a CPU tensor's data as a MappedArray (bf16 read as uint16 bits), without copying."""
    tensor = tensor.detach()
    bf16 = tensor.dtype == torch.bfloat16
    return _mapped((tensor.view(torch.uint16) if bf16 else tensor).numpy(), name, bf16)


def _offload_folder(folder: Path, index: Mapping) -> dict[str, MappedArray]:
    """Map the tensors of an accelerate offload folder (`index.json` + `<name>.dat` memmaps, or
    entries pointing into safetensors files)."""
    arrays: dict[str, MappedArray] = {}
    by_file: dict[str, dict] = {}
    for name, info in index.items():
        if info.get("safetensors_file"):
            file = info["safetensors_file"]
            if file not in by_file:
                if not Path(file).is_file():
                    raise ExportInputError(f"accelerate's index names the missing checkpoint file {file}")
                by_file[file] = dict(_safetensors(Path(file)))
            arrays[name] = dataclasses.replace(by_file[file][info.get("weight_name", name)], name=name)
            continue
        file = folder / f"{name}.dat"
        if not file.is_file():
            raise ExportInputError(f"accelerate's offload folder {folder} lacks {file.name}")
        bf16 = info["dtype"] == "bfloat16"
        array = np.memmap(file, dtype=np.uint16 if bf16 else np.dtype(info["dtype"]), mode="r",
                          shape=tuple(info["shape"]) or (1,))
        arrays[name] = _mapped(array.reshape(info["shape"]), name, bf16, file)
    return arrays


def accelerate_arrays(model: torch.nn.Module) -> dict[str, MappedArray]:
    """Map the names of a model's parameters that accelerate offloaded to their stored arrays,
    read from the hooks' weight maps (without loading them)."""
    arrays: dict[str, MappedArray] = {}
    for prefix, module in model.named_modules():
        weights_map = getattr(getattr(module, "_hf_hook", None), "weights_map", None)
        if weights_map is None:
            continue
        loader, key_prefix = getattr(weights_map, "dataset", weights_map), getattr(weights_map, "prefix", "")
        mapped = _loader_arrays(loader)
        for name, _ in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
            key = key_prefix + name
            if key in mapped:
                arrays[f"{prefix}.{name}" if prefix else name] = mapped[key]
    return arrays


def _loader_arrays(loader) -> dict[str, MappedArray]:
    """Return the arrays of an accelerate OffloadedWeightsLoader (cached on it)."""
    cached = getattr(loader, "_fx2nnef_arrays", None)
    if cached is None:
        cached = {name: _numpy_view(t, name) for name, t in getattr(loader, "state_dict", {}).items()}
        folder = getattr(loader, "save_folder", None)
        cached.update(_offload_folder(Path(folder or "."), getattr(loader, "index", {})))
        loader._fx2nnef_arrays = cached
    return cached


# ------------------------------------------------------------------------------------- binding


def _tensors(model: torch.nn.Module) -> Iterator[torch.Tensor]:
    yield from model.parameters()
    yield from model.buffers()


def resolve(model: torch.nn.Module, weights: str | os.PathLike | None) -> dict[str, MappedArray]:
    """Return the stored weight of every meta parameter/buffer of `model`, by qualified name, from
    the checkpoint `weights` or from accelerate's offload hooks; raise ExportInputError for a
    tensor that is missing or disagrees with the model in shape or kind of dtype."""
    stored = checkpoint_arrays(weights) if weights is not None else accelerate_arrays(model)
    if weights is None and not stored:
        raise ExportInputError("the model's parameters are on the meta device (no data): pass the checkpoint "
                               "as export_model_to_nnef(..., weights='path/to/checkpoint'), or load the model "
                               "with accelerate (disk_offload, load_checkpoint_and_dispatch)")
    found: dict[str, MappedArray] = {}
    aliases: dict[int, list[str]] = {}
    for name, tensor in _entries(model):
        aliases.setdefault(id(tensor), []).append(name)
    for tensor in _tensors(model):
        names = aliases[id(tensor)]
        if not tensor.is_meta and weights is None:
            continue
        tied = getattr(model, "all_tied_weights_keys", None) or {}  # transformers: tied name -> its source
        name = next((n for n in names if n in stored), None) or next(
            (n for n in names if tied.get(n) in stored), None)
        if name is not None and name not in stored:
            stored = {**stored, name: stored[tied[name]]}
        if name is None:
            if not tensor.is_meta:
                continue  # a real tensor of the model (e.g. a buffer computed at construction)
            kind = "buffer" if any(tensor is b for b in model.buffers()) else "parameter"
            raise ExportInputError(f"{kind} {names[0]} is on the meta device and not in the checkpoint"
                                   + (": build the model under accelerate.init_empty_weights(), which keeps "
                                      "buffers real" if kind == "buffer" else ""))
        source = stored[name]
        if source.shape != tuple(tensor.shape):
            raise ExportInputError(f"checkpoint tensor {name} has shape {list(source.shape)}, the model's "
                                   f"{list(tensor.shape)}")
        if (source.dtype.kind == "f") != tensor.is_floating_point() or tensor.dtype not in TORCH_DTYPES:
            raise ExportInputError(f"checkpoint tensor {name} is {source.stored or source.dtype}, the model's "
                                   f"{tensor.dtype}: they must both be floats or both integers")
        found[name] = source.astype(TORCH_DTYPES[tensor.dtype])
    return found


def _entries(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (qualified name, tensor) for every parameter and buffer entry, shared ones once per owner."""
    for prefix, module in model.named_modules(remove_duplicate=False):
        for table in (module._parameters, module._buffers):
            for leaf, tensor in table.items():
                if tensor is not None:
                    yield (f"{prefix}.{leaf}" if prefix else leaf), tensor


@contextlib.contextmanager
def bound(model: torch.nn.Module, sources: Mapping[str, MappedArray]) -> Iterator[None]:
    """Within the block, `model`'s stored parameters/buffers (and every alias of a shared one) are
    placeholders for their `sources` and accelerate's hooks are bypassed; afterwards the model is
    as it was."""
    if not sources:
        yield
        return
    placeholders: dict[int, torch.Tensor] = {}
    shared: dict[tuple, torch.Tensor] = {}   # tied weights read the same stored bytes: one placeholder
    for name, source in sources.items():
        owner, _, leaf = name.rpartition(".")
        module = model.get_submodule(owner)
        original = module._parameters.get(leaf, module._buffers.get(leaf))
        key = (source.data.__array_interface__["data"][0], source.data.dtype, source.shape, original.dtype)
        if key not in shared:
            shared[key] = placeholder_like(source, original.dtype, isinstance(original, torch.nn.Parameter))
        placeholders[id(original)] = shared[key]
    swapped, bypassed = [], []
    try:
        for module in model.modules():
            for table in (module._parameters, module._buffers):
                for leaf, tensor in list(table.items()):
                    if tensor is not None and id(tensor) in placeholders:
                        swapped.append((table, leaf, tensor))
                        table[leaf] = placeholders[id(tensor)]
            if hasattr(module, "_hf_hook") and hasattr(module, "_old_forward") and "forward" in vars(module):
                bypassed.append((module, vars(module)["forward"]))
                module.forward = module._old_forward
        log.info("%d weights stay in their files: captured on placeholders and streamed into the archive. "
                 "Constant folding, conv + batch-norm fusion and deduplication skip them (reading them would "
                 "load them; tract folds what is left when it loads the archive); tied weights read one "
                 "placeholder, so they are stored once; Q4_0 packs them while they are written", len(sources))
        yield
    finally:
        for table, leaf, original in reversed(swapped):
            table[leaf] = original
        for module, forward in bypassed:
            module.forward = forward


# ------------------------------------------------------------------------------------- checking


def compare_with_checkpoint(archive: str | os.PathLike, weights: str | os.PathLike,
                            names: Iterator[str] | None = None, calibration: str = "min_max") -> dict[str, str]:
    """Compare the weight files of an archive with the checkpoint they were written from, tensor by
    tensor and piece by piece (bounded memory): each checkpoint tensor stored in the archive under
    its name must hold the same values, converted to the archive's dtype (or packed to Q4_0 with
    `calibration`). Return {name: problem} for the tensors that differ (empty when all agree);
    `names` limits the check to some tensors."""
    from ..backends.nnef.reader import read_tensor_files
    stored = checkpoint_arrays(weights)
    wanted = set(names) if names is not None else None
    problems: dict[str, str] = {}
    for label, dtype, shape, chunks in read_tensor_files(archive):
        if label not in stored or (wanted is not None and label not in wanted):
            continue
        source = stored[label]
        if tuple(shape) != source.shape:
            problems[label] = f"shape {list(shape)} in the archive, {list(source.shape)} in the checkpoint"
            continue
        source = source.quantized("q4_0", calibration) if dtype == "q4_0" else source.astype(dtype)
        differs = _first_difference(source.chunks(), chunks, np.dtype(np.uint8 if dtype == "q4_0" else dtype))
        if differs:
            problems[label] = differs
    return problems


def _first_difference(expected: Iterator[np.ndarray], got: Iterator[bytes], dtype: np.dtype) -> str:
    """Compare two streams of the same values (arrays, raw bytes); say where they first differ."""
    pending, offset = b"", 0
    for piece in expected:
        raw = piece.view(np.uint8).tobytes()
        while len(pending) < len(raw):
            more = next(got, None)
            if more is None:
                return f"the archive holds fewer values (after {offset // dtype.itemsize})"
            pending += more
        if pending[:len(raw)] != raw:
            index = next(i for i in range(len(raw)) if pending[i] != raw[i]) // dtype.itemsize
            return f"value {offset // dtype.itemsize + index} differs"
        pending, offset = pending[len(raw):], offset + len(raw)
    return "the archive holds more values" if pending or next(got, None) else ""
