"""Model zoo: every family exports, runs in tract and matches eager PyTorch at float32 tolerance,
and (unless its entry says why not) agrees with the torch.onnx.export model run in tract.

The default run cross-checks through ONNX only two models (ONNX_IN_CI: torch.onnx.export costs
10-45 s a model on 2 cores), to stay
within the CI budget; `-m slow` adds the ONNX cross-check of every other model and the
full-size cases."""
from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import pytest

from fx2nnef import TractNNEF, export_model_to_nnef
from fx2nnef.compiler.frontend import TraceConstantWarning

ONNX_IN_CI = {"bert", "vit"}


def load_catalogue():
    """Import tests/zoo/models.py by path (the tests are not a package; the benchmarks reuse it)."""
    name = "fx2nnef_zoo_models"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("models.py"))
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


ZOO = load_catalogue().ZOO


def _params():
    """Return (entry, cross-check through ONNX) params: one per entry, plus a slow ONNX one for
    entries whose default run does not cross-check."""
    params = []
    for entry in ZOO.values():
        marks = [pytest.mark.xfail(reason=entry.xfail, strict=True)] if entry.xfail else []
        slow = [pytest.mark.slow] if entry.slow else []
        in_ci = entry.onnx is True and (entry.name in ONNX_IN_CI or entry.slow)
        params.append(pytest.param(entry, in_ci, id=entry.name, marks=marks + slow))
        if entry.onnx is True and not in_ci:
            params.append(pytest.param(entry, True, id=f"{entry.name}-onnx", marks=marks + [pytest.mark.slow]))
    return params


@pytest.mark.parametrize("entry, onnx", _params())
def test_zoo_model_matches_pytorch(entry, onnx, tmp_path):
    model, inputs = entry.build(), entry.inputs()
    target = TractNNEF(check_io=True, check_io_tolerance=entry.tolerance, check_io_onnx=onnx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TraceConstantWarning)
        report = export_model_to_nnef(model, inputs, tmp_path / f"{entry.name}.nnef.tgz", target,
                                      debug_bundle_path=tmp_path / "bundle")
    assert report.path.exists()
    assert report.check and all(r.ok for r in report.check)


def test_every_family_is_in_the_zoo():
    families = {"encoder", "decoder", "seq2seq", "vision", "audio"}
    assert {entry.family for entry in ZOO.values()} == families
    assert len([e for e in ZOO.values() if not e.slow]) >= 27
