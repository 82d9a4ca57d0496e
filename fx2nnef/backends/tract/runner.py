"""Load and run an NNEF archive with the `tract` Python bindings, in-process or in a child process.

Every tract failure comes out as a `TractCheckError` that names the archive. Inputs are checked
against the model's input facts before tract sees them, because tract's own messages for a
wrong dtype or shape are hard to read. `run_isolated` does the same work in a child process, so
that a Rust panic inside tract (which aborts the whole process) becomes an error.
"""
from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tract

from fx2nnef.errors import TractCheckError

# Registry id (as in `extension tract_registry <id>;`) -> the `tract.Nnef` method that enables it.
# None: the registry is always on in `tract.nnef()` (tract_core from tract 0.23 on; `load` switches
# it on in older releases).
REGISTRY_SWITCHES: dict[str, str | None] = {
    "tract_nnef": None,
    "tract_core": None,
    "tract_transformers": "with_tract_transformers",
    "tract_extra": "with_tract_extra",
    "tract_onnx": "with_onnx",
    "tract_pulse": "with_pulse",
    "pulse": "with_pulse",
}

# dtype token of a tract fact (`str(fact)` ends with it) -> numpy dtype that feeds it.
_FACT_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(numpy_name)
    for name, numpy_name in (
        ("bool", "bool"), ("f16", "float16"), ("f32", "float32"), ("f64", "float64"),
        ("i8", "int8"), ("i16", "int16"), ("i32", "int32"), ("i64", "int64"),
        ("u8", "uint8"), ("u16", "uint16"), ("u32", "uint32"), ("u64", "uint64"),
    )
}

_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PANIC = re.compile(r"^thread .* panicked at (.+):$")
_STAGE_PREFIX = "fx2nnef-stage: "


@dataclass(frozen=True)
class InputFact:
    """What one model input accepts: its name, dims (ints or symbol expressions) and dtype token."""

    name: str
    dims: tuple[int | str, ...]
    dtype: str

    def describe(self) -> str:
        """Return the fact as `shape [1, S] dtype f32`."""
        dims = ", ".join(str(d) for d in self.dims)
        return f"shape [{dims}] dtype {self.dtype}"


def tract_version() -> str:
    """Return the version of the tract native library the bindings load (e.g. "0.23.9")."""
    return tract.version()


def release_python(version: str) -> str | None:
    """Return the interpreter of a virtualenv holding the `tract` package of release `version`, found
    as `<dir>/<version>/bin/python` (or `<dir>/tract-<version>/...`) in a directory of the
    FX2NNEF_TRACT_ENVS path list; None when there is none."""
    for directory in filter(None, os.environ.get("FX2NNEF_TRACT_ENVS", "").split(os.pathsep)):
        for name in (version, f"tract-{version}"):
            python = Path(directory) / name / "bin" / "python"
            if python.exists():
                return str(python)
    return None


def _tract_message(exc: BaseException) -> str:
    """Return a tract error's message without the Rust backtrace that RUST_BACKTRACE=1 appends."""
    return str(exc).split("\n\nStack backtrace:")[0].strip()


def _switches(registries: Iterable[str]) -> list[str]:
    """Return the `tract.Nnef` methods that enable `registries`, once each, in a stable order."""
    registries = tuple(registries)
    unknown = sorted(set(registries) - set(REGISTRY_SWITCHES))
    if unknown:
        raise TractCheckError(
            f"tract {tract_version()} (Python bindings) cannot enable the registries {unknown}; "
            f"known registries: {sorted(REGISTRY_SWITCHES)}"
        )
    wanted = {REGISTRY_SWITCHES[name] for name in registries} - {None}
    return [method for method in dict.fromkeys(REGISTRY_SWITCHES.values()) if method in wanted]


def load(path: str | os.PathLike, registries: Iterable[str] = ()) -> tract.Model:
    """Load an NNEF directory, .tar or .tgz with the given tract registries enabled."""
    if not Path(path).exists():
        raise TractCheckError(f"tract could not load {path}: there is no file or directory there")
    loader = _loader(tuple(_switches(registries)))
    try:  # tract < 0.23 names it model_for_path
        return loader.load(str(path)) if hasattr(loader, "load") else loader.model_for_path(str(path))
    except tract.TractError as exc:
        raise TractCheckError(f"tract could not load {path}: {_tract_message(exc)}") from None


@functools.lru_cache(maxsize=None)
def _loader(switches: tuple[str, ...]) -> tract.Nnef:
    """Return tract's NNEF loader with the `switches` methods applied, made once per process (making
    one parses tract's NNEF standard library: ~5 ms, as long as loading a small archive)."""
    loader = tract.nnef()
    if hasattr(loader, "with_tract_core"):  # tract < 0.23
        loader = loader.with_tract_core()
    for method in switches:
        loader = getattr(loader, method)()
    return loader


def input_facts(model: tract.Model) -> list[InputFact]:
    """Return what each input of `model` accepts, in the order `run` takes the inputs."""
    return [_input_fact(model, index) for index in range(model.input_count())]


def _input_fact(model: tract.Model, index: int) -> InputFact:
    """Read the name, dims and dtype of input `index` of `model`."""
    *dims, dtype = str(model.input_fact(index)).split(",")  # "1,S,f32" (tract < 0.23: "1,S,F32")
    return InputFact(model.input_name(index), tuple(int(d) if d.isdigit() else d for d in dims), dtype.lower())


def check_inputs(facts: Sequence[InputFact], inputs: Sequence[np.ndarray], path: str | os.PathLike) -> None:
    """Raise TractCheckError unless `inputs` match `facts` in count, dtype and shape."""
    if len(inputs) != len(facts):
        expected = "; ".join(f"{fact.name}: {fact.describe()}" for fact in facts)
        raise TractCheckError(
            f"{path} takes {len(facts)} input(s) but {len(inputs)} were given; expected, in order: {expected}"
        )
    symbols: dict[str, tuple[int, str]] = {}
    for index, (fact, array) in enumerate(zip(facts, inputs)):
        problem = _dtype_problem(fact, array) or _shape_problem(fact, array, symbols)
        if problem:
            raise TractCheckError(
                f"input {index} '{fact.name}' of {path}: {problem}; "
                f"expected {fact.describe()}, got shape {list(array.shape)} dtype {array.dtype}"
            )


def _dtype_problem(fact: InputFact, array: np.ndarray) -> str | None:
    """Say why `array`'s dtype cannot feed `fact`, or return None if it can."""
    wanted = _FACT_DTYPES.get(fact.dtype)
    if wanted is None:
        return f"tract inputs of dtype {fact.dtype} cannot be fed from numpy"
    if array.dtype != wanted:
        return f"wrong dtype (tract does not convert: pass a {wanted} array)"
    return None


def _shape_problem(fact: InputFact, array: np.ndarray, symbols: dict[str, tuple[int, str]]) -> str | None:
    """Say why `array`'s shape does not fit `fact`, or return None; binds bare symbols in `symbols`."""
    if array.ndim != len(fact.dims):
        return f"wrong rank {array.ndim}"
    for axis, (dim, size) in enumerate(zip(fact.dims, array.shape)):
        if isinstance(dim, int) and dim != size:
            return f"axis {axis} has size {size}, not {dim}"
        if isinstance(dim, str) and _SYMBOL.fullmatch(dim):
            bound, where = symbols.setdefault(dim, (size, f"input '{fact.name}' axis {axis}"))
            if bound != size:
                return f"axis {axis} is {dim}, which {where} set to {bound}, but has size {size}"
    return None


def prepare(model: tract.Model, path: str | os.PathLike) -> tract.Runnable:
    """Optimize `model` for this CPU and make it runnable (this consumes `model`)."""
    try:  # tract < 0.23 optimizes only when asked
        return (model.into_optimized() if hasattr(model, "into_optimized") else model).into_runnable()
    except tract.TractError as exc:
        raise TractCheckError(f"tract could not optimize {path}: {_tract_message(exc)}") from None


def execute(runnable: tract.Runnable, inputs: Sequence[np.ndarray], path: str | os.PathLike) -> list[np.ndarray]:
    """Run `runnable` on `inputs` and return its outputs as numpy arrays, in graph output order."""
    try:
        return [_to_numpy(tensor) for tensor in runnable.run(list(inputs))]
    except tract.TractError as exc:
        message = _tract_message(exc)
        if "TDim" in message:
            message += " (an output is a symbolic-dim tensor: cast it, e.g. tract_core_cast(.., to = 'i64'))"
        raise TractCheckError(f"tract failed to run {path}: {message}") from None


# tract's C datum type codes -> numpy dtypes
_DATUM_TYPES = {0x01: np.bool_, 0x11: np.uint8, 0x12: np.uint16, 0x14: np.uint32, 0x18: np.uint64, 0x21: np.int8,
                0x22: np.int16, 0x24: np.int32, 0x28: np.int64, 0x32: np.float16, 0x34: np.float32, 0x38: np.float64}


def _to_numpy(value) -> np.ndarray:
    """Return a tract output as numpy. The bindings of tract < 0.23 read every value as f32 (their
    `Value.to_numpy` ignores the datum type), so their values are read here by datum type."""
    if not hasattr(value, "ptr") or hasattr(value, "datum_type"):
        return value.to_numpy()
    import ctypes
    from tract.bindings import check, lib
    datum, rank = ctypes.c_uint32(), ctypes.c_size_t()
    shape, data = ctypes.POINTER(ctypes.c_size_t)(), ctypes.c_void_p()
    check(lib.tract_value_as_bytes(value.ptr, ctypes.byref(datum), ctypes.byref(rank), ctypes.byref(shape),
                                   ctypes.byref(data)))
    dims = [int(shape[axis]) for axis in range(rank.value)]
    dtype = np.dtype(_DATUM_TYPES[datum.value])
    size = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    return np.frombuffer(ctypes.string_at(data, size), dtype=dtype).reshape(dims).copy()


def run(path: str | os.PathLike, inputs: Sequence[np.ndarray], registries: Iterable[str] = ()) -> list[np.ndarray]:
    """Load, optimize and run the archive at `path` in this process; return the outputs in order."""
    return LoadedArchive(path, registries).run(inputs)


class LoadedArchive:
    """An archive that tract loads and optimizes once, on its first run, then runs on any inputs its
    input facts accept: sizes that differ only in the values of its symbols reuse the runnable."""

    def __init__(self, path: str | os.PathLike, registries: Iterable[str] = ()):
        self.path = path
        self.registries = tuple(registries)
        self._facts: list[InputFact] | None = None
        self._runnable: tract.Runnable | None = None

    def run(self, inputs: Sequence[np.ndarray], announce: Callable[[str], None] = lambda stage: None
            ) -> list[np.ndarray]:
        """Run the archive on `inputs`, loading it first if needed; return the outputs in order.
        `announce` is called with each stage's name ("loading", "optimizing", "running") before it starts."""
        inputs = [np.asarray(array) for array in inputs]
        if self._runnable is None:
            announce("loading")
            model = load(self.path, self.registries)
            self._facts = input_facts(model)
            check_inputs(self._facts, inputs, self.path)
            announce("optimizing")
            self._runnable = prepare(model, self.path)
        else:
            check_inputs(self._facts, inputs, self.path)
        announce("running")
        return execute(self._runnable, inputs, self.path)


def run_isolated(
    path: str | os.PathLike,
    inputs: Sequence[np.ndarray],
    registries: Iterable[str] = (),
    timeout: float | None = 600.0,
    python: str | os.PathLike | None = None,
    onnx: bool = False,
) -> list[np.ndarray]:
    """Do what `run` does in a child process, so that a tract abort raises TractCheckError here.
    `python` is the interpreter of the child (default: this one); it needs only numpy and tract,
    so another virtualenv runs the archive in another tract release. With `onnx`, `path` is an
    ONNX model run by tract's ONNX loader (`onnx_runner.run_onnx`) instead."""
    with tempfile.TemporaryDirectory(prefix="fx2nnef-tract-") as tmp:
        request = Path(tmp)
        np.savez(request / "inputs.npz", **_numbered("input", inputs))
        (request / "request.json").write_text(
            json.dumps({"archive": str(path), "registries": sorted(set(registries)), "onnx": onnx})
        )
        child = _spawn(request, path, timeout, python or sys.executable)
        if (request / "error.txt").exists():
            raise TractCheckError((request / "error.txt").read_text())
        if child.returncode != 0 or not (request / "outputs.npz").exists():
            raise TractCheckError(_abort_message(child, path))
        with np.load(request / "outputs.npz") as outputs:
            return [outputs[key] for key in outputs.files]


def _numbered(prefix: str, arrays: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Key arrays as prefix_0000, prefix_0001, … so an .npz keeps their order."""
    return {f"{prefix}_{index:04d}": np.asarray(array) for index, array in enumerate(arrays)}


# The child skips `fx2nnef/__init__.py` (which may import torch, ~2 s) by registering a bare
# package module; it needs only this module, `fx2nnef.errors`, numpy and tract.
_CHILD_BOOTSTRAP = (
    "import sys, types; package = types.ModuleType('fx2nnef'); package.__path__ = [sys.argv[1]]; "
    "sys.modules['fx2nnef'] = package; "
    "from fx2nnef.backends.tract.runner import serve_request; serve_request(sys.argv[2])"
)


def _spawn(request: Path, path: str | os.PathLike, timeout: float | None,
           python: str | os.PathLike) -> subprocess.CompletedProcess:
    """Run the child on `request` with `python` and return it once it exits; raise TractCheckError
    on timeout."""
    package_dir = str(Path(__file__).resolve().parents[2])
    command = [str(python), "-c", _CHILD_BOOTSTRAP, package_dir, str(request)]
    env = {**os.environ, "RUST_BACKTRACE": "0"}
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        stage = _last_stage(exc.stdout or "")
        raise TractCheckError(f"tract did not finish {stage} {path} within {timeout} s") from None


def _abort_message(child: subprocess.CompletedProcess, path: str | os.PathLike) -> str:
    """Describe how the child died: stage, exit code (and signal) and the Rust panic message."""
    code = f"exit code {child.returncode}"
    if child.returncode < 0:
        code += f" ({signal.Signals(-child.returncode).name})"
    return (
        f"tract aborted while {_last_stage(child.stdout)} {path}, {code}. This is a Rust panic inside tract, "
        f"usually on a graph it does not validate (e.g. a negative axis). tract said: {_panic_text(child.stderr)}"
    )


def _last_stage(stdout: str | bytes) -> str:
    """Return the last stage ('loading', 'optimizing', 'running') the child announced."""
    if isinstance(stdout, bytes):
        stdout = stdout.decode(errors="replace")
    stages = [line[len(_STAGE_PREFIX):] for line in stdout.splitlines() if line.startswith(_STAGE_PREFIX)]
    return stages[-1] if stages else "starting on"


def _panic_text(stderr: str) -> str:
    """Return the first Rust panic location and message in `stderr`, else its last lines."""
    lines = stderr.strip().splitlines()
    for index, line in enumerate(lines):
        match = _PANIC.match(line)
        if match:
            message = lines[index + 1] if index + 1 < len(lines) else ""
            return f"{message} (at {match.group(1)})"
    return "\n".join(lines[-5:]) or "(nothing on stderr)"


def serve_request(request_dir: str) -> None:
    """Child side of `run_isolated`: run the request in `request_dir`, write outputs or error text."""
    request = Path(request_dir)
    spec = json.loads((request / "request.json").read_text())
    with np.load(request / "inputs.npz") as stored:
        inputs = [stored[key] for key in stored.files]
    try:
        if spec.get("onnx"):
            from fx2nnef.backends.tract.onnx_runner import run_onnx
            _announce("running")
            outputs = run_onnx(spec["archive"], inputs)
        else:
            outputs = LoadedArchive(spec["archive"], spec["registries"]).run(inputs, _announce)
    except TractCheckError as exc:
        (request / "error.txt").write_text(str(exc))
        return
    np.savez(request / "outputs.npz", **_numbered("output", outputs))


def _announce(stage: str) -> None:
    """Tell the parent which stage the child is in, so an abort can name it."""
    print(_STAGE_PREFIX + stage, flush=True)
