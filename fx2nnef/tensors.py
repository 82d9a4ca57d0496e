"""Tensors-only archives (torch_to_nnef's `export_tensors_to_nnef` / `export_tensors_from_disk_to_nnef`):
each tensor written as `<name>.dat` in a directory, e.g. a LoRA/PEFT patch for an exported model.

Each file is written to a temporary sibling and renamed, so a failure leaves no partial file;
safetensors files are read through a memory map, one tensor at a time.
"""
from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
import torch

from .backends.nnef.graph import IDENTIFIER
from .backends.nnef.serializer import write_dat
from .errors import ExportInputError, SerializationError

log = logging.getLogger("fx2nnef")
SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


def export_tensors_to_nnef(name_to_torch_tensors: Mapping[str, torch.Tensor],
                           output_dir: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Write each tensor as `<output_dir>/<name>.dat` (tract's tensor file format); return the mapping.
    Names are file names: letters, digits, '_', '.', '-' (and '/' for subdirectories)."""
    directory = Path(output_dir)
    if not directory.is_dir():
        raise ExportInputError(f"output_dir {directory} is not an existing directory")
    for name, tensor in name_to_torch_tensors.items():
        _write_tensor(directory, name, tensor)
    log.info("wrote %d tensor file(s) to %s", len(name_to_torch_tensors), directory)
    return dict(name_to_torch_tensors)


def export_tensors_from_disk_to_nnef(store_filepath: str | os.PathLike, output_dir: str | os.PathLike,
                                     filter_key: Callable[[str], bool] | None = None,
                                     fn_check_found_tensors: Callable[[dict[str, torch.Tensor]], object] | None = None,
                                     map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Write the tensors of a `.safetensors`, `.pt`, `.pth` or `.bin` file (those `filter_key` keeps)
    as `.dat` files in `output_dir`; `fn_check_found_tensors` sees them first. Return them by name."""
    found = dict(iter_tensors_from_disk(store_filepath, filter_key, map_location))
    if fn_check_found_tensors is not None:
        fn_check_found_tensors(found)
    return export_tensors_to_nnef(found, output_dir)


def iter_tensors_from_disk(store_filepath: str | os.PathLike, filter_key: Callable[[str], bool] | None = None,
                           map_location: str | torch.device = "cpu") -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, tensor) for each tensor of a checkpoint file that `filter_key` keeps."""
    path = Path(store_filepath)
    keep = filter_key or (lambda key: True)
    if not path.is_file():
        raise ExportInputError(f"no tensor file at {path}")
    if path.name.endswith(".safetensors"):
        from safetensors import safe_open
        with safe_open(str(path), framework="pt", device="cpu") as stored:
            for key in stored.keys():
                if keep(key):
                    yield key, stored.get_tensor(key)
        return
    if not path.name.endswith(SUFFIXES):
        raise ExportInputError(f"{path}: tensor files end in {', '.join(SUFFIXES)}")
    try:
        loaded = torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    except Exception as exc:
        raise ExportInputError(f"cannot read the state dict {path}: {exc}") from exc
    items = loaded.named_parameters() if isinstance(loaded, torch.nn.Module) else \
        loaded.items() if isinstance(loaded, Mapping) else None
    if items is None:
        raise ExportInputError(f"{path} holds a {type(loaded).__name__}, not a state dict")
    for key, value in items:
        if not isinstance(value, torch.Tensor):
            log.warning("%s: %s is a %s, not a tensor: skipped", path, key, type(value).__name__)
        elif keep(key):
            yield key, value


def _write_tensor(directory: Path, name: str, tensor: torch.Tensor) -> None:
    """Write one tensor to `<directory>/<name>.dat` through a temporary file."""
    parts = name.split("/") if isinstance(name, str) else [""]
    if not all(part and not part.startswith(".") and IDENTIFIER.fullmatch(part.replace(".", "_").replace("-", "_"))
               for part in parts):
        raise ExportInputError(f"tensor name {name!r} cannot be a file name here (letters, digits, '_', '.', '-', "
                               "'/' between non-empty parts not starting with '.')")
    if not isinstance(tensor, torch.Tensor):
        raise ExportInputError(f"{name} is a {type(tensor).__name__}, not a torch.Tensor")
    if tensor.dtype == torch.bfloat16 or tensor.is_quantized or tensor.is_complex():
        raise ExportInputError(f"{name} is {tensor.dtype}, which tract's tensor files cannot hold: convert it to the "
                               "dtype of the exported model first (e.g. tensor.half() or tensor.float())")
    target = directory / f"{name}.dat"
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "xb") as f:
            write_dat(f, np.ascontiguousarray(tensor.detach().cpu().numpy()))
        os.replace(temporary, target)
    except BaseException as exc:
        temporary.unlink(missing_ok=True)
        if isinstance(exc, (ExportInputError, SerializationError)) or not isinstance(exc, Exception):
            raise
        raise SerializationError(f"cannot write {target}: {exc}") from exc
