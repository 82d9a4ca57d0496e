"""Built-in example models (random weights, built from config classes: nothing is downloaded)."""
from __future__ import annotations

import torch

ALBERT_BASE = dict(hidden_size=768, num_attention_heads=12, intermediate_size=3072, embedding_size=128,
                   vocab_size=30000, num_hidden_layers=12)


def albert(**overrides) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """Return a random-weight ALBERT (albert-base-v2 shape unless overridden) and a tokenized sentence."""
    try:
        from transformers import AlbertConfig, AlbertModel
    except ImportError as e:  # transformers is a test/demo extra
        raise ImportError("the ALBERT example needs transformers: pip install transformers") from e
    torch.manual_seed(0)
    model = AlbertModel(AlbertConfig(**{**ALBERT_BASE, **overrides})).eval()
    ids = torch.tensor([[2, 10975, 15, 31, 37, 1700, 3]])
    inputs = {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": torch.ones_like(ids)}
    return model, inputs


class _Clipped(torch.nn.Module):
    """A linear layer, then ReLU clipped at 20 (DeepSpeech's fully connected layer)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.fc = torch.nn.Linear(n_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.hardtanh(torch.relu(self.fc(x)), 0.0, 20.0)


class DeepSpeech(torch.nn.Module):
    """torch_to_nnef's dynamic-axes tutorial model: a batch-normed, strided conv front-end on a
    melbank [batch, time, 64], then the DeepSpeech network of Hannun et al. (the torchaudio layout:
    three clipped linear layers, a bidirectional ReLU RNN whose directions are summed, a clipped
    linear layer and a log-softmax over `n_class` classes) -> [batch, time', n_class]."""

    def __init__(self, n_mels: int = 64, channels: int = 128, n_hidden: int = 256, n_class: int = 40):
        super().__init__()
        self.n_hidden = n_hidden
        self.pre = torch.nn.Sequential(
            torch.nn.BatchNorm1d(n_mels), torch.nn.Conv1d(n_mels, channels, 3, stride=2), torch.nn.ReLU(),
            torch.nn.Conv1d(channels, channels, 5), torch.nn.ReLU())
        self.pool = torch.nn.MaxPool1d(2)
        self.fc = torch.nn.Sequential(_Clipped(channels, n_hidden), _Clipped(n_hidden, n_hidden),
                                      _Clipped(n_hidden, n_hidden))
        self.rnn = torch.nn.RNN(n_hidden, n_hidden, nonlinearity="relu", bidirectional=True)
        self.head = torch.nn.Sequential(_Clipped(n_hidden, n_hidden), torch.nn.Linear(n_hidden, n_class))

    def forward(self, melbank: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.pre(melbank.transpose(1, 2)))      # [B, C, T']
        x = self.fc(x.transpose(1, 2)).transpose(0, 1)        # [T', B, H]
        x, _ = self.rnn(x)
        x = self.head(x[:, :, :self.n_hidden] + x[:, :, self.n_hidden:])
        return torch.log_softmax(x.transpose(0, 1), dim=2)    # [B, T', n_class]


def deepspeech(batch: int = 7, frames: int = 100, **sizes) -> tuple[torch.nn.Module, torch.Tensor]:
    """Return the random-weight DeepSpeech tutorial model and a melbank [batch, frames, 64]."""
    torch.manual_seed(0)
    model = DeepSpeech(**sizes).eval()
    return model, torch.rand(batch, frames, model.pre[0].num_features)


class ConvGRU(torch.nn.Module):
    """A streaming speech encoder: a causal conv front-end (left padding only, stride 2) on features
    [batch, n_feats, time], then a GRU stack and a linear head -> [batch, ceil(time / 2), n_out]."""

    def __init__(self, n_feats: int = 40, channels: int = 64, hidden: int = 64, layers: int = 2, n_out: int = 32):
        super().__init__()
        self.conv1 = torch.nn.Conv1d(n_feats, channels, 3)
        self.conv2 = torch.nn.Conv1d(channels, channels, 3, stride=2)
        self.gru = torch.nn.GRU(channels, hidden, num_layers=layers, batch_first=True)
        self.head = torch.nn.Linear(hidden, n_out)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(torch.nn.functional.pad(feats, (2, 0))))
        x = torch.relu(self.conv2(torch.nn.functional.pad(x, (2, 0))))
        y, _ = self.gru(x.transpose(1, 2))
        return self.head(y)


def conv_gru(batch: int = 1, frames: int = 64, **sizes) -> tuple[torch.nn.Module, torch.Tensor]:
    """Return a random-weight ConvGRU and features [batch, n_feats, frames]."""
    torch.manual_seed(0)
    model = ConvGRU(**sizes).eval()
    return model, torch.randn(batch, model.conv1.in_channels, frames)


class ConvLogMelGRU(torch.nn.Module):
    """A streaming keyword-spotting-like model on a waveform [batch, samples]: 25 ms frames every 10 ms
    (16 kHz) through a short-time Fourier transform written as a strided conv1d with windowed cos/sin
    bases (real arithmetic, no centering: causal), power, `mels` log-mel bands, a GRU, a linear head
    -> [batch, frames, n_out]."""

    def __init__(self, n_fft: int = 400, hop: int = 160, mels: int = 40, hidden: int = 64, n_out: int = 12):
        super().__init__()
        self.hop = hop
        bins = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
        angle = 2 * torch.pi * bins * torch.arange(n_fft, dtype=torch.float64) / n_fft
        window = torch.hann_window(n_fft, dtype=torch.float64)
        bases = torch.cat([window * torch.cos(angle), -window * torch.sin(angle)])[:, None, :]
        self.register_buffer("bases", bases.float())                       # [2 * bins, 1, n_fft]
        self.register_buffer("mel", torch.rand(n_fft // 2 + 1, mels) * 2 / n_fft)
        self.gru = torch.nn.GRU(mels, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, n_out)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spectrum = torch.nn.functional.conv1d(wave[:, None, :], self.bases, stride=self.hop)
        real, imag = spectrum.chunk(2, dim=1)
        power = (real * real + imag * imag).transpose(1, 2)                 # [batch, frames, bins]
        y, _ = self.gru(torch.log(power @ self.mel + 1e-6))
        return self.head(y)


def conv_log_mel_gru(batch: int = 1, samples: int = 4000, **sizes) -> tuple[torch.nn.Module, torch.Tensor]:
    """Return a random-weight ConvLogMelGRU and a waveform [batch, samples] (16 kHz)."""
    torch.manual_seed(0)
    return ConvLogMelGRU(**sizes).eval(), torch.randn(batch, samples) * 0.1
