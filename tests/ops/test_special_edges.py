"""Special functions and medians at edge values (0, -0, poles, negatives, huge |x|, inf, NaN), checked
against eager PyTorch through the public API with check_io."""
from __future__ import annotations

import math

import pytest
import torch

import fx2nnef

EDGES = torch.tensor([0.0, -0.0, 1.0, -1.0, 0.5, -2.5, -3.0, 1e-3, 1.4616321, 3.0, 9.0, -9.0, 20.0, 150.0, -150.0,
                      1e3, 1e30, -1e30, math.inf, -math.inf, math.nan])
PROBABILITIES = torch.tensor([0.0, 1.0, -1.0, 0.5, 1e-30, 1e-7, 0.3, 0.7, 0.9, 0.999, -0.999, 2.0, math.nan])
S = torch.special


class Outputs(torch.nn.Module):
    """Returns each function applied to the input."""

    def __init__(self, *functions):
        super().__init__()
        self.functions = functions

    def forward(self, x):
        return tuple(f(x) for f in self.functions)


CASES = {
    "error functions": (Outputs(torch.erfinv, S.ndtri, S.erfcx, S.log_ndtr), PROBABILITIES),
    "error functions, wide": (Outputs(S.erfcx, S.log_ndtr), EDGES),
    "bessel": (Outputs(torch.i0, S.i0e, S.i1, S.i1e, S.bessel_j0, S.bessel_j1, S.bessel_y0, S.bessel_y1,
                       S.modified_bessel_k0, S.modified_bessel_k1, S.scaled_modified_bessel_k0,
                       S.scaled_modified_bessel_k1, S.spherical_bessel_j0, S.airy_ai), EDGES),
    "gamma": (Outputs(torch.lgamma, torch.digamma, lambda x: torch.polygamma(1, x), lambda x: torch.polygamma(3, x),
                      lambda x: S.zeta(x, 2.5), lambda x: S.zeta(3.0, x), lambda x: torch.mvlgamma(x.abs() + 2, 3)),
              EDGES),
    "incomplete gamma": (Outputs(lambda x: torch.igamma(x.abs(), 3.0 * torch.ones_like(x)),
                                 lambda x: torch.igammac(2.5 * torch.ones_like(x), x.abs()),
                                 lambda x: torch.igamma(x, x.abs() + 1.0), lambda x: torch.igammac(x * 0.0, x)), EDGES),
    "median": (Outputs(torch.median, torch.nanmedian, lambda x: torch.median(x, 1), lambda x: torch.nanmedian(x, 0),
                       lambda x: torch.nanmedian(x, -1, keepdim=True)),
               torch.tensor([[3.0, math.nan, 1.0, math.nan, 2.0], [5.0, 4.0, 3.0, 2.0, 1.0],
                             [math.nan] * 5, [1.0, math.nan, 2.0, -math.inf, 4.0]])),
}


@pytest.mark.parametrize("name", CASES)
def test_edge_values_match_pytorch(tmp_path, name):
    model, x = CASES[name]
    fx2nnef.export_model_to_nnef(model, (x,), tmp_path / "model.nnef.tgz",
                                 inference_target=fx2nnef.TractNNEF(check_io=True))


def test_half_inputs_are_computed_in_float(tmp_path):
    model = Outputs(torch.lgamma, torch.i0, torch.digamma)
    x = torch.tensor([0.5, 1.0, 2.5, 7.0, -2.5, 0.0], dtype=torch.float16)
    fx2nnef.export_model_to_nnef(model, (x,), tmp_path / "model.nnef.tgz",
                                 inference_target=fx2nnef.TractNNEF(check_io=True, check_io_tolerance=(1e-3, 1e-3)))


def test_double_inputs_with_an_f64_target(tmp_path):
    model = Outputs(lambda x: torch.erfinv(x / 10), torch.lgamma, S.i1e, lambda x: torch.polygamma(2, x))
    x = torch.linspace(-9.7, 9.3, 40, dtype=torch.float64)
    fx2nnef.export_model_to_nnef(model, (x,), tmp_path / "model.nnef.tgz",
                                 inference_target=fx2nnef.TractNNEF(check_io=True, float64="f64"))


def test_khronos_target_uses_standard_ops_only(tmp_path):
    model = Outputs(torch.lgamma, torch.digamma, S.i0e, S.bessel_y0, S.erfcx, lambda x: torch.polygamma(2, x))
    fx2nnef.export_model_to_nnef(model, (torch.linspace(-9.7, 9.3, 40),), tmp_path / "model.nnef.tgz",
                                 inference_target=fx2nnef.KhronosNNEF())


class Polynomials(torch.nn.Module):
    """Returns the Laguerre and Legendre polynomials of x at degrees n."""

    def forward(self, x, n):
        return S.laguerre_polynomial_l(x, n), S.legendre_polynomial_p(x, n)


@pytest.mark.parametrize("degrees", [[3.0, 7.0, 2.0, 30.0, 5.5, 4.0, -2.0], [0.0, 1.0, 1.0, 0.0, -1.0, 1.0, 0.0]],
                         ids=["mixed", "no step"])
def test_laguerre_and_legendre_of_run_time_degrees(tmp_path, degrees):
    """A tract_core_scan as long as the largest degree runs the recurrence (no step when all are <= 1).
    (At x = NaN PyTorch returns an uninitialized value, so NaN is left out.)"""
    x = torch.tensor([0.5, -1.0, 1.0, 0.0, 2.0, -0.7, 0.3])
    report = fx2nnef.export_model_to_nnef(Polynomials(), (x, torch.tensor(degrees)), tmp_path / "model.nnef.tgz",
                                          inference_target=fx2nnef.TractNNEF(check_io=True))
    assert sum(op.name == "tract_core_scan" for op in report.graph.operations) == 2
