"""Check a standard-NNEF archive with the Khronos tools.

`parse` loads it with the Khronos `nnef` parser (syntax, types against the standard library,
tensor files) and infers its shapes; `run` executes it with the `nnef_tools` interpreter (PyTorch
backend), which computes `scalar` as f32, `integer` as i64 and `logical` as bool. Both packages are
optional (`pip install nnef nnef_tools`); they are imported only here.
"""
from __future__ import annotations

import contextlib
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from fx2nnef.backends.tract.compare import compare_outputs, format_report, resolve_tolerance
from fx2nnef.errors import ExportInputError, KhronosCheckError

INSTALL_HINT = "pip install nnef nnef_tools (the Khronos NNEF parser and tools)"


def _nnef():
    """Import and return the Khronos `nnef` module, or raise a clear error if it is missing."""
    try:
        import nnef
    except ImportError as e:
        raise ExportInputError(f"KhronosNNEF checks the archive with the Khronos parser: {INSTALL_HINT}, "
                               f"or pass check_io=False") from e
    return nnef


@contextlib.contextmanager
def _directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a directory holding the archive: the path itself, or a temporary extraction of a tar."""
    path = Path(path)
    if path.is_dir():
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="fx2nnef-khronos-") as tmp, tarfile.open(path) as tar:
        tar.extractall(tmp, filter="data")
        yield Path(tmp)


def parse(path: str | os.PathLike, fragments: Iterable[str] = ()):
    """Load the archive with the Khronos parser and infer its shapes; return the `nnef.Graph`.

    Raises KhronosCheckError with the parser's message when the archive is not standard NNEF.
    """
    nnef = _nnef()
    with _directory(path) as directory:
        try:
            graph = nnef.load_graph(str(directory), lowered=list(fragments))
            nnef.infer_shapes(graph)
        except (nnef.Error, ValueError, AssertionError) as e:
            raise KhronosCheckError(f"the Khronos nnef parser rejects {path}: {e}") from e
    return graph


def _interpreter_input(array: np.ndarray) -> np.ndarray:
    """Return an input as the interpreter computes it: scalar as f32, integer as i64, logical as bool."""
    kind = array.dtype.kind
    return array.astype(np.float32 if kind == "f" else np.int64 if kind in "iu" else array.dtype, copy=False)


def run(path: str | os.PathLike, inputs: Sequence[np.ndarray], fragments: Iterable[str] = ()) -> list[np.ndarray]:
    """Run the archive with the nnef_tools PyTorch interpreter; return the outputs in graph order."""
    _nnef()
    try:
        from nnef_tools.interpreter.pytorch import Interpreter
    except ImportError as e:
        raise ExportInputError(f"KhronosNNEF(check_io=True) runs the archive with nnef_tools: {INSTALL_HINT}") from e
    with _directory(path) as directory:
        try:
            interpreter = Interpreter(str(directory), device="cpu", decomposed=list(fragments))
            outputs = interpreter([_interpreter_input(np.asarray(a)) for a in inputs])
        except Exception as e:  # the interpreter raises bare assertions and torch errors
            raise KhronosCheckError(f"the nnef_tools interpreter failed on {path}: {type(e).__name__}: {e}") from e
    return [np.asarray(value) for value in outputs.values()]


def check(path: str | os.PathLike, names: Sequence[str], inputs: Sequence[np.ndarray],
          expected: Sequence[np.ndarray], out_dtypes: Sequence[np.dtype], tolerance, fragments: Iterable[str] = ()):
    """Parse, run and compare the archive with eager PyTorch's outputs; return the per-output reports.

    Interpreter outputs are converted to `out_dtypes` (the PyTorch dtypes: standard NNEF's
    `integer` has no width). Raises KhronosCheckError naming every output that differs.
    """
    fragments = list(fragments)
    parse(path, fragments)
    got = [a.astype(d, copy=False) for a, d in zip(run(path, inputs, fragments), out_dtypes)]
    tol = resolve_tolerance(tolerance)
    reports = compare_outputs(names, expected, got, tol)
    failing = [r for r in reports if not r.ok]
    if failing:
        raise KhronosCheckError(
            f"{len(failing)} of {len(reports)} output(s) of the nnef_tools interpreter differ from PyTorch "
            f"beyond the tolerance ({tol}):\n" + "\n".join(f"- {r.name}: {r.message}" for r in failing)
            + "\n\n" + format_report(reports))
    return reports
