"""Recurrent layers (nn.LSTM, nn.GRU, nn.RNN and the cells) as tract scans: PyTorch's ModuleInfo
samples, dynamic time and batch, graph size independent of T, states in and out, refusals."""
from __future__ import annotations

import pytest
import torch
from torch.export import Dim
from torch.testing._internal.common_modules import module_db

import fx2nnef
from fx2nnef import TractNNEF, export_model_to_nnef
from fx2nnef.errors import CaptureError, UnsupportedOpError

RECURRENT = ("RNN", "GRU", "LSTM", "RNNCell", "GRUCell", "LSTMCell")
# samples run by default (the others are marked slow): every module once with states given and
# once without, on configurations that together cover bidirectional, batch_first, proj_size, no bias
DEFAULT = {("RNN", 7), ("RNN", 30), ("GRU", 7), ("GRU", 10), ("LSTM", 23), ("LSTM", 14),
           ("RNNCell", 2), ("GRUCell", 1), ("LSTMCell", 1)}


def _samples():
    for info in module_db:
        name = info.module_cls.__name__
        if name not in RECURRENT:
            continue
        for i, sample in enumerate(info.module_inputs_func(info, device="cpu", dtype=torch.float32,
                                                           requires_grad=False, training=False)):
            marks = [] if (name, i) in DEFAULT else [pytest.mark.slow]
            yield pytest.param(info.module_cls, sample, id=f"{name}-{i}", marks=marks)


class Outputs(torch.nn.Module):
    """Return a module's outputs flattened (an LSTM's (h, c) tuple becomes two outputs)."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args):
        out = self.module(*args)
        if isinstance(out, tuple):
            return tuple(t for item in out for t in (item if isinstance(item, tuple) else (item,)))
        return out


@pytest.mark.parametrize("cls,sample", list(_samples()))
def test_module_db_sample(cls, sample, tmp_path):
    torch.manual_seed(0)
    module = Outputs(cls(*sample.constructor_input.args, **sample.constructor_input.kwargs).eval())
    report = export_model_to_nnef(module, list(sample.forward_input.args), tmp_path / "m.nnef")
    assert report.check and all(r.ok for r in report.check)


class Stack(torch.nn.Module):
    """A recurrent layer given its initial states, returning its output and final states."""

    def __init__(self, cls, **options):
        super().__init__()
        self.rnn = cls(6, 8, **options)

    def forward(self, x, h0, c0=None):
        if isinstance(self.rnn, torch.nn.LSTM):
            y, (h, c) = self.rnn(x, (h0, c0))
            return y, h, c
        y, h = self.rnn(x, h0)
        return y, h


@pytest.mark.parametrize("cls,options", [
    (torch.nn.LSTM, dict(num_layers=2, bidirectional=True, proj_size=3)),
    (torch.nn.GRU, dict(num_layers=2, bidirectional=True, batch_first=True)),
    (torch.nn.RNN, dict(bidirectional=True, nonlinearity="relu", bias=False)),
], ids=["lstm-bidirectional-proj", "gru-bidirectional-batch-first", "rnn-relu-bidirectional"])
def test_dynamic_time_and_batch_with_states(cls, options, tmp_path):
    """Bidirectional layers given initial states (and a bidirectional LSTM with proj_size, both of
    which the reference exporter gets wrong) match PyTorch at the example and two other (T, B)."""
    torch.manual_seed(0)
    model = Stack(cls, **options).eval()
    layers = options.get("num_layers", 1) * 2
    x = torch.randn(3, 5, 6) if options.get("batch_first") else torch.randn(5, 3, 6)
    states = [torch.randn(layers, 3, options.get("proj_size", 8))]
    names = ["x", "h0"]
    if cls is torch.nn.LSTM:
        states.append(torch.randn(layers, 3, 8))
        names.append("c0")
    axes = {"x": {1: "T", 0: "B"} if options.get("batch_first") else {0: "T", 1: "B"}}
    axes.update({name: {1: "B"} for name in names[1:]})
    report = export_model_to_nnef(model, [x, *states], tmp_path / "m.nnef", TractNNEF(dynamic_axes=axes),
                                  input_names=names)
    assert len(report.checks) == 3 and all(r.ok for check in report.checks.values() for r in check)
    if cls is torch.nn.GRU:                      # tract's fused GRU sequence operator
        assert [op.name for op in report.graph.operations].count("tract_core_gru_seq") == layers
    else:
        scans = [op for op in report.graph.operations if op.name == "tract_core_scan"]
        assert len(scans) == layers              # one loop per layer and direction
        assert len(report.graph.bodies) == 1     # all running one body


def test_capture_keeps_one_node_with_a_symbolic_time_axis():
    model = torch.nn.LSTM(4, 8, num_layers=2, bidirectional=True).eval()
    result = fx2nnef.compile(model, [torch.randn(5, 2, 4)], dynamic_shapes=({0: Dim.DYNAMIC},))
    nodes = [n for n in result.program.graph.nodes if n.op == "call_function" and "lstm" in str(n.target)]
    assert [str(n.target) for n in nodes] == ["aten.lstm.input"]
    assert not isinstance(nodes[0].meta["val"][0].shape[0], int)   # T stays a symbol


@pytest.mark.parametrize("cls", [torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN])
def test_graph_size_does_not_grow_with_time(cls, tmp_path):
    torch.manual_seed(0)
    model = cls(4, 8).eval()
    sizes = [len(export_model_to_nnef(model, [torch.randn(t, 1, 4)], tmp_path / f"m{t}.nnef",
                                      TractNNEF(check_io=t == 4)).graph.operations) for t in (4, 64)]
    assert sizes[0] == sizes[1]


class Sequence(torch.nn.Module):
    """A recurrent layer's output sequence only (its final states are not read)."""

    def __init__(self, rnn: torch.nn.Module):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)[0]


def test_gru_and_lstm_forms_by_release_and_streaming(tmp_path):
    """tract 0.23.9 runs a GRU as its fused sequence operator (not streamable), a streamed GRU and an
    LSTM as loops over a fused step; releases that cannot read these get the gates written out."""
    torch.manual_seed(0)
    x = torch.randn(5, 2, 4)

    def operators(cls, version, streaming=False):
        target = TractNNEF(version, check_io=version == "0.23.9", dynamic_axes={"x": {0: "T"}},
                           streaming_axis="T" if streaming else None)
        graph = export_model_to_nnef(Sequence(cls(4, 8)).eval(), [x], tmp_path / f"{cls.__name__}{version}{streaming}",
                                     target, input_names=["x"]).graph
        return {op.name for op in graph.operations} | {op.name for b in graph.bodies.values() for op in b.operations}

    assert "tract_core_gru_seq" in operators(torch.nn.GRU, "0.23.9")
    assert {"tract_core_scan", "tract_core_gru_epilogue"} <= operators(torch.nn.GRU, "0.23.9", streaming=True)
    assert "tract_core_lstm_epilogue" in operators(torch.nn.LSTM, "0.23.9")
    for cls in (torch.nn.GRU, torch.nn.LSTM):
        old = operators(cls, "0.23.0")
        assert "tract_core_scan" in old and not any("epilogue" in name or "seq" in name for name in old)


class CellLoop(torch.nn.Module):
    """A Python loop over time calling a cell."""

    def __init__(self, cls):
        super().__init__()
        self.cell = cls(4, 8)

    def forward(self, x):
        h = c = x.new_zeros(x.shape[1], 8)
        outs = []
        for t in range(x.shape[0]):
            if isinstance(self.cell, torch.nn.LSTMCell):
                h, c = self.cell(x[t], (h, c))
            else:
                h = self.cell(x[t], h)
            outs.append(h)
        return torch.stack(outs)


def test_cell_loops_with_a_static_time_axis(tmp_path):
    """torch.export unrolls a Python loop over time; RollCellLoopsPass rolls it back into one layer: the
    graph does not grow with T (the batch may be dynamic). A dynamic T fails at capture, naming the loop."""
    torch.manual_seed(0)
    reports = [export_model_to_nnef(CellLoop(torch.nn.LSTMCell).eval(), [torch.randn(steps, 2, 4)],
                                    tmp_path / f"m{steps}",
                                    TractNNEF(dynamic_axes={"x": {1: "B"}}, check_io=steps == 4))
               for steps in (4, 12)]
    assert len(reports[0].graph.operations) == len(reports[1].graph.operations)
    assert any(op.name == "tract_core_scan" for op in reports[1].graph.operations)
    assert len(reports[0].checks) == 3 and all(r.ok for check in reports[0].checks.values() for r in check)
    with pytest.raises(CaptureError, match=r"axis 0 \(T\) is forced to 4(.|\n)*for t in range(.|\n)*loop with nn.LSTM"):
        export_model_to_nnef(CellLoop(torch.nn.GRUCell).eval(), [torch.randn(4, 2, 4)], tmp_path / "m.nnef",
                             TractNNEF(dynamic_axes={"x": {0: "T"}}))


class Packed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.GRU(4, 8)

    def forward(self, x, lengths):
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        return torch.nn.utils.rnn.pad_packed_sequence(self.encoder(packed)[0])[0]


def test_packed_sequences_are_refused(tmp_path):
    with pytest.raises(UnsupportedOpError, match="GRU 'encoder' runs on a PackedSequence"):
        export_model_to_nnef(Packed().eval(), [torch.randn(5, 2, 4), torch.tensor([5, 3])], tmp_path / "m.nnef")
    assert not (tmp_path / "m.nnef").exists()


def test_torch_kernels_are_restored_after_export(tmp_path):
    from torch._decomp import decomposition_table
    op = torch.ops.aten.gru.input
    before = (dict(op.py_kernels), decomposition_table.get(op))
    model = torch.nn.GRU(4, 8).eval()
    export_model_to_nnef(model, [torch.randn(3, 1, 4)], tmp_path / "m.nnef", TractNNEF(check_io=False))
    assert (dict(op.py_kernels), decomposition_table.get(op)) == before
    assert not model._forward_pre_hooks
