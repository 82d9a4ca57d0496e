"""Archives that target older tract releases load and run in those releases.

`scripts/setup.sh` installs tract 0.21.13, 0.22.4 and 0.23.0 (the oldest of each line fx2nnef
supports) into `.venv-tract/<release>`; check_io finds them through FX2NNEF_TRACT_ENVS.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from fx2nnef import LoweringError, TractNNEF, export_model_to_nnef
from fx2nnef.backends.tract import tract_version
from zoo.models import ZOO

ENVS = Path(__file__).resolve().parents[2] / ".venv-tract"
RELEASES = ["0.21.13", "0.22.4", "0.23.0"]
# the zoo's small models that exercise the operators whose form depends on the release: silu,
# rms_norm and grouped-query attention (llama, mistral), gelu/layer norm (bert, whisper), integer
# comparisons (roberta, wav2vec2), upsampling (segformer), convolutions (resnet)
MODELS = ["bert", "roberta", "llama", "mistral", "whisper", "resnet", "segformer", "wav2vec2"]


@pytest.fixture(autouse=True)
def release_envs(monkeypatch):
    """Point check_io at the side virtualenvs, or skip when setup.sh has not made them."""
    missing = [r for r in RELEASES if not (ENVS / r / "bin" / "python").exists()]
    if missing:
        pytest.skip(f"no virtualenv for tract {', '.join(missing)} in {ENVS} (run scripts/setup.sh)")
    monkeypatch.setenv("FX2NNEF_TRACT_ENVS", str(ENVS))


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("name", MODELS)
def test_zoo_models_run_in_older_releases(tmp_path, name, release):
    entry = ZOO[name]
    report = export_model_to_nnef(entry.build(), entry.inputs(), tmp_path / "m.nnef.tgz",
                                  TractNNEF(version=release, check_io_tolerance=entry.tolerance))
    assert report.checked_with.startswith(f"tract {release} (") and all(r.ok for r in report.check)


@pytest.mark.slow
@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("name", [n for n, e in ZOO.items() if not e.slow and not e.xfail])
def test_whole_zoo_runs_in_older_releases(tmp_path, name, release):
    entry = ZOO[name]
    report = export_model_to_nnef(entry.build(), entry.inputs(), tmp_path / "m.nnef.tgz",
                                  TractNNEF(version=release, check_io_tolerance=entry.tolerance))
    assert report.checked_with.startswith(f"tract {release} (")


@pytest.mark.parametrize("release", RELEASES)
def test_albert_scenario_with_dynamic_axes(tmp_path, small_albert, release):
    model, inputs = small_albert
    names = ["input_ids", "attention_mask", "token_type_ids"]
    report = export_model_to_nnef(model, [inputs[k] for k in names], tmp_path / "albert.nnef.tgz",
                                  TractNNEF(version=release, dynamic_axes={n: {1: "S"} for n in names}),
                                  names, ["output"])
    assert len(report.checks) == 3 and report.checked_with.startswith(f"tract {release}")


class Newer(torch.nn.Module):
    """silu, tanh-gelu and isnan: operators tract reads from 0.23 on, written in older forms before."""

    def forward(self, x):
        y = torch.nn.functional.silu(x) + torch.nn.functional.gelu(x, approximate="tanh")
        return torch.where(torch.isnan(x), 0.0, y), torch.isinf(x).any(-1), x.log_softmax(-1)


@pytest.mark.parametrize("release", RELEASES)
def test_older_forms(tmp_path, release):
    x = torch.tensor([[1.0, float("nan"), -2.0], [float("inf"), 0.5, 3.0]])
    report = export_model_to_nnef(Newer(), x, tmp_path / "m.nnef", TractNNEF(version=release))
    text = (report.path / "graph.nnef").read_text()
    assert ("tract_core_silu" in text) == (release == "0.23.0")
    assert all(r.ok for r in report.check)


class Sampler(torch.nn.Module):
    def forward(self, x, grid):
        return torch.nn.functional.grid_sample(x, grid, align_corners=False)


def test_operator_newer_than_the_target_names_the_release(tmp_path):
    args = (torch.randn(1, 2, 4, 4), torch.rand(1, 3, 3, 2) * 2 - 1)
    with pytest.raises(LoweringError, match=r"tract_onnx_grid_sample.*0\.23\.0.*the target is tract 0\.22\.4"):
        export_model_to_nnef(Sampler(), args, tmp_path / "m.nnef", TractNNEF(version="0.22.4"))
    assert list(tmp_path.iterdir()) == []
    report = export_model_to_nnef(Sampler(), args, tmp_path / "m.nnef", TractNNEF(version="0.23.0"))
    assert "tract_onnx_grid_sample" in (report.path / "graph.nnef").read_text()


def test_check_names_the_tract_it_used(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FX2NNEF_TRACT_ENVS", str(tmp_path / "none"))
    with caplog.at_level(logging.WARNING, logger="fx2nnef"):
        report = export_model_to_nnef(torch.nn.ReLU(), torch.randn(3), tmp_path / "m.nnef",
                                      TractNNEF(version="0.22.4"))
    assert f"checked with the installed tract {tract_version()}" in caplog.text
    assert report.checked_with == f"tract {tract_version()} (package)"
    assert np.isclose(report.check[0].max_abs, 0.0)


@pytest.mark.parametrize("release", RELEASES)
def test_quantized_archives_run_in_older_releases(tmp_path, release):
    """Q4_0 weights (item type 0x3040) and PT2E int8 (graph.quant, integer kernels) load and match
    in every release fx2nnef targets."""
    from quant.test_pt2e import ResidualCNN, per_tensor_symmetric, pt2e
    from quant.test_q4_0 import LinearStack

    torch.manual_seed(0)
    report = export_model_to_nnef(LinearStack().eval(), torch.randn(2, 5, 64), tmp_path / "q4.nnef.tgz",
                                  TractNNEF(version=release, weight_quant="q4_0", check_io_tolerance=(1e-5, 1e-5)))
    assert report.checked_with.startswith(f"tract {release} (") and all(r.ok for r in report.check)
    x = torch.randn(2, 3, 12, 12)
    model = pt2e(ResidualCNN(), (x,), per_tensor_symmetric())
    for kernels in (False, True):
        report = export_model_to_nnef(model, x, tmp_path / f"int8-{kernels}.nnef.tgz",
                                      TractNNEF(version=release, int8_kernels=kernels, check_io_tolerance="approximate"))
        assert all(r.ok for r in report.check)


class Recurrent(torch.nn.Module):
    """A 2-layer bidirectional LSTM then a GRU: tract loops whose gates are fused epilogues from tract
    0.23.2 (LSTM) and 0.23.6 (GRU) on, written out before."""

    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(4, 8, num_layers=2, bidirectional=True)
        self.gru = torch.nn.GRU(16, 8)

    def forward(self, x):
        return self.gru(self.lstm(x)[0])[0]


@pytest.mark.parametrize("release", RELEASES)
def test_recurrent_layers(tmp_path, release):
    torch.manual_seed(0)
    report = export_model_to_nnef(Recurrent().eval(), torch.randn(5, 2, 4), tmp_path / "m.nnef",
                                  TractNNEF(version=release, dynamic_axes={"x": {0: "T", 1: "B"}}))
    bodies = " ".join(op.name for body in report.graph.bodies.values() for op in body.operations)
    assert "epilogue" not in bodies and len(report.checks) == 3
    assert report.checked_with.startswith(f"tract {release} (")


class Issue18(torch.nn.Module):
    """Random draws, F.fold (index_put on non-leading axes), a run-time polynomial degree (a scan over
    a range of run-time length) and fractional max pooling at given samples."""

    def forward(self, x, n, samples):
        image = torch.nn.functional.fold(x, (4, 6), 2, stride=2)
        pooled = torch.nn.functional.fractional_max_pool2d(image, 2, output_size=(2, 3), _random_samples=samples)
        drawn = torch.nn.functional.dropout(image, 0.5, training=True) + torch.rand_like(image)
        return image, pooled, torch.special.laguerre_polynomial_l(x[0, 0], n), drawn


@pytest.mark.parametrize("release", RELEASES)
def test_issue_18_operators_run_in_older_releases(tmp_path, release):
    args = (torch.randn(2, 12, 6), torch.tensor([0.0, 1.0, 5.0, 9.0, 3.0, 2.0]), torch.rand(2, 3, 2))
    report = export_model_to_nnef(Issue18(), args, tmp_path / "m.nnef.tgz", TractNNEF(version=release))
    assert report.checked_with.startswith(f"tract {release} (") and all(r.ok for r in report.check)
    assert report.check[-1].message.startswith("random")


class NonZero(torch.nn.Module):
    def forward(self, x):
        return torch.nonzero(x)


def test_data_dependent_sizes_need_tract_0_23_5(tmp_path):
    with pytest.raises(LoweringError, match=r"tract_onnx_non_zero.*0\.23\.5"):
        export_model_to_nnef(NonZero(), torch.tensor([0.0, 2.0, 3.0]), tmp_path / "m.nnef", TractNNEF(version="0.23.0"))
