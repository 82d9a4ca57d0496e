"""Random sampling: each distribution drawn by tract matches PyTorch's in distribution (not value by
value: the generators differ), the seeds are fixed in the archive unless asked otherwise, and check_io
compares the outputs that depend on draws by shape and dtype only, every other output exactly."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fx2nnef
from fx2nnef.backends.tract import run

sys.path.insert(0, str(Path(__file__).parent))
from opinfo_harness import Draws, distribution_mismatch  # noqa: E402
from testing_utils import Apply  # noqa: E402

SHAPE = (64, 32)


PROBABILITIES = torch.tensor([[0.1, 0.0, 0.6, 0.3], [0.25, 0.25, 0.25, 0.25]])
DISTRIBUTIONS = {
    "rand": lambda x: torch.rand(SHAPE) + x,
    "randn f64": lambda x: torch.randn(SHAPE, dtype=torch.float64) + x,
    "uniform_": lambda x: torch.empty(SHAPE).uniform_(-2.0, 3.0) + x,
    "normal_": lambda x: torch.empty(SHAPE).normal_(1.5, 0.5) + x,
    "normal(tensor, tensor)": lambda x: torch.normal(x.expand(SHAPE), x.expand(SHAPE) + 1.0),
    "exponential_": lambda x: torch.empty(SHAPE).exponential_(2.0) + x,
    "geometric_": lambda x: torch.empty(SHAPE).geometric_(0.3) + x,
    "log_normal_": lambda x: torch.empty(SHAPE).log_normal_(0.0, 0.5) + x,
    "randint": lambda x: torch.randint(-3, 5, SHAPE) + x.long(),
    "randint, wide range": lambda x: torch.randint(0, 2 ** 40, SHAPE) + x.long(),
    "randint_like": lambda x: torch.randint_like(x.expand(SHAPE), 7),
    "bernoulli(p)": lambda x: torch.bernoulli(torch.full(SHAPE, 0.3)) + x,
    "bernoulli(tensor)": lambda x: torch.bernoulli((x + 0.2).expand(SHAPE).clamp(0, 1)),
    "dropout, training": lambda x: F.dropout(torch.ones(SHAPE) + x, 0.3, training=True),
    "rrelu, training": lambda x: F.rrelu(torch.linspace(-2, 2, SHAPE[1]).expand(SHAPE) + x, 0.1, 0.4, training=True),
    "multinomial with replacement": lambda x: torch.multinomial(PROBABILITIES + x, 16, replacement=True),
    "multinomial without replacement": lambda x: torch.multinomial(PROBABILITIES + x, 3),
    "randperm": lambda x: torch.randperm(9) + x.long(),
}


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_distribution(name, tmp_path):
    x = torch.zeros(1, 1)
    draws = Draws(Apply(DISTRIBUTIONS[name]), 8)
    report = fx2nnef.export_model_to_nnef(draws, (x,), tmp_path / "m", fx2nnef.TractNNEF(check_io=True))
    assert report.check and all(r.ok and r.message.startswith("random") for r in report.check)
    got = run(report.path, [x.numpy()] if report.input_names else [], report.graph.registries)[0]
    torch.manual_seed(0)
    reference = torch.cat([draws(x)[0] for _ in range(4)]).numpy()
    assert distribution_mismatch(got, reference) is None


def test_cauchy_quantiles(tmp_path):
    draws = Apply(lambda x: torch.empty(4096).cauchy_(1.0, 2.0) + x)
    report = fx2nnef.export_model_to_nnef(draws, (torch.zeros(1),), tmp_path / "m", fx2nnef.TractNNEF())
    got = run(report.path, [np.zeros(1, np.float32)], report.graph.registries)[0]
    quartiles = np.quantile(got, [0.25, 0.5, 0.75])  # Cauchy(1, 2): 1 - 2, 1, 1 + 2
    np.testing.assert_allclose(quartiles, [-1.0, 1.0, 3.0], atol=0.25)


@pytest.mark.parametrize("wrong", ["std", "mean", "range", "set"])
def test_the_statistical_comparison_sees_a_wrong_distribution(wrong):
    generator = np.random.default_rng(0)
    reference = generator.standard_normal((4096, 8)).astype(np.float32)
    drawn = generator.standard_normal((1024, 8)).astype(np.float32)
    assert distribution_mismatch(drawn, reference) is None
    if wrong == "std":
        drawn = drawn * 1.1
    elif wrong == "mean":
        drawn = drawn + 0.1
    elif wrong == "range":
        drawn = generator.uniform(0.0, 1.1, (1024, 8)).astype(np.float32)
        reference = generator.uniform(0.0, 1.0, (4096, 8)).astype(np.float32)
    else:
        drawn = generator.integers(0, 4, (1024, 8))
        reference = generator.integers(0, 3, (4096, 8))
    assert distribution_mismatch(drawn, reference) is not None


@pytest.mark.parametrize("spatial", [2, 3])
def test_fractional_max_pool_with_given_samples(spatial, tmp_path):
    """With its samples given, fractional max pooling is deterministic: values and indices match."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((2, 3) + (9,) * spatial, generator=generator)
    samples = torch.rand(2, 3, spatial, generator=generator)
    pool = F.fractional_max_pool2d if spatial == 2 else F.fractional_max_pool3d
    cases = [((3,) * spatial, (4,) * spatial), ((2,) * spatial, (1,) * spatial), ((2,) + (3,) * (spatial - 1),
                                                                                   (5,) + (2,) * (spatial - 1))]
    for kernel, out in cases:
        model = Apply(lambda x, s: pool(x, kernel, output_size=out, return_indices=True, _random_samples=s))
        report = fx2nnef.export_model_to_nnef(model, (x, samples), tmp_path / f"m{kernel}{out}",
                                              fx2nnef.TractNNEF(check_io=True, check_io_tolerance="exact"))
        assert all(r.ok for r in report.check)


def test_seeds_are_fixed_unless_asked(tmp_path):
    model = Apply(lambda x: (torch.rand(5) + x, torch.randn(5) + x, x * 2.0))
    x = torch.zeros(5)
    fixed = fx2nnef.export_model_to_nnef(model, (x,), tmp_path / "fixed", fx2nnef.TractNNEF())
    first, second = (run(fixed.path, [x.numpy()], fixed.graph.registries) for _ in range(2))
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(first[0], first[1]), "two random operators must draw two streams"
    other = fx2nnef.export_model_to_nnef(model, (x,), tmp_path / "other", fx2nnef.TractNNEF(random_seed=7))
    assert not np.array_equal(run(other.path, [x.numpy()], other.graph.registries)[0], first[0])
    system = fx2nnef.export_model_to_nnef(model, (x,), tmp_path / "system", fx2nnef.TractNNEF(random_seed=None))
    a, b = (run(system.path, [x.numpy()], system.graph.registries)[0] for _ in range(2))
    assert not np.array_equal(a, b)


def test_check_io_compares_only_the_deterministic_outputs_exactly(tmp_path, caplog):
    model = Apply(lambda x: (x * 2.0, x + torch.rand_like(x)))
    with caplog.at_level(logging.WARNING, logger="fx2nnef"):
        report = fx2nnef.export_model_to_nnef(model, (torch.ones(3),), tmp_path / "m", fx2nnef.TractNNEF())
    deterministic, drawn = report.check
    assert deterministic.ok and deterministic.max_abs == 0.0 and not deterministic.message
    assert drawn.ok and drawn.message.startswith("random") and drawn.max_abs is None
    assert "tract's generator is not PyTorch's" in caplog.text and "output_1" in caplog.text


def test_a_random_op_is_not_standard_nnef(tmp_path):
    with pytest.raises(fx2nnef.errors.UnsupportedOpError, match="aten::rand"):
        fx2nnef.export_model_to_nnef(Apply(lambda x: x + torch.rand(3)), (torch.ones(3),), tmp_path / "m",
                                     fx2nnef.KhronosNNEF(check_io=False))


def test_random_seed_must_be_a_non_negative_integer():
    with pytest.raises(fx2nnef.errors.ExportInputError, match="random_seed"):
        fx2nnef.TractNNEF(random_seed=-1)
