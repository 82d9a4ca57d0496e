"""Cross-check an NNEF export through ONNX: torch.onnx.export the same model, run that in tract's
ONNX loader, and compare its outputs with the NNEF archive's (same tract, another front end)."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Collection, Sequence

import numpy as np
import torch

from .backends.tract import OutputReport, compare_outputs, format_report
from .backends.tract.onnx_runner import run_onnx
from .compiler.frontend import eval_mode
from .errors import TractCheckError

log = logging.getLogger("fx2nnef")


@dataclasses.dataclass
class OnnxCheck:
    """The ONNX path's outputs and how they compare with the NNEF archive's."""

    outputs: list[np.ndarray]
    reports: list[OutputReport]

    @property
    def ok(self) -> bool:
        return all(report.ok for report in self.reports)


def export_onnx(model: torch.nn.Module, args: tuple, kwargs: dict, path: str | Path) -> None:
    """Export `model` on (args, kwargs) to ONNX at `path` with torch.onnx.export (dynamo exporter)."""
    with eval_mode(model, warn=False), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, args, str(path), kwargs=kwargs, dynamo=True, verbose=False,
                              external_data=False)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            raise TractCheckError(f"the ONNX cross-check could not export {type(model).__name__} with "
                                  f"torch.onnx.export: {type(exc).__name__}: {first}") from exc


def run_onnx_path(model: torch.nn.Module, args: tuple, kwargs: dict, inputs: Sequence[np.ndarray]
                  ) -> list[np.ndarray]:
    """Export `model` to ONNX in a temporary directory and run it in tract on `inputs`."""
    with tempfile.TemporaryDirectory(prefix="fx2nnef-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model, args, kwargs, path)
        return run_onnx(path, inputs)


def cross_check(names: Sequence[str], nnef_outputs: Sequence[np.ndarray], onnx_outputs: Sequence[np.ndarray],
                tolerance, sampled: Collection[str] = ()) -> OnnxCheck:
    """Compare the ONNX path's outputs with the NNEF archive's, output by output (those computed from
    random draws, `sampled`, by shape and dtype only)."""
    onnx_outputs = [o.astype(n.dtype, copy=False) if o.dtype.kind == n.dtype.kind == "f" else o
                    for o, n in zip(onnx_outputs, nnef_outputs)]
    return OnnxCheck(list(onnx_outputs), compare_outputs(names, nnef_outputs, onnx_outputs, tolerance, sampled))


def raise_unless_agree(check: OnnxCheck) -> None:
    """Raise TractCheckError naming the outputs where the NNEF and ONNX paths disagree."""
    if check.ok:
        log.info("the ONNX path agrees with the NNEF archive\n%s", format_report(check.reports))
        return
    failing = ", ".join(report.name for report in check.reports if not report.ok)
    raise TractCheckError(f"the NNEF archive and the torch.onnx.export model disagree in tract on {failing} "
                          f"(expected = NNEF, got = ONNX):\n\n{format_report(check.reports)}")
