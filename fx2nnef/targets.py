"""Inference targets: what the exported NNEF may use and how the export is checked."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import torch

from .errors import ExportInputError

LATEST_TRACT = "0.23.9"
DTYPE_OPTIONS = {"f32": torch.float32, "f16": torch.float16, "f64": torch.float64}


@dataclasses.dataclass
class TractNNEF:
    """Target tract's NNEF dialect (standard NNEF + tract_* extensions).

    version: the tract version the archive is for (gates which tract operators are emitted).
    check_io: after export, run the archive in tract on the example inputs and compare each
        output with eager PyTorch at `check_io_tolerance` ("exact", "approx", "close", "very",
        "super", or an (atol, rtol) pair).
    dynamic_axes: ONNX-style {input_name: {axis: symbol}} for dimensions that vary at run time.
    specific_properties: extra key/value pairs written in the archive's tract_core_properties.
    float64 / bfloat16: what f64 and bf16 tensors are computed as ("f32", "f16" or "f64").
    check_io_onnx: with check_io, also export the model with torch.onnx.export, run that in
        tract's ONNX loader, and require its outputs to agree with the archive's.
    """

    version: str = LATEST_TRACT
    check_io: bool = True
    dynamic_axes: Mapping[str, Mapping[int, str] | Sequence[int]] | None = None
    check_io_tolerance: Any = "approx"
    specific_properties: Mapping[str, Any] | None = None
    float64: str = "f32"
    bfloat16: str = "f32"
    check_io_onnx: bool = False

    def __post_init__(self):
        for option in ("float64", "bfloat16"):
            if getattr(self, option) not in DTYPE_OPTIONS:
                raise ExportInputError(f"TractNNEF({option}={getattr(self, option)!r}): choose one of "
                                       f"{', '.join(DTYPE_OPTIONS)}")
        if self.bfloat16 == "f64":
            raise ExportInputError("TractNNEF(bfloat16='f64') is not supported: choose 'f32' or 'f16'")
        if not isinstance(self.version, str) or not all(p.isdigit() for p in self.version.split(".")):
            raise ExportInputError(f"TractNNEF(version={self.version!r}) must look like '0.23.9'")

    @staticmethod
    def latest_version() -> str:
        """Return the newest tract version fx2nnef targets."""
        return LATEST_TRACT

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.version.split("."))
