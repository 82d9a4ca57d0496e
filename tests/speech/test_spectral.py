"""Spectral front-ends and complex values end to end: exported, run in tract (or the Khronos tools) and
compared with PyTorch, at the example length and at unseen lengths of a dynamic time axis; a causal
front-end streamed by the pulse check."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fx2nnef import KhronosNNEF, TractNNEF, export_model_to_nnef
from fx2nnef.errors import TractCheckError

TOLERANCE = (1e-4, 0.0)   # absolute, f32


class Magnitude(torch.nn.Module):
    """|stft(x)| with torch.stft's options."""

    def __init__(self, n_fft=64, hop=16, win_length=None, window=True, **options):
        super().__init__()
        self.n_fft, self.hop, self.win_length, self.options = n_fft, hop, win_length, options
        self.register_buffer("window", torch.hann_window(win_length or n_fft) if window else None)

    def forward(self, x):
        return torch.stft(x, self.n_fft, self.hop, self.win_length, window=self.window, return_complex=True,
                          **self.options).abs()


class LogMel(torch.nn.Module):
    """stft -> power -> mel filterbank (a matmul) -> log; `causal` pads on the left instead of centring."""

    def __init__(self, n_fft=64, hop=16, mels=8, causal=False):
        super().__init__()
        self.n_fft, self.hop, self.causal = n_fft, hop, causal
        self.register_buffer("window", torch.hann_window(n_fft))
        torch.manual_seed(0)
        self.register_buffer("filterbank", torch.rand(n_fft // 2 + 1, mels))

    def forward(self, x):
        if self.causal:
            x = torch.nn.functional.pad(x, (self.n_fft - self.hop, 0))
        spectrum = torch.stft(x, self.n_fft, self.hop, window=self.window, center=not self.causal,
                              return_complex=True)
        power = spectrum.abs().pow(2).transpose(1, 2)
        return torch.log(power @ self.filterbank + 1e-6)


def export(model, args, tmp_path, target=None, input_names=None, output_names=None, **kwargs):
    return export_model_to_nnef(model.eval(), args, tmp_path / "model", inference_target=target or TractNNEF(
        check_io_tolerance=TOLERANCE, **kwargs), input_names=input_names, output_names=output_names)


def worst(report) -> dict[str, float]:
    """Return the largest absolute error over the outputs, per checked size."""
    return {size: max(r.max_abs for r in reports) for size, reports in report.checks.items()}


@pytest.mark.parametrize("model", [Magnitude(), LogMel()], ids=["stft_abs", "log_mel"])
def test_matches_pytorch_at_unseen_lengths(model, tmp_path):
    torch.manual_seed(0)
    report = export(model, (torch.randn(2, 400),), tmp_path, dynamic_axes={"x": {1: "T"}})
    errors = worst(report)
    assert len(errors) == 3 and all(e <= 1e-4 for e in errors.values()), errors   # T=400 and two other sizes
    text = (report.path / "graph.nnef").read_text()
    assert "tract_core_stft(" in text and "tract_core_external(shape = [2, T]" in text


@pytest.mark.parametrize("options", [
    dict(center=False), dict(pad_mode="constant"), dict(win_length=48), dict(normalized=True),
    dict(onesided=False), dict(window=False, hop=24), dict(n_fft=30, hop=10)], ids=str)
def test_stft_options(options, tmp_path):
    torch.manual_seed(0)
    model = Magnitude(**{k: options.pop(k) for k in ("window", "hop", "n_fft", "win_length") if k in options},
                      **options)
    export(model, (torch.randn(1, 256),), tmp_path)


class Spectral(torch.nn.Module):
    def forward(self, x):
        z = torch.fft.rfft(x)
        return torch.fft.irfft(z * z, n=x.shape[-1]), torch.fft.fft(x, norm="ortho").imag, torch.fft.ifft2(x.cos()).abs()


@pytest.mark.parametrize("target", [TractNNEF(check_io_tolerance=TOLERANCE),
                                    KhronosNNEF(check_io_tolerance=TOLERANCE)], ids=["tract", "khronos"])
def test_fft_family(target, tmp_path):
    torch.manual_seed(0)
    export(Spectral(), (torch.randn(3, 10),), tmp_path, target)


def test_stft_on_the_khronos_target_is_a_strided_convolution(tmp_path):
    torch.manual_seed(0)
    report = export(LogMel(), (torch.randn(1, 300),), tmp_path, KhronosNNEF(check_io_tolerance=TOLERANCE))
    text = (report.path / "graph.nnef").read_text()
    assert "conv(" in text and "tract_" not in text


class Resynthesis(torch.nn.Module):
    """stft -> a spectral gain -> istft."""

    def __init__(self):
        super().__init__()
        self.register_buffer("window", torch.hann_window(64))

    def forward(self, x):
        spectrum = torch.stft(x, 64, 16, window=self.window, return_complex=True)
        return torch.istft(spectrum * 0.5, 64, 16, window=self.window, length=x.shape[-1])


def test_istft(tmp_path):
    """istft's overlap-add is an index_put on the time axis: a stft -> gain -> istft round trip matches."""
    torch.manual_seed(0)
    report = export(Resynthesis(), (torch.randn(2, 400),), tmp_path)
    assert worst(report)["example"] <= 1e-5


class ComplexIO(torch.nn.Module):
    def forward(self, z, gain):
        return torch.fft.ifft(z * gain), (z.conj() * z).real


def test_complex_inputs_and_outputs_are_named_real_pairs(tmp_path):
    import tract
    torch.manual_seed(0)
    z, gain = torch.randn(4, 8, dtype=torch.complex64), torch.randn(8)
    report = export(ComplexIO(), (z, gain), tmp_path, input_names=["z", "gain"], output_names=["signal", "energy"])
    assert report.signature == "graph network(z, gain) -> (signal, energy)"
    assert [tuple(t.shape) for t in report.graph.inputs] == [(4, 8, 2), (8,)]
    assert [tuple(t.shape) for t in report.graph.outputs] == [(4, 8, 2), (4, 8)]
    assert report.graph.properties["complex_inputs_as_pairs"] == "z"
    assert report.graph.properties["complex_outputs_as_pairs"] == "signal"
    # what a user of the archive does: feed view_as_real, read view_as_complex
    signal, _ = [t.to_numpy() for t in tract.nnef().load(str(report.path)).into_runnable().run(
        [torch.view_as_real(z).numpy(), gain.numpy()])]
    expected = torch.fft.ifft(z * gain)
    assert np.abs(torch.view_as_complex(torch.from_numpy(signal)) - expected).max() < 1e-5


def test_complex_input_with_a_dynamic_axis(tmp_path):
    torch.manual_seed(0)
    report = export(ComplexIO(), (torch.randn(5, 8, dtype=torch.complex64), torch.randn(8)), tmp_path,
                    dynamic_axes={"z": {0: "B"}})
    assert len(report.checks) == 3


def test_a_causal_log_mel_front_end_streams(tmp_path):
    """Pulsed by tract (the streaming check) 16 and 32 samples at a time, it gives the whole-sequence
    output after a delay of (n_fft - hop) / hop = 3 frames."""
    torch.manual_seed(0)
    report = export(LogMel(causal=True), (torch.randn(1, 480),), tmp_path, dynamic_axes={"x": {1: "T"}},
                    streaming_axis="T", streaming_pulses=(16, 32))
    assert {pulse: result.delays for pulse, result in report.pulses.items()} == {16: [3], 32: [3]}
    assert all(r.max_abs <= 1e-4 for result in report.pulses.values() for r in result.reports)


def test_a_centred_stft_cannot_stream(tmp_path):
    with pytest.raises(TractCheckError, match=r"cannot stream along T.*aten::reflection_pad1d"):
        export(LogMel(), (torch.randn(1, 480),), tmp_path, dynamic_axes={"x": {1: "T"}}, streaming_axis="T",
               streaming_pulses=(16,))


class LogMelGRU(torch.nn.Module):
    """A 16 kHz waveform -> 25 ms frames every 10 ms (torch.stft, no centring) -> log-mel -> GRU."""

    def __init__(self):
        super().__init__()
        self.log_mel = LogMel(n_fft=400, hop=160, mels=16, causal=True)
        self.gru = torch.nn.GRU(16, 16, batch_first=True)

    def forward(self, x):
        return self.gru(self.log_mel(x))[0]


def test_a_torch_stft_log_mel_gru_streams_in_10_ms_chunks(tmp_path):
    torch.manual_seed(0)
    report = export(LogMelGRU(), (torch.randn(1, 1600),), tmp_path, dynamic_axes={"x": {1: "S"}},
                    streaming_axis="S", streaming_pulses=(160, 320))
    assert all(result.ok for result in report.pulses.values()) and sorted(report.pulses) == [160, 320]
