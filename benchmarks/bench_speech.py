"""Recurrent and streaming speech models in tract: fx2nnef's scans next to the torch.onnx route.

    python benchmarks/bench_speech.py                 # everything (a few minutes)
    python benchmarks/bench_speech.py --lengths 16 256 --budget 2

1. A 2-layer bidirectional LSTM (80 features -> hidden 256), batch 1, at T = 16, 256 and 2048:
   exported by fx2nnef and by `torch.onnx.export(dynamo=True)` at each T. Per route: operation
   count (NNEF operations, loop bodies included / ONNX nodes), tract nodes after optimization
   (`Const` excluded), tract load time (load + optimize, median of 3), and the latency ratio against
   PyTorch on one thread: PyTorch, the NNEF archive and the ONNX model run in alternating rounds,
   each ratio is the median over rounds of (tract time / PyTorch time of the same round).
2. A streaming conv + GRU encoder (examples.ConvGRU: 40 features, 2 GRU layers of 256) the same way
   at T = 256 frames, then pulsed along T by tract at 4 and 16 frames (40 and 160 ms at a 10 ms
   hop): median time per chunk and its real-time factor.
3. Log-mel + GRU models on a 16 kHz waveform pulsed at 10 and 40 ms (160 and 640 samples): one
   whose STFT is a strided conv1d with cos/sin bases (examples.ConvLogMelGRU), one on torch.stft
   (complex values legalized to real pairs, the STFT written as tract_core_stft).

Targets (issue 14): operation count independent of T; tract load < 0.5 s at any T; tract latency
at T = 256 no worse than the ONNX route's.
"""
from __future__ import annotations

import argparse
import collections
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fx2nnef import TractNNEF, export_model_to_nnef
from fx2nnef.examples import conv_gru, conv_log_mel_gru
from fx2nnef.onnx_check import export_onnx

HOP = 160                     # samples per 10 ms frame at 16 kHz


class BiLSTM(torch.nn.Module):
    """A 2-layer bidirectional LSTM encoder over features [time, batch, 80]."""

    def __init__(self, features: int = 80, hidden: int = 256):
        super().__init__()
        self.lstm = torch.nn.LSTM(features, hidden, num_layers=2, bidirectional=True)

    def forward(self, x):
        return self.lstm(x)[0]


class LogMelGRU(torch.nn.Module):
    """Waveform [batch, samples] -> 25 ms frames every 10 ms (torch.stft, no centering) -> 40 log-mel
    bands -> a GRU -> [batch, frames, 64]."""

    def __init__(self, n_fft: int = 400, mels: int = 40, hidden: int = 64):
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft))
        self.register_buffer("mel", torch.rand(n_fft // 2 + 1, mels) / n_fft)
        self.gru = torch.nn.GRU(mels, hidden, batch_first=True)

    def forward(self, wave):
        spec = torch.stft(wave, self.n_fft, HOP, window=self.window, center=False, return_complex=True)
        power = spec.abs().pow(2).transpose(1, 2)                    # [batch, frames, bins]
        return self.gru(torch.log(power @ self.mel + 1e-6))[0]


def load_nnef(path: Path):
    import tract
    return tract.nnef().load(str(path)).into_runnable()


def load_onnx(path: Path, inputs: list[np.ndarray]):
    import tract
    model = tract.onnx().load(str(path))
    for i, array in enumerate(inputs):
        model.set_input_fact(i, ",".join([*map(str, array.shape), "f32"]))
    return model.into_model().into_runnable()


def load_seconds(load, repeats: int = 3):
    """Return (median load + optimize time, the last runnable)."""
    times, runnable = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        runnable = load()
        times.append(time.perf_counter() - start)
    return statistics.median(times), runnable


def tract_nodes(runnable, inputs) -> int:
    """Return the node count of tract's optimized graph (loop bodies included), `Const` excluded."""
    nodes = json.loads(runnable.profile_json(inputs))["nodes"]
    return sum(1 for n in nodes if n["op_name"] != "Const")


def paired_ratios(model, runnables: dict, x: torch.Tensor, budget: float) -> dict[str, float]:
    """Run PyTorch and the NNEF and ONNX runnables in alternating rounds for `budget` seconds (at least
    5 rounds, after a warm-up); return the medians over rounds of (nnef / torch), (onnx / torch) and
    (nnef / onnx) times of the same round, and PyTorch's median time in ms."""
    feed = [x.numpy()]
    with torch.no_grad():
        for _ in range(2):
            model(x)
            for r in runnables.values():
                r.run(feed)
        rounds = collections.defaultdict(list)
        start = time.perf_counter()
        while len(rounds["torch"]) < 5 or time.perf_counter() - start < budget:
            t = time.perf_counter()
            model(x)
            rounds["torch"].append(time.perf_counter() - t)
            for name, r in runnables.items():
                t = time.perf_counter()
                r.run(feed)
                rounds[name].append(time.perf_counter() - t)
    ratio = lambda a, b: statistics.median(p / q for p, q in zip(rounds[a], rounds[b]))  # noqa: E731
    return {"nnef/torch": ratio("nnef", "torch"), "onnx/torch": ratio("onnx", "torch"),
            "nnef/onnx": ratio("nnef", "onnx"), "torch ms": statistics.median(rounds["torch"]) * 1e3}


def compare_routes(name: str, model, x: torch.Tensor, tmp: Path, budget: float, dynamic_axes=None) -> dict:
    """Export `model` on `x` by both routes, load both in tract and time them against PyTorch."""
    feed = [x.numpy()]
    nnef = tmp / f"{name}.nnef.tar"
    report = export_model_to_nnef(model, [x], nnef, TractNNEF(dynamic_axes=dynamic_axes), input_names=["x"])
    ops = len(report.graph.operations) + sum(len(b.operations) for b in report.graph.bodies.values())
    onnx = tmp / f"{name}.onnx"
    export_onnx(model, (x,), {}, onnx)
    import onnx as onnx_lib
    onnx_ops = len(onnx_lib.load(str(onnx)).graph.node)
    nnef_load, nnef_runnable = load_seconds(lambda: load_nnef(nnef))
    onnx_load, onnx_runnable = load_seconds(lambda: load_onnx(onnx, feed))
    ratios = paired_ratios(model, {"nnef": nnef_runnable, "onnx": onnx_runnable}, x, budget)
    return {"model": name, "nnef ops": ops, "nnef tract nodes": tract_nodes(nnef_runnable, feed),
            "nnef load s": nnef_load, "onnx ops": onnx_ops, "onnx tract nodes": tract_nodes(onnx_runnable, feed),
            "onnx load s": onnx_load, **ratios}


def pulse_latency(path: Path, symbol: str, pulse: int, shape: list[int], axis: int, chunks: int = 200) -> float:
    """Return the median time in ms of one chunk of the archive pulsed along `symbol`."""
    import tract
    model = tract.nnef().load(str(path))
    model.transform(tract.Pulse(str(pulse), symbol=symbol))
    state = model.into_runnable().spawn_state()
    shape = list(shape)
    shape[axis] = pulse
    chunk = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    times = []
    for _ in range(chunks):
        t = time.perf_counter()
        state.run([chunk])
        times.append(time.perf_counter() - t)
    return statistics.median(times[10:]) * 1e3


def print_table(rows: list[dict]) -> None:
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 256, 2048])
    parser.add_argument("--budget", type=float, default=4.0, help="seconds of latency rounds per model")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-speech-") as tmp:
        tmp = Path(tmp)
        lstm = BiLSTM().eval()
        for length in args.lengths:
            rows.append(compare_routes(f"bilstm T={length}", lstm, torch.randn(length, 1, 80), tmp, args.budget))
            print(rows[-1], flush=True)
        model, feats = conv_gru(frames=256, n_feats=40, channels=64, hidden=256)
        rows.append(compare_routes("conv+gru T=256", model, feats, tmp, args.budget))
        stream = tmp / "conv_gru_stream.nnef.tar"
        export_model_to_nnef(model, [feats], stream, TractNNEF(dynamic_axes={"x": {2: "T"}}, streaming_axis="T",
                                                               streaming_pulses=(4, 16)), input_names=["x"])
        print_table(rows)
        print()
        print("| streamed model | pulse | ms per chunk | real-time factor |")
        print("|---|---|---|---|")
        for pulse in (4, 16):
            ms = pulse_latency(stream, "T", pulse, list(feats.shape), 2)
            print(f"| conv+gru | {pulse} frames ({pulse * 10} ms) | {ms:.3f} | {ms / (pulse * 10):.4f} |")
        model, wave = conv_log_mel_gru(samples=16000)
        path = tmp / "conv_log_mel_gru.nnef.tar"
        export_model_to_nnef(model, [wave], path, TractNNEF(dynamic_axes={"x": {1: "S"}}, streaming_axis="S",
                                                             streaming_pulses=(HOP, 4 * HOP)), input_names=["x"])
        for pulse in (HOP, 4 * HOP):
            ms = pulse_latency(path, "S", pulse, list(wave.shape), 1)
            print(f"| log-mel (conv STFT) + gru | {pulse} samples ({pulse // 16} ms) | {ms:.3f} | "
                  f"{ms / (pulse / 16):.4f} |")
        path = tmp / "logmel_gru.nnef.tar"
        export_model_to_nnef(LogMelGRU().eval(), [wave], path, TractNNEF(
            dynamic_axes={"x": {1: "S"}}, streaming_axis="S", streaming_pulses=(HOP, 4 * HOP)), input_names=["x"])
        for pulse in (HOP, 4 * HOP):
            ms = pulse_latency(path, "S", pulse, list(wave.shape), 1)
            print(f"| log-mel (torch.stft) + gru | {pulse} samples ({pulse // 16} ms) | {ms:.3f} | "
                  f"{ms / (pulse / 16):.4f} |")
    lstm_rows = [r for r in rows if r["model"].startswith("bilstm")]
    print()
    print(f"operation count independent of T: {len({r['nnef ops'] for r in lstm_rows}) == 1} "
          f"({sorted({r['nnef ops'] for r in lstm_rows})})")
    print(f"tract load < 0.5 s at every T: {all(r['nnef load s'] < 0.5 for r in rows)} "
          f"(max {max(r['nnef load s'] for r in rows):.3f} s)")
    for r in rows:
        if "T=256" in r["model"]:
            print(f"{r['model']}: NNEF {r['nnef/torch']:.2f}x PyTorch, ONNX route {r['onnx/torch']:.2f}x, NNEF/ONNX "
                  f"{r['nnef/onnx']:.3f} (paired): no worse than the ONNX route: {r['nnef/onnx'] <= 1.0}")


if __name__ == "__main__":
    main()
