"""Run one fuzzed program through an exporter and tract, and say what happened.

`run_fx2nnef(program)` exports with fx2nnef (no check_io), runs the archive in a child process
(`run_isolated`: a Rust panic in tract kills the child, not the fuzzer) and compares each output
with eager PyTorch; `run_onnx_route(program)` does the same through `torch.onnx.export` and tract's
ONNX loader. Both return an `Outcome` whose kind is one row of the fuzz table.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import tempfile
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch

from fx2nnef import TractNNEF, export_model_to_nnef
from fx2nnef.backends.tract import compare_outputs, format_report, run_isolated
from fx2nnef.backends.tract.compare import TOLERANCES, Tolerance
from fx2nnef.errors import CaptureError, FX2NNEFError, TractCheckError

from programs import F16, Program, evaluate

PASS = "pass"
CLEAR = "clear export error"
RAW = "raw error (not the exporter's own type)"
INTERNAL = "internal crash wrapped as a clean error"
LOAD = "tract load or run error after a successful export"
ABORT = "process abort (inside tract)"
MISMATCH = "silent wrong numbers"
KINDS = (PASS, CLEAR, RAW, INTERNAL, LOAD, ABORT, MISMATCH)
FAILURES = (RAW, INTERNAL, LOAD, ABORT, MISMATCH)   # what the fuzz test does not accept from fx2nnef

# docs/dtypes.md: a chain of f16 ops is compared at the "whole model" f16 level
F16_PROGRAM = Tolerance(1e-2, 1e-2)
# errors that mean a bug in the code that raised them, not a refusal with a reason
PROGRAMMING_ERRORS = (AssertionError, AttributeError, IndexError, KeyError, TypeError, NameError,
                      ZeroDivisionError, UnboundLocalError, RecursionError, StopIteration)
TIMEOUT = 120.0


@dataclasses.dataclass
class Outcome:
    kind: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.kind in FAILURES


def tolerance(program: Program) -> Tolerance:
    """Return the comparison tolerance: f32 "approx", or the f16 whole-model level when any value
    of the program is f16."""
    return F16_PROGRAM if program.has_dtype(F16) else TOLERANCES["approx"]


def _numpy(values: list[torch.Tensor]) -> list[np.ndarray]:
    return [v.detach().contiguous().numpy() for v in values]


def _compare(program: Program, expected: list[np.ndarray], got: list[np.ndarray]) -> Outcome:
    reports = compare_outputs([f"output_{i}" for i in range(len(expected))], expected, got, tolerance(program))
    if all(r.ok for r in reports):
        return Outcome(PASS)
    return Outcome(MISMATCH, format_report(reports) + "\n" + "\n".join(r.message for r in reports if r.message))


def _internal_cause(error: BaseException) -> BaseException | None:
    """Return the programming error an fx2nnef error wraps (raised inside fx2nnef), if any."""
    if isinstance(error, CaptureError):
        return None
    cause = error.__cause__
    while cause is not None:
        if isinstance(cause, PROGRAMMING_ERRORS) and not isinstance(cause, FX2NNEFError):
            frames = traceback.extract_tb(cause.__traceback__)
            if frames and "/fx2nnef/" in frames[-1].filename:
                return cause
        cause = cause.__cause__
    return None


def _tract_failure(error: TractCheckError) -> Outcome:
    text = str(error)
    return Outcome(ABORT if "tract aborted" in text or "did not finish" in text else LOAD, text)


def run_fx2nnef(program: Program, workdir: Path | None = None) -> Outcome:
    """Export `program` with fx2nnef, run the archive in a child process, compare with eager."""
    inputs = program.example_inputs()
    expected = _numpy(evaluate(program, inputs))
    names = [f"x{i}" for i in range(len(inputs))]
    with contextlib.ExitStack() as stack:
        workdir = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fx2nnef-fuzz-")))
        path = workdir / "program.nnef.tar"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = export_model_to_nnef(program.module().eval(), inputs, path, TractNNEF(check_io=False),
                                              input_names=names)
        except FX2NNEFError as error:
            cause = _internal_cause(error)
            if cause is not None:
                return Outcome(INTERNAL, f"{type(error).__name__}: {error}\n"
                               + "".join(traceback.format_exception(cause)[-6:]))
            return Outcome(CLEAR, f"{type(error).__name__}: {error}")
        except Exception as error:  # noqa: BLE001 - classifying it is the point
            return Outcome(RAW, "".join(traceback.format_exception(error)[-8:]))
        fed = dict(zip(names, _numpy(inputs)))
        try:
            got = run_isolated(path, [fed[t.name] for t in report.graph.inputs], report.graph.registries,
                               timeout=TIMEOUT)
        except TractCheckError as error:
            return _tract_failure(error)
    return _compare(program, expected, got)


def run_onnx_route(program: Program, workdir: Path | None = None) -> Outcome:
    """Export `program` with torch.onnx.export (dynamo), run it in tract's ONNX loader in a child
    process, compare with eager."""
    inputs = program.example_inputs()
    expected = _numpy(evaluate(program, inputs))
    with contextlib.ExitStack() as stack:
        workdir = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fx2nnef-fuzz-")))
        path = workdir / "program.onnx"
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                torch.onnx.export(program.module().eval(), tuple(inputs), str(path), dynamo=True, verbose=False,
                                  external_data=False)
        except PROGRAMMING_ERRORS as error:
            return Outcome(RAW, f"{type(error).__name__}: {error}")
        except Exception as error:  # noqa: BLE001 - torch.onnx's own errors are its clean refusals
            return Outcome(CLEAR, f"{type(error).__name__}: {str(error)[:500]}")
        try:
            got = run_isolated(path, _numpy(inputs), timeout=TIMEOUT, onnx=True)
        except TractCheckError as error:
            return _tract_failure(error)
    return _compare(program, expected, got)
