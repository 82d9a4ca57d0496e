"""Inference targets: what the exported NNEF may use and how the export is checked."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import torch

from .errors import ExportInputError

LATEST_TRACT = "0.23.9"
KHRONOS_VERSIONS = ("1.0.5",)
DTYPE_OPTIONS = {"f32": torch.float32, "f16": torch.float16, "f64": torch.float64}


@dataclasses.dataclass
class TractNNEF:
    """Target tract's NNEF dialect (standard NNEF + tract_* extensions).

    version: the tract version the archive is for (written as the tract_target_version property;
        every operator fx2nnef emits exists in tract 0.23.9).
    check_io: after export, run the archive in tract on the example inputs and compare each
        output with eager PyTorch at `check_io_tolerance` ("exact", "approx", "close", "very",
        "super", or an (atol, rtol) pair).
    dynamic_axes: ONNX-style {input_name: {axis: symbol}} for dimensions that vary at run time
        (a list of axes generates the names; a symbol may carry a range: ("S", 1, 512) or
        DynamicDim("S", max=512)). One name on several inputs is one dimension. With check_io, the
        archive is checked at the example's sizes and at two other sizes per symbol
        (see docs/dynamic_axes.md).
    specific_properties: extra key/value pairs written in the archive's tract_core_properties.
    float64 / bfloat16: what f64 and bf16 tensors are computed as ("f32", "f16" or "f64"; bf16
        has no "f64"). tract has f64, so f64 inputs and outputs keep f64 in the archive's
        signature either way (cast at the boundary); tract has no bf16, so bf16 inputs and
        outputs become the chosen dtype (logged). See docs/dtypes.md.
    f16_sensitive_in_f32: compute softmax, normalizations, attention, matmul/linear/conv of f16
        tensors in f32 (cast in, cast the result back to f16): slower, closer to eager f32.
    check_io_onnx: with check_io, also export the model with torch.onnx.export, run that in
        tract's ONNX loader, and require its outputs to agree with the archive's.
    fused_attention: lower scaled_dot_product_attention to tract's fused `tract_transformers_sdpa`
        instead of matmul / softmax / matmul. Off by default: tract 0.23.9 runs the fused operator
        1.4-1.9x slower on CPU (benchmarks/bench_attention.py); grouped-query attention and a single
        query row (a decoding step, where it is faster) always use it.
    random_seed: the seed of the archive's first random operator (rand, randn, dropout in training
        mode, bernoulli, multinomial, ...); the others take the next seeds, so each draws its own
        stream and every run of the archive draws the same values. None: tract seeds every run from
        the system. tract's generator is not PyTorch's: the values differ from PyTorch's (a warning
        says so) and check_io compares the outputs that depend on them by shape and dtype only.
    """

    version: str = LATEST_TRACT
    check_io: bool = True
    dynamic_axes: Mapping[str, Mapping[int, str] | Sequence[int]] | None = None
    check_io_tolerance: Any = "approx"
    specific_properties: Mapping[str, Any] | None = None
    float64: str = "f32"
    bfloat16: str = "f32"
    f16_sensitive_in_f32: bool = False
    check_io_onnx: bool = False
    fused_attention: bool = False
    random_seed: int | None = 0

    def __post_init__(self):
        if self.random_seed is not None and (isinstance(self.random_seed, bool) or not isinstance(
                self.random_seed, int) or self.random_seed < 0):
            raise ExportInputError(f"TractNNEF(random_seed={self.random_seed!r}) must be an integer >= 0 or None")
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

    def dtype_rules(self) -> dict[str, Any]:
        """Return the LegalizeDtypesPass options this target implies."""
        return {"float64": DTYPE_OPTIONS[self.float64], "bfloat16": DTYPE_OPTIONS[self.bfloat16],
                "float16": torch.float16, "io_dtypes": frozenset({torch.float64, torch.float16}),
                "f16_sensitive_in_f32": self.f16_sensitive_in_f32}


@dataclasses.dataclass
class KhronosNNEF:
    """Target standard Khronos NNEF (no tract extensions), checked with the Khronos tools.

    version: the NNEF specification revision ("1.0.5"; the document says `version 1.0;`).
    check_io: parse and validate the archive with the Khronos `nnef` parser, run it with the
        `nnef_tools` PyTorch interpreter on the example inputs and compare each output with
        eager PyTorch at `check_io_tolerance` (needs `pip install nnef nnef_tools`).
    Standard NNEF types are `scalar`, `integer` and `logical` only: every float dtype is
    computed as `scalar` (f32 in the interpreter), every integer dtype as `integer` (i64), bool
    as `logical`. Shapes are static. Integer arithmetic and ops with no standard equivalent
    raise UnsupportedOpError at export, naming the op: use TractNNEF for those.
    """

    version: str = "1.0.5"
    check_io: bool = True
    check_io_tolerance: Any = "approx"

    def __post_init__(self):
        if self.version not in KHRONOS_VERSIONS:
            raise ExportInputError(f"KhronosNNEF(version={self.version!r}): supported: {', '.join(KHRONOS_VERSIONS)}")

    def dtype_rules(self) -> dict[str, Any]:
        """Return the LegalizeDtypesPass options this target implies (every float becomes f32)."""
        return {"float64": torch.float32, "bfloat16": torch.float32, "float16": torch.float32,
                "io_dtypes": frozenset(), "f16_sensitive_in_f32": False}
