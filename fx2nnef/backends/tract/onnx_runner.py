"""Load and run an ONNX model with tract's ONNX loader: the reference path that NNEF archives are
cross-checked against (same tract, another front end)."""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import tract

from fx2nnef.backends.tract.runner import _tract_message, execute
from fx2nnef.errors import TractCheckError

# numpy dtype -> dtype token of a tract fact string ("2,8,f32").
_FACT_TOKENS = {
    np.dtype(name): token for name, token in (
        ("bool", "bool"), ("float16", "f16"), ("float32", "f32"), ("float64", "f64"), ("int8", "i8"),
        ("int16", "i16"), ("int32", "i32"), ("int64", "i64"), ("uint8", "u8"), ("uint16", "u16"),
        ("uint32", "u32"), ("uint64", "u64"),
    )
}


def fact_string(array: np.ndarray) -> str:
    """Return the tract fact string of `array`'s shape and dtype, e.g. "2,8,i64"."""
    token = _FACT_TOKENS.get(np.dtype(array.dtype))
    if token is None:
        raise TractCheckError(f"tract cannot take an input of dtype {array.dtype}")
    return ",".join([*(str(d) for d in array.shape), token])


def load_onnx(path: str | os.PathLike, inputs: Sequence[np.ndarray]) -> tract.Model:
    """Load the ONNX model at `path` with its inputs fixed to the shapes and dtypes of `inputs`."""
    try:
        model = tract.onnx().load(str(path))
        if model.input_count() != len(inputs):
            raise TractCheckError(f"{path} takes {model.input_count()} input(s) but {len(inputs)} were given")
        for index, array in enumerate(inputs):
            model.set_input_fact(index, fact_string(array))
        return model.into_model()
    except tract.TractError as exc:
        raise TractCheckError(f"tract could not load the ONNX model {path}: {_tract_message(exc)}") from None


def prepare_onnx(path: str | os.PathLike, inputs: Sequence[np.ndarray]) -> tract.Runnable:
    """Load, optimize and make runnable the ONNX model at `path` for inputs like `inputs`."""
    model = load_onnx(path, inputs)
    try:
        return model.into_runnable()
    except tract.TractError as exc:
        raise TractCheckError(f"tract could not optimize the ONNX model {path}: {_tract_message(exc)}") from None


def run_onnx(path: str | os.PathLike, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run the ONNX model at `path` in tract on `inputs`; return its outputs in graph order."""
    inputs = [np.ascontiguousarray(array) for array in inputs]
    return execute(prepare_onnx(path, inputs), inputs, path)
