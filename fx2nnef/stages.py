"""The stages of one export, shared by every entry point (`export_model_to_nnef`, `fx2nnef.llm`).

    export = Export.begin(model, args, path, target, input_names, output_names, ...)
    with export.guard():        # on failure: the debug bundle, no file left at the path, error re-raised
        export.build()          # capture -> passes -> lower -> validate: the NNEF graph
        export.write()          # serialize it to a temporary sibling of the path
        export.check()          # run it in tract (or the Khronos tools) and compare with PyTorch
        report = export.commit()  # move the archive into place; the ExportReport

An entry point with its own check (an LLM checked by generating tokens) calls `build`, `write`,
its check on `export.temporary`, then `commit`: there is one pipeline, whoever drives it.

The reference of the check is the model carrying exactly the weights the archive holds: with
quantized weights, `export.reference_weights()` (their decoded values, by parameter name) replace
the float ones for the reference call only (`reference_outputs(model, args, kwargs, weights)`);
the error against the float model is reported apart (`ExportReport.float_checks`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.utils._pytree as pytree

from .backends.nnef import naming, serializer
from .backends.nnef.extensions import add_extensions
from .backends.nnef.graph import NUMPY_DTYPES, Graph
from .backends.nnef.lower import lower_program
from .backends.nnef.registry import LoweringRegistry
from .backends.nnef.validate import RANDOM_OPERATIONS, random_outputs, remove_dead_operations, validate
from .backends.tract import (OutputReport, check_close, compare_outputs, format_report, resolve_tolerance,
                             run_isolated, tract_version, write_debug_bundle)
from .backends.tract.cli import cli_version, run_cli
from .backends.tract.pulse import PulseReport, check_pulse, refuse_reverse_loops
from .backends.tract.runner import LoadedArchive, release_python
from .compiler.dynamic import DynamicAxes
from .compiler.frontend import bind_inputs, eval_mode
from .compiler.pass_base import PassLike, PassRecord
from .compiler import weights as weights_on_disk
from .compiler.pipeline import CompileResult, compile_bound, default_passes
from .compiler.program import archive_weights
from .errors import (ExportInputError, FX2NNEFError, InvalidGraphError, LoweringError, PassError,
                     TractCheckError, UnsupportedOpError)
from .onnx_check import OnnxCheck, cross_check, raise_unless_agree, run_onnx_path
from .passes.legalize_complex import complex_io
from .targets import KhronosNNEF, TractNNEF

log = logging.getLogger("fx2nnef")
NOT_GIVEN: Any = type("NotGiven", (), {"__repr__": lambda self: "NOT_GIVEN"})()  # a parameter left out


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
    checked_with: str | None = None    # the tract that ran the check: "tract 0.23.9 (package)", ...
    # with quantized weights: tract against the float model (what quantization costs), per size
    float_checks: dict[str, list[OutputReport]] = dataclasses.field(default_factory=dict)
    pulses: dict[int, PulseReport] = dataclasses.field(default_factory=dict)  # per pulse, with streaming_axis
    generation: Any = None   # an LLM export's generation check (fx2nnef.llm.GenerationReport)

    @property
    def signature(self) -> str:
        return f"graph {self.graph.name}({', '.join(self.input_names)}) -> ({', '.join(self.output_names)})"


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """Return a tensor's data as numpy (bf16 widened to f32, which numpy lacks; a complex tensor as its
    (real, imaginary) pairs on a trailing axis of 2, as the archive holds it)."""
    t = t.detach().cpu()
    if t.is_complex():
        t = torch.view_as_real(t.resolve_conj())
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


def reference_outputs(model: torch.nn.Module, args: tuple, kwargs: dict,
                      weights: dict[str, torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Run the model eagerly (eval mode, no grad) and return its tensor outputs, flattened. With
    `weights` (parameter name -> tensor) the call reads those instead of the model's own (tied
    parameters follow), which are back in place when it returns."""
    with eval_mode(model, warn=False), torch.no_grad():
        if weights:
            out = torch.func.functional_call(model, weights, args, kwargs, tie_weights=True, strict=False)
        else:
            out = model(*args, **kwargs)
    return [x for x in pytree.tree_leaves(out) if isinstance(x, torch.Tensor)]


def archive_path(path: Path, compression_level: Any) -> tuple[Path, int | None]:
    """Return the archive's path and .tgz zlib level for `compression_level` (see Export.begin);
    anything else than None, 0-9 or NOT_GIVEN (the suffix decides) is an ExportInputError."""
    kind = serializer.container_kind(path)
    if compression_level is NOT_GIVEN:
        return path, None
    if compression_level is not None and (isinstance(compression_level, bool) or compression_level not in range(10)):
        raise ExportInputError(f"compression_level must be None (a directory), 0 (.tar) or 1-9 (.tgz), "
                               f"got {compression_level!r}")
    wanted = "directory" if compression_level is None else "tar" if compression_level == 0 else "tgz"
    if kind == "directory" and wanted != "directory":
        return path.with_name(path.name + (".tar" if wanted == "tar" else ".tgz")), compression_level or None
    if kind != wanted:
        raise ExportInputError(f"compression_level={compression_level!r} asks for a {wanted} but the path {path} "
                               f"names a {kind}: the path's suffix and compression_level must agree (drop the "
                               "suffix to let compression_level choose it, or drop compression_level)")
    return path, compression_level or None


def _temporary_sibling(path: Path) -> Path:
    """Return an unused path next to `path` that keeps its suffix (the container kind)."""
    return path.with_name(f"fx2nnef-tmp-{uuid.uuid4().hex[:8]}-{path.name}")


@dataclasses.dataclass
class Export:
    """One export in progress: its inputs, then what each stage produced."""

    model: torch.nn.Module
    args: tuple
    kwargs: dict
    final: Path
    target: TractNNEF | KhronosNNEF
    registry: LoweringRegistry
    passes: Sequence[PassLike]
    dynamic: DynamicAxes | None
    debug_bundle_path: Path | None = None
    dump_ir_dir: Path | None = None
    compression_level: int | None = None          # zlib level of a .tgz (None: fx2nnef's fast default)
    naming_scheme: str = "natural_verbose"
    custom_extensions: Sequence[str] = ()
    sources: dict = dataclasses.field(default_factory=dict)   # weights streamed from their files, by name
    temporary: Path = dataclasses.field(init=False)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    records: list[PassRecord] = dataclasses.field(default_factory=list)
    compiled: CompileResult | None = None
    graph: Graph | None = None
    ranges: dict | None = None                      # symbol -> (min, max), with dynamic axes
    checks: dict[str, list[OutputReport]] = dataclasses.field(default_factory=dict)
    float_checks: dict[str, list[OutputReport]] = dataclasses.field(default_factory=dict)
    decoded: dict[str, torch.Tensor] | None = None  # reference_weights(), once computed
    # what the failing check saw, for the debug bundle
    fed: dict[str, np.ndarray] | None = None
    expected: list[np.ndarray] = dataclasses.field(default_factory=list)
    got: list[np.ndarray] | None = None
    onnx_check: OnnxCheck | None = None
    checked_with: str | None = None
    pulses: dict[int, PulseReport] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.temporary = _temporary_sibling(self.final)

    @classmethod
    def begin(cls, model: torch.nn.Module, args: Any, file_path_export: str | os.PathLike,
              target: TractNNEF | KhronosNNEF | None = None, input_names: Sequence[str] | None = None,
              output_names: Sequence[str] | None = None, debug_bundle_path: str | os.PathLike | None = None, *,
              kwargs: dict | None = None, registry: LoweringRegistry | None = None,
              passes: Sequence[PassLike] | None = None, dump_ir_dir: str | os.PathLike | None = None,
              compression_level: Any = NOT_GIVEN, naming_scheme: str = "natural_verbose",
              custom_extensions: Sequence[str] | None = None, allow_same_io_names: bool = False,
              weights: str | os.PathLike | None = None) -> "Export":
        """Check the arguments, bind the inputs to forward() and resolve the dynamic axes.
        `compression_level` (None: directory, 0: .tar, 1-9: .tgz) must agree with the path's suffix;
        a path without a container suffix gets the one it implies (torch_to_nnef's rule). With
        `weights` (a checkpoint) or a model whose parameters are on the meta device, the weights stay
        in their files (compiler/weights.py); eager PyTorch cannot then run, so check_io is refused."""
        target = target or TractNNEF()
        if not isinstance(target, (TractNNEF, KhronosNNEF)):
            raise ExportInputError(f"inference_target must be a TractNNEF or a KhronosNNEF, got {type(target).__name__}")
        if not isinstance(file_path_export, (str, os.PathLike)):
            raise ExportInputError(f"file_path_export must be a path, got {type(file_path_export).__name__}")
        final, level = archive_path(Path(file_path_export), compression_level)
        if not final.parent.exists():
            raise ExportInputError(f"the directory of file_path_export does not exist: {final.parent}")
        if naming_scheme not in naming.SCHEMES:
            raise ExportInputError(f"nnef_variable_naming_scheme={naming_scheme!r}: choose one of "
                                   f"{', '.join(naming.SCHEMES)}")
        registry = registry or LoweringRegistry.from_default()
        args, kwargs = bind_inputs(model, args, kwargs)
        sources = weights_on_disk.resolve(model, weights) if weights is not None or weights_on_disk.is_lazy(model) \
            else {}
        if sources and getattr(target, "check_io", False):
            raise ExportInputError(
                "check_io runs the model in PyTorch, and this model's weights are not in memory (on the meta "
                "device, offloaded to disk, or given as weights=): export with check_io=False, then check a "
                "smaller configuration of the same architecture with check_io=True, and compare the archive's "
                "weights with the checkpoint (fx2nnef.compare_with_checkpoint); see docs/big_models.md")
        dynamic = (DynamicAxes(model, args, kwargs, target.dynamic_axes, input_names)
                   if getattr(target, "dynamic_axes", None) else None)
        streaming = getattr(target, "streaming_axis", None)
        if streaming is not None and (dynamic is None or streaming not in dynamic.symbols):
            raise ExportInputError(f"TractNNEF(streaming_axis={streaming!r}) must be one of the dynamic_axes symbols "
                                   f"({', '.join(dynamic.symbols) if dynamic else 'none declared'})")
        if passes is None:
            passes = default_passes(input_names=input_names, output_names=output_names, registry=registry,
                                    target=target, allow_same_io_names=allow_same_io_names)
        return cls(model, args, kwargs, final, target, registry, passes, dynamic,
                   Path(debug_bundle_path) if debug_bundle_path is not None else None,
                   Path(dump_ir_dir) if dump_ir_dir is not None else None, level, naming_scheme,
                   tuple(custom_extensions or ()), sources)

    @property
    def khronos(self) -> bool:
        return isinstance(self.target, KhronosNNEF)

    @contextlib.contextmanager
    def guard(self) -> Iterator["Export"]:
        """Run stages; on any failure remove the temporary archive, and on an fx2nnef error write the
        debug bundle (when asked for) before re-raising."""
        try:
            yield self
        except FX2NNEFError as error:
            if self.debug_bundle_path is not None and self.compiled is not None:
                self._bundle(error)
            serializer.remove(self.temporary)
            raise
        except BaseException:
            serializer.remove(self.temporary)
            raise

    # ---------------------------------------------------------------------------------- build

    def build(self) -> Graph:
        """Capture the model, run the passes, lower and validate: set and return `self.graph`.

        Stack traces (for errors naming source lines) cost a third of the capture: the first
        attempt goes without them unless diagnostics are asked for, and a failure retries with them.
        """
        captured = self.dynamic.capture_inputs(self.model, self.args, self.kwargs) if self.dynamic else \
            (self.args, self.kwargs)
        diagnosing = self.debug_bundle_path is not None or self.dump_ir_dir is not None
        for record_stack_traces in ([True] if diagnosing else [False, True]):
            try:
                self.compiled = self._compile(captured, record_stack_traces)
                self.graph = self._lower(captured)
                return self.graph
            except (PassError, UnsupportedOpError, LoweringError, InvalidGraphError) as error:
                if record_stack_traces:
                    raise
                log.info("%s: capturing again with stack traces, to name the source lines", type(error).__name__)
                self.records.clear()
                self.timings.clear()
        raise AssertionError("unreachable")

    def _compile(self, captured: tuple[tuple, dict], record_stack_traces: bool) -> CompileResult:
        """Capture the model on `captured` inputs and run the passes."""
        dynamic = self.dynamic
        with dynamic.watch_capture(self.model, *captured) if dynamic else contextlib.nullcontext(), \
                weights_on_disk.bound(self.model, self.sources):
            return compile_bound(
                self.model, *captured, passes=self.passes, registry=self.registry, dump_dir=self.dump_ir_dir,
                records=self.records, record_ir=self.debug_bundle_path is not None,
                record_stack_traces=record_stack_traces,
                dynamic_shapes=dynamic.dynamic_shapes(self.model, *captured) if dynamic else None)

    def _lower(self, captured: tuple[tuple, dict]) -> Graph:
        """Lower the compiled program to a validated NNEF graph (and, with dynamic axes, set the
        symbol ranges). Adds the capture, pass and lowering times to `timings`."""
        compiled, target, dynamic = self.compiled, self.target, self.dynamic
        symbols = dynamic.symbol_map(compiled.program, compiled.example_inputs, captured) if dynamic else {}
        for record in compiled.records:
            self.timings[record.name] = record.seconds
        start = time.perf_counter()
        graph = lower_program(compiled.program, self.registry, symbols, dialect="khronos" if self.khronos else "tract",
                              fused_attention=getattr(target, "fused_attention", False),
                              tract_version=getattr(target, "version", None), naming_scheme=self.naming_scheme,
                              streaming=getattr(target, "streaming_axis", None) is not None,
                              random_seed=getattr(target, "random_seed", 0))
        _warn_if_random(graph, getattr(target, "random_seed", 0))
        if not self.khronos:
            graph.properties.update(_properties(target))
            pairs = complex_io(compiled.program)
            graph.properties.update({f"complex_{kind}_as_pairs": ",".join(names) for kind, names in pairs.items()
                                     if names})
        if dynamic:
            self.ranges = dynamic.ranges(compiled.program, symbols)
            graph.symbols = dynamic.symbols + graph.symbols  # then those of data-dependent sizes
            graph.assertions = dynamic.assertions(self.ranges)
        add_extensions(graph, self.custom_extensions)
        remove_dead_operations(graph)
        validate(graph)
        self.timings["lower"] = time.perf_counter() - start
        log.info("lowered to %d NNEF operations: %.3fs", len(graph.operations), self.timings["lower"])
        return graph

    # ---------------------------------------------------------------------------------- write

    def write(self) -> Path:
        """Serialize the graph to the temporary sibling of the final path; return that path."""
        start = time.perf_counter()
        serializer.save(self.graph, self.temporary, self.compression_level)
        self.timings["serialize"] = time.perf_counter() - start
        log.info("wrote the archive: %.3fs", self.timings["serialize"])
        return self.temporary

    # ---------------------------------------------------------------------------------- check

    def check(self) -> None:
        """Run the written archive as the target asks (nothing without check_io) and compare it with
        eager PyTorch; raise TractCheckError (or KhronosCheckError) on a mismatch."""
        if self.khronos:
            self._khronos_check()
        elif self.target.check_io:
            self._tract_check()
            if self.target.streaming_axis:
                self._pulse_check()

    def reference_weights(self) -> dict[str, torch.Tensor]:
        """Return parameter name -> the value that makes the model compute with the weights the
        archive holds, for each weight it stores quantized (`archive_weights`, in the parameter's
        dtype); empty when every weight is float. Computed once."""
        if self.decoded is None:
            dtypes = {name: p.dtype for name, p in self.model.named_parameters(remove_duplicate=False)}
            self.decoded = {name: value.to(dtypes.get(name, value.dtype))
                            for name, value in archive_weights(self.compiled.program).items()}
        return self.decoded

    def _tract_check(self) -> None:
        """Run the archive in tract on the example (and, with dynamic axes, on other sizes), against
        the model with the archive's weights; with quantized weights, also report the error against
        the float model."""
        start = time.perf_counter()
        target, dynamic, graph = self.target, self.dynamic, self.graph
        tolerance = resolve_tolerance(target.check_io_tolerance)
        sizes = dynamic.check_sizes(self.ranges) if dynamic else [{}]
        names = [t.name for t in graph.outputs]
        sampled = random_outputs(graph)
        execute = self._tract_runner()
        for i, size in enumerate(sizes):
            label = ", ".join(f"{k}={v}" for k, v in size.items()) or "example"
            run_args, run_kwargs = (self.args, self.kwargs) if i == 0 else \
                dynamic.resize(self.model, self.args, self.kwargs, size, seed=i)
            weights = self.reference_weights()
            self.expected = [to_numpy(t) for t in reference_outputs(self.model, run_args, run_kwargs, weights)]
            self.fed, self.got = self.feed(run_args, run_kwargs), None
            try:
                self.got = execute(self.fed)
                if i == 0 and target.check_io_onnx:
                    onnx_inputs = [to_numpy(t) for t in self.compiled.example_inputs]
                    self.onnx_check = cross_check(names, self.got, run_onnx_path(
                        self.model, self.args, self.kwargs, onnx_inputs), tolerance, sampled)
                self.checks[label] = check_close(names, self.expected, self.got, tolerance, sampled)
                if self.onnx_check is not None and i == 0:
                    raise_unless_agree(self.onnx_check)
            except TractCheckError as error:
                if i == 0:
                    raise
                raise TractCheckError(f"at {label} (dynamic axes): {error}") from error
            log.info("tract check passed at %s%s", label, " (against the model with the archive's decoded weights)"
                     if weights else "")
            log.debug("%s", format_report(self.checks[label]))
            if weights:
                self._float_check(label, run_args, run_kwargs)
        self.timings["check"] = time.perf_counter() - start
        log.info("tract check passed: %.3fs", self.timings["check"])

    def _pulse_check(self) -> None:
        """Stream the archive through tract along the target's streaming axis, at each pulse size, and
        compare it with PyTorch's whole-sequence outputs (backends/tract/pulse.py). The sequence is the
        example's, lengthened to at least four chunks of the largest pulse."""
        start = time.perf_counter()
        target, dynamic, graph = self.target, self.dynamic, self.graph
        symbol = target.streaming_axis
        example, hi = dynamic.example_sizes[symbol], self.ranges[symbol][1]
        length = max(example, min(4 * max(target.streaming_pulses), hi or math.inf))
        args, kwargs = (self.args, self.kwargs) if length == example else \
            dynamic.resize(self.model, self.args, self.kwargs, {symbol: length}, seed=len(self.checks) + 1)
        self.expected = [to_numpy(t) for t in reference_outputs(self.model, args, kwargs, self.reference_weights())]
        self.fed, self.got = self.feed(args, kwargs), None
        refuse_reverse_loops(graph, symbol)
        origins = {t.name: op.origin for op in graph.operations for t in op.outputs}
        for pulse in target.streaming_pulses:
            report = check_pulse(self.temporary, graph.registries, list(self.fed.values()), self.expected,
                                 [t.name for t in graph.outputs], symbol, pulse,
                                 resolve_tolerance(target.check_io_tolerance), origins)
            self.pulses[pulse] = report
            log.info("tract streams the archive along %s=%d in chunks of %d: delay %s, %.3f ms per chunk",
                     symbol, length, pulse, report.delays, report.seconds_per_chunk * 1e3)
        self.timings["pulse"] = time.perf_counter() - start

    def _tract_runner(self):
        """Return the function that runs the archive on inputs (by name) in the tract the target asks
        for: its command-line binary, a virtualenv of its release (FX2NNEF_TRACT_ENVS), or the
        installed `tract` package, saying which when that is not the targeted release."""
        target, graph = self.target, self.graph
        names = [t.name for t in graph.outputs]
        if target.specific_tract_binary_path:
            binary = target.specific_tract_binary_path
            self.checked_with = f"tract {cli_version(binary)} ({binary})"
            log.info("checking with %s", self.checked_with)
            return lambda fed: run_cli(binary, self.temporary, fed, names, graph.registries)
        installed = tract_version()
        python = release_python(target.version) if target.version != installed else None
        if python is not None:
            self.checked_with = f"tract {target.version} ({python})"
            log.info("checking with %s", self.checked_with)
            return lambda fed: run_isolated(self.temporary, list(fed.values()), graph.registries, python=python)
        if target.version != installed:
            log.warning("the archive targets tract %s but is checked with the installed tract %s (put a "
                        "virtualenv with tract==%s at $FX2NNEF_TRACT_ENVS/%s to check with that release)",
                        target.version, installed, target.version, target.version)
        self.checked_with = f"tract {installed} (package)"
        archive = LoadedArchive(self.temporary, graph.registries)  # loaded once for every check size
        return lambda fed: archive.run(list(fed.values()))

    def _float_check(self, label: str, args: tuple, kwargs: dict) -> None:
        """Record (and log) how far tract's outputs are from the float model's: what quantization costs
        (a report at the check's tolerance, never an error)."""
        float_expected = [to_numpy(t) for t in reference_outputs(self.model, args, kwargs)]
        names = [t.name for t in self.graph.outputs]
        self.float_checks[label] = compare_outputs(names, float_expected, self.got, self.target.check_io_tolerance)
        log.info("what quantization costs: tract against the float model at %s (reported, not checked):\n%s",
                 label, format_report(self.float_checks[label]))

    def _khronos_check(self) -> None:
        """Validate the archive with the Khronos parser and, with check_io, run it in the nnef_tools
        interpreter against eager PyTorch."""
        from .backends import khronos as khronos_backend
        start = time.perf_counter()
        fragments = list(self.graph.fragments)
        if not self.target.check_io:
            khronos_backend.parse(self.temporary, fragments)
            log.info("the Khronos nnef parser accepts the archive: %.3fs", time.perf_counter() - start)
            return
        expected = [to_numpy(t) for t in reference_outputs(self.model, self.args, self.kwargs)]
        inputs = list(self.feed(self.args, self.kwargs).values())
        reports = khronos_backend.check(self.temporary, [t.name for t in self.graph.outputs], inputs, expected,
                                        [e.dtype for e in expected], self.target.check_io_tolerance, fragments)
        self.checks["example"] = reports
        self.timings["check"] = time.perf_counter() - start
        log.info("Khronos parser and nnef_tools interpreter check passed: %.3fs\n%s", self.timings["check"],
                 format_report(reports))

    def feed(self, args: tuple, kwargs: dict) -> dict[str, np.ndarray]:
        """Return the tract inputs, by NNEF input name, for inputs bound like the example."""
        tensors = [x for x in pytree.tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor)]
        flat = dict(zip(self.compiled.input_names, tensors))
        return {t.name: to_numpy(flat[t.name]).astype(NUMPY_DTYPES[t.dtype], copy=False) for t in self.graph.inputs}

    # ---------------------------------------------------------------------------------- commit

    def commit(self) -> ExportReport:
        """Move the written archive to the final path; return the report."""
        serializer.move(self.temporary, self.final)
        graph = self.graph
        check = self.checks[next(iter(self.checks))] if self.checks else None
        return ExportReport(self.final, [t.name for t in graph.inputs], [t.name for t in graph.outputs],
                            self.timings, check, graph, self.checks, self.checked_with, self.float_checks,
                            self.pulses)

    def _bundle(self, error: Exception) -> None:
        """Write the debug bundle for a failed export (never raises)."""
        compiled = self.compiled
        names = compiled.output_names
        inputs = self.fed or {n: to_numpy(t) for n, t in zip(compiled.input_names, compiled.example_inputs)}
        onnx_got = self.onnx_check.outputs if self.onnx_check is not None else None
        bundle = write_debug_bundle(
            self.debug_bundle_path, archive_path=self.temporary if self.temporary.exists() else None,
            inputs=inputs, expected=dict(zip(names, self.expected)),
            got=dict(zip(names, self.got)) if self.got is not None else None,
            ir_dumps={r.name: r.ir for r in self.records}, error_text=f"{type(error).__name__}: {error}",
            onnx_got=dict(zip(names, onnx_got)) if onnx_got is not None else None)
        if bundle is not None:
            log.error("debug bundle written to %s", bundle)


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


def _properties(target: TractNNEF) -> dict[str, Any]:
    """Return the tract_core_properties written in every archive."""
    from importlib.metadata import version
    props = {"tract_target_version": target.version, "torch_version": torch.__version__,
             "fx2nnef_version": version("fx2nnef")}
    if target.dump_identity_properties:
        import getpass
        import platform
        props.update({"os": platform.platform(), "hostname": platform.node(), "user": getpass.getuser()})
    props.update(target.specific_properties or {})
    return props
