"""The default pass pipeline and `compile()`: capture a model and run the passes on it."""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.utils._pytree as pytree
from torch.export import ExportedProgram

from ..backends.nnef.registry import LoweringRegistry
from ..passes.common_subexpression import CommonSubexpressionPass
from ..passes.decompose import DecomposePass
from ..passes.dedupe_constants import DedupeConstantsPass
from ..passes.flatten_io import FlattenIOPass
from ..passes.fold_primitives import FoldPrimitivesPass
from ..passes.fuse_conv_batch_norm import FuseConvBatchNormPass
from ..passes.fuse_quantized_ops import FuseQuantizedOpsPass
from ..passes.legalize_complex import LegalizeComplexPass
from ..passes.legalize_dtypes import LegalizeDtypesPass
from ..passes.quantize_weights import QuantizeWeightsPass
from ..passes.roll_cell_loops import RollCellLoopsPass
from .frontend import TORCH_LOCK, bind_inputs, capture
from .recurrent import keep_recurrences_whole
from .pass_base import PassLike, PassManager, PassRecord, format_ir
from .program import OUTPUT_NAMES, input_name, output_node, user_inputs

log = logging.getLogger("fx2nnef")


def default_passes(*, input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
                   registry: LoweringRegistry | None = None, float64: torch.dtype = torch.float32,
                   bfloat16: torch.dtype = torch.float32, target: Any = None,
                   allow_same_io_names: bool = False) -> list[PassLike]:
    """Return the default pipeline, in order; a target (TractNNEF, KhronosNNEF) sets the dtype rules
    and the weight quantization, else `float64`/`bfloat16` do."""
    dtype_rules = target.dtype_rules() if target is not None else {"float64": float64, "bfloat16": bfloat16}
    quant_rules = target.weight_quant_rules() if hasattr(target, "weight_quant_rules") else None
    return [
        # functional ATen; decompose exactly what the registry cannot lower, so later passes
        # see the final op set (and a re-trace cannot drop the IO names set below)
        DecomposePass(registry),
        # flat named inputs and outputs
        FlattenIOPass(input_names, output_names, allow_same_io_names),
        # Python loops over time calling a recurrent cell, which torch.export unrolled: one layer each
        RollCellLoopsPass(),
        # inference batch norms folded into the convolutions that feed them
        FuseConvBatchNormPass(),
        # Q4_0 weights chosen after that fusion (tract cannot fold a scale into Q4_0 blocks) and while
        # they are still parameters read by their layers (folding turns `x @ w.t()` into a product
        # with a transposed constant)
        *([QuantizeWeightsPass(**quant_rules)] if quant_rules is not None else []),
        # fold what is known at export time before legalization, so it sees fewer casts
        FoldPrimitivesPass(),
        # complex values as real (real, imaginary) pairs on a trailing axis of 2; FFTs as fx2nnef::fft/stft
        LegalizeComplexPass(),
        # dtypes the target runs; implicit promotions become explicit casts
        LegalizeDtypesPass(**dtype_rules),
        # PT2E layers with per-tensor int8 weights on tract's integer kernels, when asked
        *([FuseQuantizedOpsPass()] if getattr(target, "int8_kernels", False) else []),
        # weights with equal bytes read as one, then ops on equal arguments computed once
        DedupeConstantsPass(),
        CommonSubexpressionPass(),
    ]


@dataclasses.dataclass
class CompileResult:
    """The program after the pipeline, with what is needed to lower, run and inspect it."""

    program: ExportedProgram
    records: list[PassRecord]          # "capture" first, then one per pass
    example_inputs: list[torch.Tensor]  # flat, in NNEF input order

    @property
    def input_names(self) -> list[str]:
        return [input_name(n) for n in user_inputs(self.program)]

    @property
    def output_names(self) -> list[str]:
        return list(output_node(self.program).meta.get(OUTPUT_NAMES, []))

    def ir(self, pass_name: str) -> str:
        """Return the IR text after the named pass ('capture' for the captured program)."""
        for record in self.records:
            if record.name == pass_name:
                return record.ir
        raise KeyError(f"no pass named {pass_name!r}; ran {[r.name for r in self.records]}")


def flat_inputs(args: tuple, kwargs: dict, in_spec: pytree.TreeSpec) -> list[torch.Tensor]:
    """Flatten example inputs the way the captured program's in_spec does; keep the tensors."""
    kw_spec = in_spec.child(1) if in_spec.num_children == 2 else None
    if kw_spec is not None and kw_spec.context:
        kwargs = {k: kwargs[k] for k in kw_spec.context}
    return [x for x in pytree.tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor)]


def compile(model: torch.nn.Module, args: Any, kwargs: dict | None = None, *,
            input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
            passes: Sequence[PassLike] | None = None, registry: LoweringRegistry | None = None,
            dynamic_shapes: Any = None, dump_dir: str | Path | None = None) -> CompileResult:
    """Capture `model` on example inputs and run the pass pipeline (the default one unless `passes`).

    `args` follows export_model_to_nnef's rules (a tensor, a list/tuple in forward() order, or a
    mapping bound by name). The result holds the program after the last pass and the IR after each.
    """
    registry = registry or LoweringRegistry.from_default()
    if passes is None:
        passes = default_passes(input_names=input_names, output_names=output_names, registry=registry)
    args, kwargs = bind_inputs(model, args, kwargs)
    return compile_bound(model, args, kwargs, passes=passes, registry=registry,
                         dynamic_shapes=dynamic_shapes, dump_dir=dump_dir)


def compile_bound(model: torch.nn.Module, args: tuple, kwargs: dict, *, passes: Sequence[PassLike],
                  registry: LoweringRegistry, dynamic_shapes: Any = None, dump_dir: str | Path | None = None,
                  records: list[PassRecord] | None = None, record_ir: bool = True,
                  record_stack_traces: bool = True) -> CompileResult:
    """Do what `compile` does on inputs already bound by `bind_inputs`; fill `records` as it goes
    (with the IR after each step when `record_ir` or `dump_dir`). Without `record_stack_traces`
    the capture is faster but errors cannot name the user's source lines. Recurrent layers stay
    whole (one node each, time axis symbolic) through the capture and the passes."""
    records = [] if records is None else records
    record_ir = record_ir or bool(dump_dir)
    with TORCH_LOCK, keep_recurrences_whole(model):  # torch.export and the passes' re-tracing are not thread-safe
        return _compile_bound(model, args, kwargs, passes, dynamic_shapes, dump_dir, records, record_ir,
                              record_stack_traces)


def _compile_bound(model: torch.nn.Module, args: tuple, kwargs: dict, passes: Sequence[PassLike],
                   dynamic_shapes: Any, dump_dir: str | Path | None, records: list[PassRecord], record_ir: bool,
                   record_stack_traces: bool) -> CompileResult:
    """Capture the model and run the passes (see compile_bound)."""
    start = time.perf_counter()
    program = capture(model, args, kwargs, dynamic_shapes, record_stack_traces)
    records.append(PassRecord("capture", time.perf_counter() - start, True, format_ir(program) if record_ir else None))
    log.info("capture %s with torch.export: %.3fs", type(model).__name__, records[0].seconds)
    if dump_dir:
        Path(dump_dir).mkdir(parents=True, exist_ok=True)
        (Path(dump_dir) / "00_capture.txt").write_text(records[0].ir)
    example = flat_inputs(args, kwargs, program.call_spec.in_spec)
    program = PassManager(passes, dump_dir=dump_dir, record_ir=record_ir).run(program, records)
    return CompileResult(program, records, example)
