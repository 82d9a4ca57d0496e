"""Inference targets: what the exported NNEF may use and how the export is checked."""
from __future__ import annotations

import copy
import dataclasses
import enum
import logging
import os
from typing import Any, Mapping, Sequence

import torch

from .backends.nnef.q4_0 import CALIBRATIONS as WEIGHT_QUANT_CALIBRATIONS
from .backends.nnef.versions import OLDEST_TRACT, parse_version
from .backends.tract.compare import resolve_tolerance
from .errors import ExportInputError
from .passes.quantize_weights import LAYERS as WEIGHT_QUANT_LAYERS

log = logging.getLogger("fx2nnef")

LATEST_TRACT = "0.23.9"
KHRONOS_VERSIONS = ("1.0.5",)
DTYPE_OPTIONS = {"f32": torch.float32, "f16": torch.float16, "f64": torch.float64}
WEIGHT_QUANTS = ("q4_0",)


class TractCheckTolerance(str, enum.Enum):
    """tract's approximation levels, by torch_to_nnef's names (a member equals its string)."""

    EXACT = "exact"
    APPROXIMATE = "approximate"
    CLOSE = "close"
    VERY = "very"
    SUPER = "super"
    ULTRA = "ultra"


class TractFeatureFlag(str, enum.Enum):
    """torch_to_nnef's tract feature flags (fx2nnef needs none: see TractNNEF.feature_flags)."""

    DEFAULT = "default"
    COMPLEX = "complex"


# torch_to_nnef options that have nothing to act on here -> why (logged once when set)
_NO_EFFECT = {
    "feature_flags": "fx2nnef needs no tract feature flag (complex tensors are written as real pairs)",
    "upsample_with_debox": "fx2nnef writes upsampling as tract's resize operator, which needs no debox form",
    "native_gated_delta_op": "fx2nnef has no t2n_extra gated-delta custom op to write as a fused operator",
}


@dataclasses.dataclass
class TractNNEF:
    """Target tract's NNEF dialect (standard NNEF + tract_* extensions).

    The parameters up to `native_gated_delta_op` are torch_to_nnef's, in its order and with its
    meaning (docs/torch_to_nnef.md lists each); the ones after it are fx2nnef's and keyword-only.

    version: the tract release the archive is for ("0.21.13", or anything whose str() is one). An
        operator that release cannot read is written in an older form, or the export fails naming
        the operator and the first release that reads it (fx2nnef/backends/nnef/versions.py).
    feature_flags: accepted; fx2nnef needs no tract feature flag (logged).
    check_io: after export, run the archive in tract on the example inputs and compare each
        output with eager PyTorch at `check_io_tolerance`. The check uses the installed `tract`
        package, or a virtualenv of the targeted release found in $FX2NNEF_TRACT_ENVS
        (docs/torch_to_nnef.md), or the tract command line at `specific_tract_binary_path`.
    dynamic_axes: ONNX-style {input_name: {axis: symbol}} for dimensions that vary at run time
        (a list of axes generates the names; a symbol may carry a range: ("S", 1, 512) or
        DynamicDim("S", max=512)). One name on several inputs is one dimension. With check_io, the
        archive is checked at the example's sizes and at two other sizes per symbol
        (see docs/dynamic_axes.md).
    specific_tract_binary_path: check with this tract command-line binary instead of the package.
    check_io_tolerance: tract's approximation levels: "exact", "approximate" (alias "approx"),
        "close", "very", "super", "ultra" or a TractCheckTolerance member, or an (atol, rtol) pair.
    specific_properties: extra key/value pairs written in the archive's tract_core_properties.
    dump_identity_properties: also write the host name, user and OS in the properties (off by
        default here: archives are byte-identical wherever they are exported).
    force_attention_inner_in_f32 / force_linear_accumulation_in_f32 / force_norm_in_f32: compute
        the softmax and attention / the matmul, linear and conv / the normalizations of f16 tensors
        in f32 (cast in, cast the result back to f16).
    reify_sdpa_operator: True writes attention as tract's fused `tract_transformers_sdpa`; None or
        False as matmul / softmax / matmul, which tract 0.23.9 runs 1.4-1.9x faster on CPU
        (benchmarks/bench_attention.py). Grouped-query attention and single-row queries use the
        fused operator from tract 0.22 on whatever this says.
    upcast_reified_sdpa_inputs_to_f32: with force_attention_inner_in_f32, cast the fused attention's
        f16 inputs to f32 (True) or keep them f16 with tract's f32 accumulator (False).
    upsample_with_debox, native_gated_delta_op: accepted; nothing to act on here (logged).

    float64 / bfloat16: what f64 and bf16 tensors are computed as ("f32", "f16" or "f64"; bf16
        has no "f64"). tract has f64, so f64 inputs and outputs keep f64 in the archive's
        signature either way (cast at the boundary); tract has no bf16, so bf16 inputs and
        outputs become the chosen dtype (logged). See docs/dtypes.md.
    f16_sensitive_in_f32: all three force_*_in_f32 options at once.
    check_io_onnx: with check_io, also export the model with torch.onnx.export, run that in
        tract's ONNX loader, and require its outputs to agree with the archive's.
    fused_attention: the same as reify_sdpa_operator=True.
    weight_quant: "q4_0" stores the parameter weights of the `weight_quant_layers` ("linear",
        "embedding", "conv": nn.Linear / nn.Embedding / nn.Conv1d, nn.Conv2d and their functional
        forms) as tract's Q4_0 blocks (4.5 bits per weight); None keeps every weight float.
        Weights whose rows are not a multiple of 32 values stay float (logged). The check then
        compares tract with the model carrying the decoded weights, and reports the error against
        the float model apart (see docs/quantization.md).
    weight_quant_calibration: how Q4_0 block scales are chosen: "min_max" (GGML's rule) or "mse"
        (the scale minimizing each block's squared error; slower to export, never worse).
    int8_kernels: for a model quantized with PT2E, run its convolutions and linears whose weights
        are quantized per tensor with tract's integer kernels (quantized operands, i32 bias and
        accumulators) instead of in float between quantize/dequantize casts (the default,
        "simulated" form, which matches PyTorch exactly). Per-channel weights stay simulated.
    streaming_axis: a symbol of dynamic_axes along which the archive must stream (time). With
        check_io, the archive is also pulsed in tract along it at each of `streaming_pulses` steps
        per chunk, run chunk by chunk and compared with PyTorch's whole-sequence outputs after the
        pulsed model's delay; an operation that cannot stream fails the export, named
        (docs/speech.md).
    streaming_pulses: the chunk sizes checked (each a multiple of the model's total stride on the
        streaming axis).
    random_seed: the seed of the archive's first random operator (rand, randn, dropout in training
        mode, bernoulli, multinomial, ...); the others take the next seeds, so each draws its own
        stream and every run of the archive draws the same values. None: tract seeds every run from
        the system. tract's generator is not PyTorch's: the values differ from PyTorch's (a warning
        says so) and check_io compares the outputs that depend on them by shape and dtype only.
    """

    version: Any = LATEST_TRACT
    feature_flags: set | None = None
    check_io: bool = True
    dynamic_axes: Mapping[str, Mapping[int, str] | Sequence[int]] | None = None
    specific_tract_binary_path: str | os.PathLike | None = None
    check_io_tolerance: Any = "approximate"
    specific_properties: Mapping[str, Any] | None = None
    dump_identity_properties: bool = False
    force_attention_inner_in_f32: bool = False
    force_linear_accumulation_in_f32: bool = False
    force_norm_in_f32: bool = False
    reify_sdpa_operator: bool | None = None
    upcast_reified_sdpa_inputs_to_f32: bool = True
    upsample_with_debox: bool = False
    native_gated_delta_op: bool | None = None
    _: dataclasses.KW_ONLY
    float64: str = "f32"
    bfloat16: str = "f32"
    f16_sensitive_in_f32: bool = False
    check_io_onnx: bool = False
    fused_attention: bool = False
    weight_quant: str | None = None
    weight_quant_layers: Sequence[str] = ("linear",)
    weight_quant_calibration: str = "min_max"
    int8_kernels: bool = False
    streaming_axis: str | None = None
    streaming_pulses: tuple[int, ...] = (4, 8)
    random_seed: int | None = 0

    def __post_init__(self):
        if self.random_seed is not None and (isinstance(self.random_seed, bool) or not isinstance(
                self.random_seed, int) or self.random_seed < 0):
            raise ExportInputError(f"TractNNEF(random_seed={self.random_seed!r}) must be an integer >= 0 or None")
        self.version = self.version.to_str() if hasattr(self.version, "to_str") else str(self.version)
        try:
            release = parse_version(self.version)
        except ValueError:
            raise ExportInputError(f"TractNNEF(version={self.version!r}) must look like '0.23.9'") from None
        if release < parse_version(OLDEST_TRACT):
            raise ExportInputError(f"TractNNEF(version={self.version!r}): fx2nnef writes archives for tract "
                                   f"{OLDEST_TRACT} and newer")
        if release > parse_version(LATEST_TRACT):
            log.warning("TractNNEF(version=%r): fx2nnef is tested up to tract %s; the archive uses what %s reads",
                        self.version, LATEST_TRACT, LATEST_TRACT)
        for option in ("float64", "bfloat16"):
            if getattr(self, option) not in DTYPE_OPTIONS:
                raise ExportInputError(f"TractNNEF({option}={getattr(self, option)!r}): choose one of "
                                       f"{', '.join(DTYPE_OPTIONS)}")
        if self.bfloat16 == "f64":
            raise ExportInputError("TractNNEF(bfloat16='f64') is not supported: choose 'f32' or 'f16'")
        if self.weight_quant not in (None, *WEIGHT_QUANTS):
            raise ExportInputError(f"TractNNEF(weight_quant={self.weight_quant!r}): choose None or one of "
                                   f"{', '.join(map(repr, WEIGHT_QUANTS))} (int8 models come from PT2E: "
                                   "see docs/quantization.md)")
        layers = (self.weight_quant_layers,) if isinstance(self.weight_quant_layers, str) else self.weight_quant_layers
        if not layers or any(layer not in WEIGHT_QUANT_LAYERS for layer in layers):
            raise ExportInputError(f"TractNNEF(weight_quant_layers={self.weight_quant_layers!r}): give some of "
                                   f"{', '.join(map(repr, WEIGHT_QUANT_LAYERS))}")
        self.weight_quant_layers = tuple(layers)
        if self.weight_quant_calibration not in WEIGHT_QUANT_CALIBRATIONS:
            raise ExportInputError(f"TractNNEF(weight_quant_calibration={self.weight_quant_calibration!r}): choose "
                                   f"one of {', '.join(map(repr, WEIGHT_QUANT_CALIBRATIONS))}")
        resolve_tolerance(self.check_io_tolerance)
        if self.streaming_axis is not None and not isinstance(self.streaming_axis, str):
            raise ExportInputError(f"TractNNEF(streaming_axis={self.streaming_axis!r}) must be a symbol name of "
                                   "dynamic_axes")
        if not self.streaming_pulses or not all(isinstance(p, int) and not isinstance(p, bool) and p > 0
                                                for p in self.streaming_pulses):
            raise ExportInputError(f"TractNNEF(streaming_pulses={self.streaming_pulses!r}) must list positive "
                                   "chunk sizes")
        if self.reify_sdpa_operator:
            self.fused_attention = True
        for option, why in _NO_EFFECT.items():
            if getattr(self, option):
                log.warning("TractNNEF(%s=%r) has no effect: %s", option, getattr(self, option), why)

    @staticmethod
    def latest_version() -> str:
        """Return the newest tract version fx2nnef targets."""
        return LATEST_TRACT

    @classmethod
    def latest(cls) -> "TractNNEF":
        """Return a target for the newest tract version fx2nnef targets, with the default options."""
        return cls(cls.latest_version())

    def with_dynamic_axes(self, dynamic_axes: Mapping[str, Any]) -> "TractNNEF":
        """Return a copy of this target with `dynamic_axes`."""
        return dataclasses.replace(copy.deepcopy(self), dynamic_axes=dynamic_axes)

    def with_check_io_tolerance(self, check_io_tolerance: Any) -> "TractNNEF":
        """Return a copy of this target with `check_io_tolerance`."""
        return dataclasses.replace(copy.deepcopy(self), check_io_tolerance=check_io_tolerance)

    def with_specific_properties(self, specific_properties: Mapping[str, Any]) -> "TractNNEF":
        """Return a copy of this target with `specific_properties`."""
        return dataclasses.replace(copy.deepcopy(self), specific_properties=specific_properties)

    def f16_in_f32(self) -> frozenset[str]:
        """Return the op groups ("attention", "linear", "norm") whose f16 work is done in f32."""
        groups = {name for name, on in (("attention", self.force_attention_inner_in_f32),
                                        ("linear", self.force_linear_accumulation_in_f32),
                                        ("norm", self.force_norm_in_f32)) if on or self.f16_sensitive_in_f32}
        if "attention" in groups and self.fused_attention and not self.upcast_reified_sdpa_inputs_to_f32:
            groups.add("attention-without-sdpa")
        return frozenset(groups)

    def dtype_rules(self) -> dict[str, Any]:
        """Return the LegalizeDtypesPass options this target implies."""
        return {"float64": DTYPE_OPTIONS[self.float64], "bfloat16": DTYPE_OPTIONS[self.bfloat16],
                "float16": torch.float16, "io_dtypes": frozenset({torch.float64, torch.float16}),
                "f16_in_f32": self.f16_in_f32()}

    def weight_quant_rules(self) -> dict[str, Any] | None:
        """Return the QuantizeWeightsPass options this target implies (None: no weight quantization).
        Q4_0 weights are read by f32 or f16 products, so weights the archive computes in f32 or f16 are
        quantized."""
        if self.weight_quant is None:
            return None
        dtypes = [torch.float32, torch.float16] + [dtype for dtype, option in ((torch.bfloat16, self.bfloat16),
                                                                (torch.float64, self.float64)) if option == "f32"]
        return {"layers": self.weight_quant_layers, "calibration": self.weight_quant_calibration,
                "dtypes": tuple(dtypes)}


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
                "io_dtypes": frozenset(), "f16_in_f32": frozenset()}
