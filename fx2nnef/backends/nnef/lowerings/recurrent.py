"""Recurrent layers as tract loops: nn.LSTM, nn.GRU and nn.RNN (aten::lstm.input, gru.input,
rnn_tanh.input, rnn_relu.input, kept whole by compiler/recurrent.py, and its fx2nnef:: twins) become
one `tract_core_scan` per layer and direction, all running one loop body per cell shape; the cells
(aten::lstm_cell, gru_cell, rnn_tanh_cell, rnn_relu_cell) become one step each.

A layer computes the input projection of every step at once (one matmul before the loop); the body
adds the recurrent product and applies the gates. LSTM and GRU gates are tract's fused epilogues:
`tract_core_lstm_epilogue` (gate order i, o, f, g) and `tract_core_gru_epilogue` (order z, r, n:
torch's GRU is ONNX's linear_before_reset form), so the gate rows of the weights are regrouped from
torch's (i, f, g, o) and (r, z, n). A reverse direction scans with a step of -1. A final state is a
"last" output of the loop only when the model reads it, because tract cannot stream such an output.
"""
from __future__ import annotations

import operator

import numpy as np

from ....errors import LoweringError
from ..registry import lower

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
# torch's gate blocks, in the order of tract's fused epilogues
EPILOGUE_ORDER = {"lstm": (0, 3, 1, 2), "gru": (1, 0, 2), "rnn_tanh": (0,), "rnn_relu": (0,)}
GATE_NAMES = {"lstm": "iofg", "gru": "zrn"}
EPILOGUES = {"lstm": "tract_core_lstm_epilogue", "gru": "tract_core_gru_epilogue"}


# -- one step of a cell -----------------------------------------------------------------------

def _gates(b, w, kind: str, hidden: int):
    """Return a weight or bias with its gate blocks of `hidden` rows (axis 0) in the epilogue's order:
    a weight stored in the archive is stored regrouped, once, under its label + ".<gate order>"."""
    order = EPILOGUE_ORDER[kind]
    if w is None or order == tuple(range(len(order))):
        return w
    if w.data is not None and w.label:
        label = f"{w.label}.{GATE_NAMES[kind]}"
        for op in b.graph.operations:
            if op.name == "variable" and op.attribs["label"] == label:
                return op.outputs[0]
        blocks = np.split(np.asarray(w.data), len(order), axis=0)
        return b.variable(np.concatenate([blocks[k] for k in order]), b.fresh(f"{w.name}_{GATE_NAMES[kind]}"), label)
    blocks = [b.op("slice", w, axes=[0], begin=[k * hidden], end=[(k + 1) * hidden]) for k in order]
    return b.op("concat", blocks, axis=0)


def _gate(b, x, k: int, hidden: int):
    """Return gate block k of a [batch, gates * hidden] pre-activation."""
    return b.op("slice", x, axes=[x.rank - 1], begin=[k * hidden], end=[(k + 1) * hidden])


def _recurrent_product(b, h, w_hh):
    """Return h W_hh^T: [batch, gates * hidden]."""
    return b.op("matmul", h, w_hh, transposeB=True)


def _lstm_step(b, xw, h, c, w_hh, w_hr, hidden: int):
    """Return (h', c') of an LSTM step from xw = x W_ih^T + b_ih + b_hh (epilogue gate order)."""
    pre = b.op("add", xw, _recurrent_product(b, h, w_hh))
    if b.supports(EPILOGUES["lstm"]):
        b.require("tract_core")
        out, c_next = b.op(EPILOGUES["lstm"], pre, c, hidden=hidden, outputs=2, out_dtype=c.dtype,
                           out_shape=c.shape)
    else:
        i, o, f = (b.op("sigmoid", _gate(b, pre, k, hidden)) for k in range(3))
        c_next = b.op("add", b.op("mul", f, c), b.op("mul", i, b.op("tanh", _gate(b, pre, 3, hidden))))
        out = b.op("mul", o, b.op("tanh", c_next))
    h_next = b.op("matmul", out, w_hr, transposeB=True) if w_hr is not None else out
    return h_next, c_next


def _gru_step(b, xw, h, w_hh, b_hh, hidden: int):
    """Return h' of a GRU step from xw = x W_ih^T + b_ih (epilogue gate order z, r, n)."""
    rh = _recurrent_product(b, h, w_hh)
    if b_hh is not None:
        rh = b.op("add", rh, b_hh)
    if b.supports(EPILOGUES["gru"]):
        b.require("tract_core")
        return b.op(EPILOGUES["gru"], xw, rh, h, hidden=hidden, out_dtype=h.dtype, out_shape=h.shape)
    z, r = (b.op("sigmoid", b.op("add", _gate(b, xw, k, hidden), _gate(b, rh, k, hidden))) for k in range(2))
    n = b.op("tanh", b.op("add", _gate(b, xw, 2, hidden), b.op("mul", r, _gate(b, rh, 2, hidden))))
    return b.op("add", n, b.op("mul", z, b.op("sub", h, n)))


def _rnn_step(b, kind: str, xw, h, w_hh):
    """Return h' = act(xw + h W_hh^T) of an Elman RNN step (xw holds both biases)."""
    return b.op("tanh" if kind == "rnn_tanh" else "relu", b.op("add", xw, _recurrent_product(b, h, w_hh)))


def _step(b, kind: str, xw, states: list, w_hh, b_hh, w_hr, hidden: int) -> list:
    """Return the next states of one step of `kind` ([h, c] for an LSTM, [h] otherwise)."""
    if kind == "lstm":
        return list(_lstm_step(b, xw, states[0], states[1], w_hh, w_hr, hidden))
    if kind == "gru":
        return [_gru_step(b, xw, states[0], w_hh, b_hh, hidden)]
    return [_rnn_step(b, kind, xw, states[0], w_hh)]


def _input_projection(b, kind: str, x, w_ih, b_ih, b_hh, hidden: int):
    """Return x W_ih^T plus the biases added before the recurrent product (both, except for the GRU,
    whose b_hh is scaled by the reset gate), in the epilogue's gate order."""
    w_ih = _gates(b, w_ih, kind, hidden)
    if x.rank > 2:
        w_ih = b.op("unsqueeze", w_ih, axes=list(range(x.rank - 2)))
    xw = b.op("matmul", x, w_ih, transposeB=True)
    bias = _gates(b, b_ih, kind, hidden)
    if kind != "gru" and b_hh is not None:
        bias = _gates(b, b_hh, kind, hidden) if bias is None else b.op("add", bias, _gates(b, b_hh, kind, hidden))
    return b.op("add", xw, bias) if bias is not None else xw


# -- layers as loops --------------------------------------------------------------------------

def _body(b, kind: str, xw, states: list, w_hh, b_hh, w_hr, hidden: int, time: int) -> tuple[str, list[str]]:
    """Return the name of the loop body of one step (built once per cell shape) and its parameter
    names: x (the step's slice of xw), the states, then the recurrent weights."""
    name = f"{kind}_step_h{hidden}" + ("_proj" if w_hr is not None else "") + \
        ("_nobias" if kind == "gru" and b_hh is None else "") + ("_batch_first" if time else "")
    params = ["x", "h", "c"][:1 + len(states)] + ["w_hh"] + (["b_hh"] if b_hh is not None else []) + \
        (["w_hr"] if w_hr is not None else [])
    if name in b.graph.bodies:
        return name, params
    body = b.body(name)
    body.names.update({"h_next", "c_next", "y"})
    chunk = tuple(1 if i == time else d for i, d in enumerate(xw.shape))
    x = body.param("x", xw.dtype, chunk)
    inner = [body.param(p, s.dtype, s.shape) for p, s in zip(["h", "c"], states)]
    weights = [body.param(p, t.dtype, t.shape) for p, t in zip(params[1 + len(states):],
                                                              [t for t in (w_hh, b_hh, w_hr) if t is not None])]
    w_hh_in = weights[0]
    b_hh_in = weights[1] if b_hh is not None else None
    w_hr_in = weights[-1] if w_hr is not None else None
    nexts = _step(body, kind, body.op("squeeze", x, axes=[time]), inner, w_hh_in, b_hh_in, w_hr_in, hidden)
    y = body.op("unsqueeze", nexts[0], axes=[time])
    for tensor, result in zip(nexts + [y], ["h_next", "c_next"][:len(nexts)] + ["y"]):
        tensor.name = result
    body.graph.outputs = nexts + [y]
    return name, params


def _layer(b, kind: str, x, init: list, weights: list, has_biases: bool, proj: bool, time: int,
           reverse: bool, last: list[bool]):
    """Return one layer-direction as a loop: its output sequence and the final states it is asked
    for (None where `last` says no)."""
    w_ih, w_hh = weights[0], weights[1]
    b_ih, b_hh = (weights[2], weights[3]) if has_biases else (None, None)
    w_hr = weights[-1] if proj else None
    hidden = w_hh.shape[0] // GATES[kind]
    xw = _input_projection(b, kind, x, w_ih, b_ih, b_hh, hidden)
    w_hh = _gates(b, w_hh, kind, hidden)
    b_hh = _gates(b, b_hh, kind, hidden) if kind == "gru" else None
    name, params = _body(b, kind, xw, init, w_hh, b_hh, w_hr, hidden, time)
    step = -1 if reverse else 1
    names = params[1:1 + len(init)]
    full = [t for t in (w_hh, b_hh, w_hr) if t is not None]
    outputs = [("y", "full", time, step)] + [(f"{n}_next", "last", 0, 1) for n, want in zip(names, last) if want]
    b.require("tract_core")
    outs = b.op("tract_core_scan", body=name, scan=[("x", xw, time, step)],
                full=[(p, t) for p, t in zip(params[1 + len(init):], full)],
                state=[(n, s, f"{n}_next") for n, s in zip(names, init)],
                output=outputs, outputs=len(outputs))
    outs = list(outs) if len(outputs) > 1 else [outs]
    y = outs.pop(0)
    y.dtype, y.shape = x.dtype, tuple(init[0].shape[-1] if i == 2 else d for i, d in enumerate(xw.shape))
    finals = []
    for state, want in zip(init, last):
        final = outs.pop(0) if want else None
        if final is not None:
            final.dtype, final.shape = state.dtype, state.shape
        finals.append(final)
    return y, finals


def _gru_sequence(b, kind: str, x, init: list, weights: list, has_biases: bool, proj: bool, time: int,
                  reverse: bool, last: list[bool]):
    """Return one GRU layer-direction as tract's fused sequence operator `tract_core_gru_seq` (on
    batch-first [batch, time, features]), faster than a loop but not streamable: its output sequence
    and its final state when asked for (see _layer)."""
    w_ih, w_hh = weights[0], weights[1]
    b_ih, b_hh = (weights[2], weights[3]) if has_biases else (None, None)
    hidden = w_hh.shape[0] // GATES["gru"]
    xw = _input_projection(b, "gru", x, w_ih, b_ih, None, hidden)
    w_hh, b_hh = _gates(b, w_hh, "gru", hidden), _gates(b, b_hh, "gru", hidden)
    y, final = b.op("tract_core_gru_seq", x=xw, r=w_hh, b=_sequence_bias(b, b_hh, hidden, w_hh.dtype),
                    initial_h=b.op("unsqueeze", init[0], axes=[1]), hidden=hidden, chunk=-1 if reverse else 1,
                    has_bias=int(has_biases), reset_every_turn=0, emit_y=1, projected=1, outputs=2)
    y.dtype, y.shape = x.dtype, tuple(hidden if i == 2 else d for i, d in enumerate(xw.shape))
    final.dtype, final.shape = init[0].dtype, (init[0].shape[0], 1, hidden)
    return y, [b.op("squeeze", final, axes=[1]) if last[0] else None]


def _sequence_bias(b, b_hh, hidden: int, dtype: str):
    """Return the [1, 6 * hidden] bias of `tract_core_gru_seq`: zeros (the input bias is already in its
    projected input) then the recurrent bias (zeros too without biases)."""
    if b_hh is None:
        return b.const(np.zeros((1, 6 * hidden)), dtype, "no_bias")
    if b_hh.data is not None and b_hh.label:
        data = np.asarray(b_hh.data)
        return b.variable(np.concatenate([np.zeros_like(data), data])[None], b.fresh(f"{b_hh.name}_seq"),
                          f"{b_hh.label}.seq")
    return b.op("unsqueeze", b.op("concat", [b.op("mul", b_hh, 0.0), b_hh], axis=0), axes=[0])


def _initial(b, state, k: int):
    """Return the initial state of layer-direction k: state[k] of a [layers * directions, batch, size]."""
    return b.op("squeeze", b.op("slice", state, axes=[0], begin=[k], end=[k + 1]), axes=[0])


def _read_outputs(b) -> set[int]:
    """Return the positions of the current node's tuple result that the graph reads."""
    return {user.args[1] for user in b.node.users if user.target is operator.getitem and user.users}


def _recurrence(b, kind: str, input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
                batch_first):
    """Lower a whole recurrent layer stack (see the module docstring)."""
    if train and dropout > 0 and num_layers > 1:
        raise LoweringError(f"{kind} with dropout {dropout} between layers in training mode: export the model "
                            "in eval mode")
    states = list(hx) if kind == "lstm" else [hx]
    directions = 2 if bidirectional else 1
    per_layer = len(params) // (num_layers * directions)
    proj = kind == "lstm" and states[0].shape[2] != states[1].shape[2]
    # tract's fused GRU sequence operator is faster than a loop but cannot be pulsed
    sequence = kind == "gru" and not b.streaming and b.supports("tract_core_gru_seq")
    time = 1 if batch_first or sequence else 0
    read = _read_outputs(b)
    last = [i + 1 in read for i in range(len(states))]
    x, finals = input, [[] for _ in states]
    if sequence and not batch_first:
        x = b.op("transpose", x, axes=[1, 0, 2])
    for layer in range(num_layers):
        outs = []
        for d in range(directions):
            k = layer * directions + d
            y, ends = (_gru_sequence if sequence else _layer)(
                b, kind, x, [_initial(b, s, k) for s in states], params[k * per_layer:(k + 1) * per_layer],
                has_biases, proj, time, reverse=d == 1, last=last)
            outs.append(y)
            for i, end in enumerate(ends):
                finals[i].append(end)
        x = outs[0] if directions == 1 else b.op("concat", outs, axis=2)
    if sequence and not batch_first:
        x = b.op("transpose", x, axes=[1, 0, 2])
    results = [x]
    for want, ends in zip(last, finals):
        results.append(b.op("concat", [b.op("unsqueeze", t, axes=[0]) for t in ends], axis=0) if want else None)
    return tuple(results)


@lower(("aten::lstm.input", "fx2nnef::lstm"))
def aten_lstm(b, input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    """lstm.input(Tensor input, Tensor[] hx, Tensor[] params, bool has_biases, int num_layers, float dropout, bool train, bool bidirectional, bool batch_first) -> (Tensor, Tensor, Tensor)"""  # noqa: E501
    return _recurrence(b, "lstm", input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
                       batch_first)


@lower(("aten::gru.input", "fx2nnef::gru"))
def aten_gru(b, input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    """gru.input(Tensor input, Tensor hx, Tensor[] params, bool has_biases, int num_layers, float dropout, bool train, bool bidirectional, bool batch_first) -> (Tensor, Tensor)"""  # noqa: E501
    return _recurrence(b, "gru", input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
                       batch_first)


@lower(("aten::rnn_tanh.input", "fx2nnef::rnn_tanh"))
def aten_rnn_tanh(b, input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    """rnn_tanh.input(Tensor input, Tensor hx, Tensor[] params, bool has_biases, int num_layers, float dropout, bool train, bool bidirectional, bool batch_first) -> (Tensor, Tensor)"""  # noqa: E501
    return _recurrence(b, "rnn_tanh", input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
                       batch_first)


@lower(("aten::rnn_relu.input", "fx2nnef::rnn_relu"))
def aten_rnn_relu(b, input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    """rnn_relu.input(Tensor input, Tensor hx, Tensor[] params, bool has_biases, int num_layers, float dropout, bool train, bool bidirectional, bool batch_first) -> (Tensor, Tensor)"""  # noqa: E501
    return _recurrence(b, "rnn_relu", input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
                       batch_first)


# -- cells ------------------------------------------------------------------------------------

def _cell(b, kind: str, input, states: list, w_ih, w_hh, b_ih, b_hh) -> list:
    """Return the next states of one cell step on input [batch, features]."""
    hidden = w_hh.shape[0] // GATES[kind]
    xw = _input_projection(b, kind, input, w_ih, b_ih, b_hh, hidden)
    return _step(b, kind, xw, states, _gates(b, w_hh, kind, hidden),
                 _gates(b, b_hh, kind, hidden) if kind == "gru" else None, None, hidden)


@lower("aten::lstm_cell")
def aten_lstm_cell(b, input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """lstm_cell(Tensor input, Tensor[] hx, Tensor w_ih, Tensor w_hh, Tensor? b_ih=None, Tensor? b_hh=None) -> (Tensor, Tensor)"""  # noqa: E501
    return tuple(_cell(b, "lstm", input, list(hx), w_ih, w_hh, b_ih, b_hh))


@lower("aten::gru_cell")
def aten_gru_cell(b, input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """gru_cell(Tensor input, Tensor hx, Tensor w_ih, Tensor w_hh, Tensor? b_ih=None, Tensor? b_hh=None) -> Tensor"""
    return _cell(b, "gru", input, [hx], w_ih, w_hh, b_ih, b_hh)[0]


@lower("aten::rnn_tanh_cell")
def aten_rnn_tanh_cell(b, input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """rnn_tanh_cell(Tensor input, Tensor hx, Tensor w_ih, Tensor w_hh, Tensor? b_ih=None, Tensor? b_hh=None) -> Tensor"""  # noqa: E501
    return _cell(b, "rnn_tanh", input, [hx], w_ih, w_hh, b_ih, b_hh)[0]


@lower("aten::rnn_relu_cell")
def aten_rnn_relu_cell(b, input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """rnn_relu_cell(Tensor input, Tensor hx, Tensor w_ih, Tensor w_hh, Tensor? b_ih=None, Tensor? b_hh=None) -> Tensor"""  # noqa: E501
    return _cell(b, "rnn_relu", input, [hx], w_ih, w_hh, b_ih, b_hh)[0]
