"""Check that an archive streams: pulse it in tract along a symbol, run it chunk by chunk and compare
the concatenated chunks with the whole-sequence outputs, once the pulsed model's delay has passed.

    report = check_pulse(path, registries, inputs, expected, names, symbol="T", pulse=4, tolerance=...)

tract turns a model with a symbolic streaming axis into a stateful one that takes `pulse` steps at a
time (`model.transform(tract.Pulse(...))`); an output lags its input by a delay. An operation that
cannot stream (a reduction over time, reflect padding, a loop whose last state is read) makes the
transform fail: the error names that operation by what emitted it (`origins`, NNEF tensor name ->
"aten::mean.dim at model.py:12 ..."), as tract names its nodes after the NNEF tensors.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import tract

from fx2nnef.backends.nnef.graph import Graph
from fx2nnef.backends.tract.compare import OutputReport, ToleranceLike, compare_outputs, format_report
from fx2nnef.backends.tract.runner import _tract_message, load
from fx2nnef.errors import TractCheckError

_NODE = re.compile(r'node #\d+ "([^"]+)"')
# what tract says -> why the operation cannot stream
_REASONS = {
    "Scan pulse only supports full outputs": "a recurrent layer's final state is read, and a stream has no last "
                                             "step: read the output sequence instead of h_n / c_n",
    "could not track pulsing axis": "it mixes values across the streaming axis (a reduction, a softmax or a slice "
                                    "over it, a reverse recurrence, ...): a streamed output can only depend on "
                                    "past and present steps",
    "Reflect padding": "reflect padding reads future steps: pad with zeros, on the past side only",
    "Can not pulse a tensor with no streaming dim": "no input has the streaming symbol on an axis",
}


@dataclasses.dataclass
class PulseReport:
    """How the pulsed archive compares with the whole-sequence outputs."""

    pulse: int
    delays: list[int]                   # per output, in steps of that output's streaming axis
    reported_delays: list[int]          # what tract's `pulse.delay` property says
    chunks: int
    seconds_per_chunk: float            # median time of one `state.run` on a chunk
    reports: list[OutputReport]

    @property
    def ok(self) -> bool:
        return all(report.ok for report in self.reports)


def _streaming_axes(model: tract.Model, symbol: str) -> list[int | None]:
    """Return, per input, the axis whose dim is `symbol` (None for an input that does not stream)."""
    axes = []
    for index in range(model.input_count()):
        dims = [str(d) for d in model.input_fact(index).dims()]
        axes.append(dims.index(symbol) if symbol in dims else None)
    return axes


def _culprit(message: str, origins: Mapping[str, str]) -> str:
    """Return what emitted the tract node a pulse error names: the origin of the NNEF tensor whose
    name is the longest prefix of the node's name, else the node's name."""
    match = _NODE.search(message)
    if not match:
        return ""
    node = match.group(1)
    candidates = [name for name in origins if node == name or node.startswith(name + "_") or
                  node.startswith(name + ".")]
    if not candidates:
        return f"tract node {node}"
    name = max(candidates, key=len)
    return f"{origins[name] or 'the operation'} (NNEF tensor {name})"


def refuse_reverse_loops(graph: Graph, symbol: str) -> None:
    """Raise TractCheckError naming each loop that runs backwards along the streaming axis (the reverse
    direction of a bidirectional layer): tract pulses it without error, but backwards within each
    chunk, which is wrong, as a backward pass needs the sequence's end."""
    def streams(tensor, axis: int) -> bool:
        return tensor.shape is None or re.search(rf"\b{re.escape(symbol)}\b", str(tensor.shape[axis])) is not None

    culprits = [op.origin or op.outputs[0].name for op in graph.operations if op.name == "tract_core_scan"
                and any(step < 0 and streams(t, axis) for _, t, axis, step in op.attribs.get("scan", []))]
    if culprits:
        raise TractCheckError(f"the archive cannot stream along {symbol}: a loop runs backwards over it (the reverse "
                              "direction of a bidirectional layer needs the sequence's end) in "
                              + "; ".join(dict.fromkeys(culprits)))


def pulse_model(path: str | os.PathLike, registries: Iterable[str], symbol: str, pulse: int,
                origins: Mapping[str, str] | None = None) -> tuple[tract.Model, list[int | None]]:
    """Load the archive and pulse it along `symbol`; return the pulsed model and, per input, its
    streaming axis (None for an input without one). Raise TractCheckError naming the operation that
    cannot stream."""
    model = load(path, registries)
    axes = _streaming_axes(model, symbol)
    if all(axis is None for axis in axes):
        raise TractCheckError(f"cannot stream {path} along {symbol}: no input has {symbol} on an axis "
                              "(declare it in dynamic_axes)")
    try:
        model.transform(tract.Pulse(str(pulse), symbol=symbol))
    except tract.TractError as exc:
        message = _tract_message(exc)
        culprit = _culprit(message, origins or {})
        reason = next((why for key, why in _REASONS.items() if key in message), "")
        said = " / ".join(line.strip() for line in message.splitlines() if line.strip())
        raise TractCheckError(
            f"the archive cannot stream along {symbol} (pulse {pulse}): "
            + (f"tract cannot pulse {culprit}" if culprit else "tract cannot pulse it")
            + (f": {reason}" if reason else "") + f"\n  tract said: {said}") from None
    return model, axes


def _property(model: tract.Model, key: str, count: int) -> list[int]:
    """Return an integer list property of the pulsed model (one value per output), or zeros."""
    try:
        values = [int(v) for v in np.ravel(model.property(key).to_numpy())]
    except (tract.TractError, KeyError):
        return [0] * count
    return values if len(values) == count else values[:1] * count


def check_pulse(path: str | os.PathLike, registries: Iterable[str], inputs: Sequence[np.ndarray],
                expected: Sequence[np.ndarray], names: Sequence[str], symbol: str, pulse: int,
                tolerance: ToleranceLike, origins: Mapping[str, str] | None = None) -> PulseReport:
    """Pulse the archive along `symbol`, stream `inputs` through it chunk by chunk (zeros after their
    end until every output has caught up) and compare each output, after its delay, with `expected`
    (the whole-sequence outputs, but for their last `delay` steps); raise TractCheckError if an
    output differs at every delay."""
    model, in_axes = pulse_model(path, registries, symbol, pulse, origins)
    out_axes = _property(model, "pulse.output_axes", model.output_count())
    reported = _property(model, "pulse.delay", model.output_count())
    length = next(array.shape[axis] for array, axis in zip(inputs, in_axes) if axis is not None)
    # input steps until each output has shown its whole sequence after its delay, plus one chunk
    needed = max(math.ceil((delay + np.shape(want)[axis]) * length / max(np.shape(want)[axis], 1))
                 for want, axis, delay in zip(expected, out_axes, reported))
    chunks = math.ceil(needed / pulse) + 1
    runnable = model.into_runnable()
    try:
        state = runnable.spawn_state()
        streamed, seconds = [[] for _ in names], []
        for k in range(chunks):
            feed = [_chunk(array, axis, k * pulse, pulse) for array, axis in zip(inputs, in_axes)]
            start = time.perf_counter()
            outs = state.run(feed)
            seconds.append(time.perf_counter() - start)
            for stream, out in zip(streamed, outs):
                stream.append(out.to_numpy())
    except tract.TractError as exc:
        raise TractCheckError(f"tract failed to run {path} pulsed along {symbol} (pulse {pulse}): "
                              f"{_tract_message(exc)}") from None
    outputs = [np.concatenate(stream, axis=axis) for stream, axis in zip(streamed, out_axes)]
    delays, reports = [], []
    for name, got, want, axis, delay in zip(names, outputs, expected, out_axes, reported):
        delay, report = _align(name, got, np.asarray(want), axis, delay, tolerance)
        delays.append(delay)
        reports.append(report)
    result = PulseReport(pulse, delays, reported, chunks, float(np.median(seconds)), reports)
    if not result.ok:
        raise TractCheckError(f"the archive pulsed along {symbol} (pulse {pulse}) differs from the whole-sequence "
                              f"outputs at every delay (tract reports {reported}):\n\n{format_report(reports)}")
    return result


def _chunk(array: np.ndarray, axis: int | None, start: int, size: int) -> np.ndarray:
    """Return steps [start, start + size) of `array` along `axis`, zero-padded past its end (the whole
    array for an input that does not stream)."""
    if axis is None:
        return array
    piece = np.take(array, range(start, min(start + size, array.shape[axis])), axis=axis)
    missing = size - piece.shape[axis]
    if missing > 0:
        pad = [(0, 0)] * array.ndim
        pad[axis] = (0, missing)
        piece = np.pad(piece, pad)
    return np.ascontiguousarray(piece)


def _align(name: str, got: np.ndarray, want: np.ndarray, axis: int, reported: int,
           tolerance: ToleranceLike) -> tuple[int, OutputReport]:
    """Return the delay d at which the streamed output matches the whole one (tract's reported delay
    first, then every other) and the comparison there, else the reported delay's comparison. Steps
    [0, L - d) of the whole output are compared with streamed steps [d, L): the last d steps of the
    whole output depend on the padding after the sequence's end, which a stream never reaches."""
    length = want.shape[axis]
    candidates = [reported] + [d for d in range(length) if d != reported]
    first = None
    for delay in candidates:
        if delay >= length or length > got.shape[axis]:
            continue
        window = np.take(got, range(delay, length), axis=axis)
        report = compare_outputs([name], [np.take(want, range(length - delay), axis=axis)], [window], tolerance)[0]
        if report.ok:
            return delay, report
        first = first or (delay, report)
    return first or (reported, compare_outputs([name], [want], [got], tolerance)[0])
