"""Streaming: TractNNEF(streaming_axis=...) pulses the archive in tract and compares the stream with
the whole-sequence outputs; operations that cannot stream fail the export, named."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fx2nnef import TractNNEF, export_model_to_nnef
from fx2nnef.backends.tract.pulse import _align, _chunk
from fx2nnef.errors import ExportInputError, TractCheckError
from fx2nnef.examples import conv_gru, conv_log_mel_gru


class Encoder(torch.nn.Module):
    """A conv front-end and a recurrence over [batch, features, time]; `variant` adds one thing."""

    def __init__(self, variant: str = "causal", rnn=torch.nn.GRU, **options):
        super().__init__()
        self.variant = variant
        self.conv = torch.nn.Conv1d(4, 8, 3, padding=1 if variant == "centered" else 0)
        self.rnn = rnn(8, 8, batch_first=True, **options)

    def forward(self, x):
        x = x if self.variant == "centered" else F.pad(x, (2, 0), mode="reflect" if self.variant == "reflect" else
                                                      "constant")
        y = torch.relu(self.conv(x))
        if self.variant == "mean":
            y = y - y.mean(dim=2, keepdim=True)
        y, h = self.rnn(y.transpose(1, 2))
        return (y, h) if self.variant == "final state" else y


def _export(model, path, x=None, pulses=(4, 8)):
    x = torch.randn(1, 4, 24) if x is None else x
    return export_model_to_nnef(model, [x], path, TractNNEF(dynamic_axes={"x": {2: "T"}}, streaming_axis="T",
                                                            streaming_pulses=pulses), input_names=["x"])


def test_conv_gru_streams_at_two_pulse_sizes(tmp_path):
    model, feats = conv_gru(frames=24, n_feats=8, channels=16, hidden=16)
    report = export_model_to_nnef(model, [feats], tmp_path / "m.nnef",
                                  TractNNEF(dynamic_axes={"feats": {0: "B", 2: "T"}}, streaming_axis="T"),
                                  input_names=["feats"])
    assert sorted(report.pulses) == [4, 8]
    for pulse, check in report.pulses.items():
        assert check.ok and check.delays == [0] and check.reported_delays == [0]
        assert check.chunks * pulse >= 32       # at least four chunks of the largest pulse


def test_a_log_mel_gru_streams_in_10_ms_chunks(tmp_path):
    """A log-mel front-end (an STFT written as a strided conv1d with cos/sin bases) and a GRU, on a
    16 kHz waveform: tract streams it 160 samples at a time, two frames behind."""
    model, wave = conv_log_mel_gru(samples=1200, mels=16, hidden=16)
    report = export_model_to_nnef(model, [wave], tmp_path / "m.nnef",
                                  TractNNEF(dynamic_axes={"wave": {1: "S"}}, streaming_axis="S",
                                            streaming_pulses=(160, 320)), input_names=["wave"])
    assert [check.delays for check in report.pulses.values()] == [[2], [2]]


@pytest.mark.parametrize("rnn,options", [(torch.nn.LSTM, dict(num_layers=2, proj_size=4)),
                                         (torch.nn.RNN, dict(num_layers=2))], ids=["lstm-proj", "rnn"])
def test_recurrent_stacks_stream(rnn, options, tmp_path):
    torch.manual_seed(0)
    report = _export(Encoder(rnn=rnn, **options).eval(), tmp_path / "m.nnef")
    assert all(check.ok for check in report.pulses.values())


def test_a_centered_conv_streams_with_a_delay(tmp_path):
    """A centered convolution looks one step ahead: tract delays the stream by one step, and the
    stream matches the whole sequence but for the last step (which depends on the end padding)."""
    torch.manual_seed(0)
    report = _export(Encoder("centered").eval(), tmp_path / "m.nnef")
    assert [check.delays for check in report.pulses.values()] == [[1], [1]]


@pytest.mark.parametrize("variant,named,why", [
    ("mean", "aten::mean.dim", "mixes values across the streaming axis"),
    ("reflect", "aten::reflection_pad1d", "reflect padding reads future steps"),
    ("final state", "aten::gru.input in module rnn", "final state is read"),
])
def test_operations_that_cannot_stream_are_named(variant, named, why, tmp_path):
    torch.manual_seed(0)
    with pytest.raises(TractCheckError, match=f"cannot stream along T(.|\n)*{named}(.|\n)*{why}"):
        _export(Encoder(variant).eval(), tmp_path / "m.nnef")
    assert not (tmp_path / "m.nnef").exists()


def test_a_bidirectional_layer_cannot_stream(tmp_path):
    """tract pulses a backward loop without complaint, chunk by chunk, which is wrong: refused."""
    torch.manual_seed(0)
    with pytest.raises(TractCheckError, match="loop runs backwards(.|\n)*aten::gru.input in module rnn"):
        _export(Encoder(bidirectional=True).eval(), tmp_path / "m.nnef")


def test_the_streaming_axis_must_be_a_dynamic_axis(tmp_path):
    with pytest.raises(ExportInputError, match=r"streaming_axis='S'\) must be one of the dynamic_axes symbols"):
        export_model_to_nnef(Encoder().eval(), [torch.randn(1, 4, 8)], tmp_path / "m.nnef",
                             TractNNEF(dynamic_axes={"x": {2: "T"}}, streaming_axis="S"), input_names=["x"])
    with pytest.raises(ExportInputError, match="streaming_pulses"):
        TractNNEF(streaming_axis="T", streaming_pulses=(0,))


def test_chunks_are_zero_padded_past_the_end():
    x = np.arange(10.0).reshape(1, 10)
    assert _chunk(x, 1, 8, 4).tolist() == [[8.0, 9.0, 0.0, 0.0]]
    assert _chunk(x, None, 8, 4) is x


def test_the_delay_is_found_by_matching():
    want = np.arange(1.0, 9.0)[None, :]
    got = np.concatenate([np.zeros((1, 3)), want, np.full((1, 2), 7.0)], axis=1)
    delay, report = _align("y", got, want, 1, 0, (1e-6, 0.0))
    assert delay == 3 and report.ok
    delay, report = _align("y", got, want + 100, 1, 3, (1e-6, 0.0))
    assert delay == 3 and not report.ok
