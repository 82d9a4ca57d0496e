"""LegalizeComplexPass: no complex value is left; complex values are (re, im) pairs on a trailing axis of 2."""
from __future__ import annotations

import pytest
import torch

from fx2nnef.compiler.pass_base import count_ops
from fx2nnef.compiler.pipeline import compile
from fx2nnef.errors import UnsupportedOpError
from fx2nnef.passes import DecomposePass, FlattenIOPass, FoldPrimitivesPass, LegalizeComplexPass
from fx2nnef.passes.legalize_complex import COMPLEX_IO, complex_io


class Spectrum(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("window", torch.hann_window(32))

    def forward(self, x):
        return torch.stft(x, 32, 8, window=self.window, return_complex=True).abs()


class RoundTrip(torch.nn.Module):
    def forward(self, x):
        return torch.fft.irfft(torch.fft.rfft(x) * torch.fft.rfft(x.cos()), n=x.shape[-1])


class Arithmetic(torch.nn.Module):
    def forward(self, x, y):
        z = torch.complex(x, y)
        w = torch.polar(x.abs() + 1, y)
        return torch.view_as_real(z * w / (z.conj() + 2) - 1j), (z @ w.T).angle()


class ComplexIO(torch.nn.Module):
    def forward(self, z):
        return torch.fft.fft(z, dim=0) * 2, z.abs()


def legalized(model, *args):
    """Return the captured program before and after the pass."""
    before = compile(model, args, passes=[DecomposePass(), FlattenIOPass(), FoldPrimitivesPass()]).program
    after = compile(model, args, passes=[DecomposePass(), FlattenIOPass(), FoldPrimitivesPass(),
                                         LegalizeComplexPass()])
    return before, after.program


def complex_values(program) -> list:
    return [n for n in program.graph.nodes if isinstance(n.meta.get("val"), torch.Tensor) and n.meta["val"].is_complex()]


MODELS = {
    "spectrum": (Spectrum(), (torch.randn(2, 200),)),
    "round_trip": (RoundTrip(), (torch.randn(3, 16),)),
    "arithmetic": (Arithmetic(), (torch.randn(4, 4), torch.randn(4, 4))),
    "complex_io": (ComplexIO(), (torch.randn(8, 3, dtype=torch.complex64),)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_no_complex_value_is_left_and_the_numbers_stay(name):
    model, args = MODELS[name]
    before, after = legalized(model, *args)
    assert complex_values(before) and not complex_values(after)
    expected = before.module()(*args)
    got = after.module()(*[torch.view_as_real(a) if a.is_complex() else a for a in args])
    for e, g in zip(expected if isinstance(expected, tuple) else (expected,), got if isinstance(got, tuple) else (got,)):
        e = torch.view_as_real(e.resolve_conj()) if e.is_complex() else e
        torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4)


def test_a_windowed_framing_and_its_fft_become_one_stft():
    model, args = MODELS["spectrum"]
    _, after = legalized(model, *args)
    ops = count_ops(after)
    assert ops.get("fx2nnef::stft") == 1
    assert "aten::unfold" not in ops and "aten::_fft_r2c" not in ops and "fx2nnef::fft" not in ops


def test_a_real_fft_round_trip_is_three_transforms_and_no_flip():
    model, args = MODELS["round_trip"]
    _, after = legalized(model, *args)
    ops = count_ops(after)
    assert ops.get("fx2nnef::fft") == 3 and "aten::flip" not in ops


def test_complex_inputs_and_outputs_are_pairs_and_marked():
    model, args = MODELS["complex_io"]
    _, after = legalized(model, *args)
    z = next(n for n in after.graph.nodes if n.op == "placeholder")
    assert tuple(z.meta["val"].shape) == (8, 3, 2) and z.meta["val"].dtype == torch.float32
    assert z.meta[COMPLEX_IO] == "complex64"
    assert complex_io(after) == {"inputs": ["z"], "outputs": ["output_0"]}


def test_complex128_becomes_f64_pairs():
    _, after = legalized(ComplexIO(), torch.randn(4, 2, dtype=torch.complex128))
    z = next(n for n in after.graph.nodes if n.op == "placeholder")
    assert z.meta["val"].dtype == torch.float64


def test_ops_without_a_pair_form_are_listed_with_their_source_line():
    class Unsupported(torch.nn.Module):
        def forward(self, x):
            z = torch.fft.fft(x)
            return torch.view_as_real(torch.logcumsumexp(z, 0)), torch.linalg.eigvals(x.reshape(2, 2)).abs()

    with pytest.raises(UnsupportedOpError, match=r"aten::linalg_eig .*not expressible(.|\n)*aten::logcumsumexp"
                                                 r"(.|\n)*test_legalize_complex.py"):
        legalized(Unsupported(), torch.randn(4))


def test_a_program_without_complex_values_is_unchanged():
    model = torch.nn.Linear(3, 2)
    program = compile(model, (torch.randn(1, 3),), passes=[DecomposePass()]).program
    assert not LegalizeComplexPass()(program).modified
