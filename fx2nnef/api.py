"""`export_model_to_nnef`: the one call a user makes (compatible with torch_to_nnef's)."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.utils._pytree as pytree

from .backends.nnef import serializer
from .backends.nnef.graph import NUMPY_DTYPES, Graph
from .backends.nnef.lower import lower_program
from .backends.nnef.registry import LoweringRegistry
from .backends.nnef.validate import RANDOM_OPERATIONS, random_outputs, remove_dead_operations, validate
from .backends.tract import OutputReport, check_close, format_report, resolve_tolerance, run, write_debug_bundle
from .compiler.dynamic import DynamicAxes
from .compiler.frontend import bind_inputs, eval_mode
from .compiler.pass_base import PassLike, PassRecord
from .compiler.pipeline import CompileResult, compile_bound, default_passes
from .errors import (ExportInputError, FX2NNEFError, InvalidGraphError, LoweringError, PassError,
                     TractCheckError, UnsupportedOpError)
from .onnx_check import OnnxCheck, cross_check, raise_unless_agree, run_onnx_path
from .targets import KhronosNNEF, TractNNEF

log = logging.getLogger("fx2nnef")


@dataclasses.dataclass
class ExportReport:
    """What an export produced: the archive, its signature, stage timings and the tract check."""

    path: Path
    input_names: list[str]
    output_names: list[str]
    timings: dict[str, float]
    check: list[OutputReport] | None
    graph: Graph
    checks: dict[str, list[OutputReport]] = dataclasses.field(default_factory=dict)  # per size, with dynamic axes

    @property
    def signature(self) -> str:
        return f"graph {self.graph.name}({', '.join(self.input_names)}) -> ({', '.join(self.output_names)})"


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    """Return a tensor's data as numpy (bf16 widened to f32, which numpy lacks)."""
    t = t.detach().cpu()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


def reference_outputs(model: torch.nn.Module, args: tuple, kwargs: dict) -> list[torch.Tensor]:
    """Run the model eagerly (eval mode, no grad) and return its tensor outputs, flattened."""
    with eval_mode(model, warn=False), torch.no_grad():
        out = model(*args, **kwargs)
    return [x for x in pytree.tree_leaves(out) if isinstance(x, torch.Tensor)]


def _temporary_sibling(path: Path) -> Path:
    """Return an unused path next to `path` that keeps its suffix (the container kind)."""
    return path.with_name(f"fx2nnef-tmp-{uuid.uuid4().hex[:8]}-{path.name}")


def export_model_to_nnef(
    model: torch.nn.Module,
    args: Any,
    file_path_export: str | os.PathLike,
    inference_target: TractNNEF | KhronosNNEF | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    debug_bundle_path: str | os.PathLike | None = None,
    *,
    kwargs: dict | None = None,
    registry: LoweringRegistry | None = None,
    passes: Sequence[PassLike] | None = None,
    dump_ir_dir: str | os.PathLike | None = None,
) -> ExportReport:
    """Export `model` called on `args` to an NNEF archive for tract, and check it if asked.

    The archive is a directory, a `.tar` or a `.tgz` by the suffix of `file_path_export`. It
    appears only when the export (and the check, with check_io) succeeds; on failure nothing is
    left there, and with `debug_bundle_path` a bundle for reproducing the failure is written.
    """
    target = inference_target or TractNNEF()
    if not isinstance(target, (TractNNEF, KhronosNNEF)):
        raise ExportInputError(f"inference_target must be a TractNNEF or a KhronosNNEF, got {type(target).__name__}")
    khronos = isinstance(target, KhronosNNEF)
    if not isinstance(file_path_export, (str, os.PathLike)):
        raise ExportInputError(f"file_path_export must be a path, got {type(file_path_export).__name__}")
    final = Path(file_path_export)
    if not final.parent.exists():
        raise ExportInputError(f"the directory of file_path_export does not exist: {final.parent}")
    registry = registry or LoweringRegistry.from_default()
    timings: dict[str, float] = {}
    args, kwargs = bind_inputs(model, args, kwargs)
    dynamic = DynamicAxes(model, args, kwargs, target.dynamic_axes, input_names) if getattr(target, "dynamic_axes", None) else None
    records: list[PassRecord] = []
    compiled: CompileResult | None = None
    temporary = _temporary_sibling(final)
    got: list[np.ndarray] | None = None
    expected: list[np.ndarray] = []
    fed: dict[str, np.ndarray] | None = None
    onnx_check: OnnxCheck | None = None
    try:
        if passes is None:
            passes = default_passes(input_names=input_names, output_names=output_names, registry=registry,
                                    target=target)
        captured = dynamic.capture_inputs(model, args, kwargs) if dynamic else (args, kwargs)
        # Stack traces (for errors naming source lines) cost a third of the capture: the first
        # attempt goes without them unless diagnostics are asked for, and a failure retries with them.
        diagnosing = debug_bundle_path is not None or dump_ir_dir is not None
        for record_stack_traces in ([True] if diagnosing else [False, True]):
            try:
                with dynamic.watch_capture(model, *captured) if dynamic else contextlib.nullcontext():
                    compiled = compile_bound(
                        model, *captured, passes=passes, registry=registry, dump_dir=dump_ir_dir, records=records,
                        record_ir=debug_bundle_path is not None, record_stack_traces=record_stack_traces,
                        dynamic_shapes=dynamic.dynamic_shapes(model, *captured) if dynamic else None)
                graph, ranges = _lower(compiled, target, registry, dynamic, captured, timings)
                break
            except (PassError, UnsupportedOpError, LoweringError, InvalidGraphError) as error:
                if record_stack_traces:
                    raise
                log.info("%s: capturing again with stack traces, to name the source lines", type(error).__name__)
                records.clear()
                timings.clear()

        start = time.perf_counter()
        serializer.save(graph, temporary)
        timings["serialize"] = time.perf_counter() - start
        log.info("wrote the archive: %.3fs", timings["serialize"])

        reports, checks = None, {}
        if khronos:
            reports = _khronos_check(target, temporary, graph, compiled, model, args, kwargs, timings)
        elif target.check_io:
            start = time.perf_counter()
            tolerance = resolve_tolerance(target.check_io_tolerance)
            sizes = dynamic.check_sizes(ranges) if dynamic else [{}]
            names = [t.name for t in graph.outputs]
            sampled = random_outputs(graph)
            for i, size in enumerate(sizes):
                label = ", ".join(f"{k}={v}" for k, v in size.items()) or "example"
                run_args, run_kwargs = (args, kwargs) if i == 0 else dynamic.resize(model, args, kwargs, size, seed=i)
                expected = [_to_numpy(t) for t in reference_outputs(model, run_args, run_kwargs)]
                fed, got = _feed(run_args, run_kwargs, compiled, graph), None
                try:
                    got = run(temporary, list(fed.values()), graph.registries)
                    if i == 0 and target.check_io_onnx:
                        onnx_inputs = [_to_numpy(t) for t in compiled.example_inputs]
                        onnx_check = cross_check(names, got, run_onnx_path(model, args, kwargs, onnx_inputs),
                                                 tolerance, sampled)
                    checks[label] = check_close(names, expected, got, tolerance, sampled)
                    if onnx_check is not None and i == 0:
                        raise_unless_agree(onnx_check)
                except TractCheckError as error:
                    if i == 0:
                        raise
                    raise TractCheckError(f"at {label} (dynamic axes): {error}") from error
                log.info("tract check passed at %s", label)
                log.debug("%s", format_report(checks[label]))
            reports = checks[next(iter(checks))]
            timings["check"] = time.perf_counter() - start
            log.info("tract check passed: %.3fs", timings["check"])
        serializer.move(temporary, final)
    except FX2NNEFError as error:
        if debug_bundle_path is not None and compiled is not None:
            _bundle(debug_bundle_path, temporary, compiled, records, expected, got, error, fed,
                    onnx_check.outputs if onnx_check is not None else None)
        serializer.remove(temporary)
        raise
    except BaseException:
        serializer.remove(temporary)
        raise
    return ExportReport(final, [t.name for t in graph.inputs], [t.name for t in graph.outputs],
                        timings, reports, graph, checks)


def _lower(compiled: CompileResult, target: TractNNEF | KhronosNNEF, registry: LoweringRegistry,
           dynamic: DynamicAxes | None, captured: tuple[tuple, dict], timings: dict[str, float]
           ) -> tuple[Graph, dict | None]:
    """Lower the compiled program to a validated NNEF graph; return it and (with dynamic axes) the
    symbol ranges. Adds the capture, pass and lowering times to `timings`."""
    khronos = isinstance(target, KhronosNNEF)
    symbols = dynamic.symbol_map(compiled.program, compiled.example_inputs, captured) if dynamic else {}
    for record in compiled.records:
        timings[record.name] = record.seconds
    start = time.perf_counter()
    graph = lower_program(compiled.program, registry, symbols, dialect="khronos" if khronos else "tract",
                          fused_attention=getattr(target, "fused_attention", False),
                          random_seed=getattr(target, "random_seed", 0))
    _warn_if_random(graph, getattr(target, "random_seed", 0))
    if not khronos:
        graph.properties.update(_properties(target))
    ranges = None
    if dynamic:
        ranges = dynamic.ranges(compiled.program, symbols)
        graph.symbols = dynamic.symbols + graph.symbols  # then those of data-dependent sizes
        graph.assertions = dynamic.assertions(ranges)
    remove_dead_operations(graph)
    validate(graph)
    timings["lower"] = time.perf_counter() - start
    log.info("lowered to %d NNEF operations: %.3fs", len(graph.operations), timings["lower"])
    return graph, ranges


def _warn_if_random(graph: Graph, seed: int | None) -> None:
    """Log that the archive draws random numbers from tract's generator, not PyTorch's stream."""
    count = sum(op.name in RANDOM_OPERATIONS for op in graph.operations)
    if not count:
        return
    seeding = f"seeds {seed}..{seed + count - 1}, fixed in the archive" if seed is not None else \
        "seeded by tract from the system on every run"
    log.warning("the model samples random numbers (%d random operator(s), %s): tract's generator is not "
                "PyTorch's, so the values differ from PyTorch's stream; check_io compares the outputs that "
                "depend on them (%s) by shape and dtype only", count, seeding,
                ", ".join(random_outputs(graph)) or "none")


def _feed(args: tuple, kwargs: dict, compiled: CompileResult, graph: Graph) -> dict[str, np.ndarray]:
    """Return the tract inputs, by NNEF input name, for inputs bound like the example."""
    tensors = [x for x in pytree.tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor)]
    flat = dict(zip(compiled.input_names, tensors))
    return {t.name: _to_numpy(flat[t.name]).astype(NUMPY_DTYPES[t.dtype], copy=False) for t in graph.inputs}


def _khronos_check(target: KhronosNNEF, archive: Path, graph: Graph, compiled: CompileResult,
                   model: torch.nn.Module, args: tuple, kwargs: dict, timings: dict[str, float]):
    """Validate the archive with the Khronos parser and, with check_io, run it in the nnef_tools
    interpreter against eager PyTorch; return the per-output reports (None without check_io)."""
    from .backends import khronos as khronos_backend
    start = time.perf_counter()
    fragments = list(graph.fragments)
    if not target.check_io:
        khronos_backend.parse(archive, fragments)
        log.info("the Khronos nnef parser accepts the archive: %.3fs", time.perf_counter() - start)
        return None
    expected = [_to_numpy(t) for t in reference_outputs(model, args, kwargs)]
    inputs = list(_feed(args, kwargs, compiled, graph).values())
    reports = khronos_backend.check(archive, [t.name for t in graph.outputs], inputs, expected,
                                    [e.dtype for e in expected], target.check_io_tolerance, fragments)
    timings["check"] = time.perf_counter() - start
    log.info("Khronos parser and nnef_tools interpreter check passed: %.3fs\n%s", timings["check"],
             format_report(reports))
    return reports


def _properties(target: TractNNEF) -> dict[str, Any]:
    """Return the tract_core_properties written in every archive."""
    from importlib.metadata import version
    props = {"tract_target_version": target.version, "torch_version": torch.__version__,
             "fx2nnef_version": version("fx2nnef")}
    props.update(target.specific_properties or {})
    return props


def _bundle(path, archive: Path, compiled: CompileResult, records: list[PassRecord],
            expected: list[np.ndarray], got: list[np.ndarray] | None, error: Exception,
            inputs: dict[str, np.ndarray] | None = None, onnx_got: list[np.ndarray] | None = None) -> None:
    """Write the debug bundle for a failed export (never raises); `inputs` are those of the failing check."""
    names = compiled.output_names
    bundle = write_debug_bundle(
        path, archive_path=archive if archive.exists() else None,
        inputs=inputs or {n: _to_numpy(t) for n, t in zip(compiled.input_names, compiled.example_inputs)},
        expected=dict(zip(names, expected)), got=dict(zip(names, got)) if got is not None else None,
        ir_dumps={r.name: r.ir for r in records}, error_text=f"{type(error).__name__}: {error}",
        onnx_got=dict(zip(names, onnx_got)) if onnx_got is not None else None)
    if bundle is not None:
        log.error("debug bundle written to %s", bundle)
