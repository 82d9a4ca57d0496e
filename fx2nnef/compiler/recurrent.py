"""Keep recurrent layers whole through torch.export: one node per nn.LSTM / nn.GRU / nn.RNN call,
whose time axis stays symbolic.

torch.export keeps functional CompositeImplicitAutograd ops such as `aten.lstm.input` whole, but
computes their output shapes by running their C++ decomposition, which unrolls the time steps and
fixes the sequence length. Inside `keep_recurrences_whole()` the CompositeImplicitAutograd kernel of
each recurrent op is a Python one (the mechanism of torch.export._patches for LSTM and GRU) that
calls the custom op `fx2nnef::<op>`: its fake implementation gives the output shapes from the input
shapes, so the time axis stays a symbol, and its real implementation is torch's own kernel, so a
decomposition of the op stays correct. lowerings/recurrent.py lowers both names to tract scans.
A PackedSequence (`aten.lstm.data`, ...) stops the capture with an UnsupportedOpError.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch._C import DispatchKey
from torch._decomp import decomposition_table

from ..errors import UnsupportedOpError

# aten op -> the eager function that runs it (the C++ kernel, reached without the Python dispatcher)
RECURRENT_OPS = {
    "lstm": torch._VF.lstm,
    "gru": torch._VF.gru,
    "rnn_tanh": torch._VF.rnn_tanh,
    "rnn_relu": torch._VF.rnn_relu,
}

_library = torch.library.Library("fx2nnef", "DEF")


def _output_shapes(name: str, input, hx, bidirectional: bool):
    """Return the fake outputs of a recurrent op: the sequence output (its feature axis holds each
    direction's hidden state), then the final states, each shaped like its initial state."""
    states = list(hx) if name == "lstm" else [hx]
    shape = list(input.shape[:2]) + [(2 if bidirectional else 1) * states[0].shape[2]]
    return (input.new_empty(shape), *(s.new_empty(s.shape) for s in states))


def _define(name: str) -> None:
    """Define fx2nnef::<name> with the schema of aten::<name>.input, its eager and fake kernels."""
    schema = str(getattr(torch.ops.aten, name).input._schema)
    _library.define(name + schema[schema.index("("):])
    eager = RECURRENT_OPS[name]

    def run(input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
        with torch._C._DisablePythonDispatcher():
            return eager(input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)

    def fake(input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
        return _output_shapes(name, input, hx, bidirectional)

    _library.impl(name, run, "CompositeExplicitAutograd")
    torch.library.register_fake(f"fx2nnef::{name}", fake, lib=_library)


for _name in RECURRENT_OPS:
    _define(_name)


def _redirect(name: str):
    """Return the CompositeImplicitAutograd kernel of aten::<name>.input: a call of fx2nnef::<name>."""
    custom = getattr(torch.ops.fx2nnef, name).default
    return lambda *args, **kwargs: custom(*args, **kwargs)


def _refuse_packed(name: str):
    """Return the kernel of aten::<name>.data (a PackedSequence input): an UnsupportedOpError."""
    def refuse(*args, **kwargs):
        raise UnsupportedOpError(
            f"aten::{name}.data: the recurrent layer runs on a PackedSequence, which an NNEF graph cannot "
            "express (its batch shrinks step by step, with lengths read from data). Export the model on "
            "padded tensors instead (no pack_padded_sequence), masking the padded steps after the layer")
    return refuse


@contextlib.contextmanager
def keep_recurrences_whole() -> Iterator[None]:
    """Make torch.export (and decompositions run inside) keep each recurrent layer as one node with a
    symbolic time axis, and refuse packed sequences; restore torch's kernels on exit."""
    key, table = DispatchKey.CompositeImplicitAutograd, decomposition_table
    kernels = [(getattr(torch.ops.aten, name).input, _redirect(name)) for name in RECURRENT_OPS]
    kernels += [(getattr(torch.ops.aten, name).data, _refuse_packed(name)) for name in RECURRENT_OPS]
    saved = [(op, op.py_kernels.get(key), table.get(op)) for op, _ in kernels]
    try:
        for op, kernel in kernels:
            op.py_kernels[key] = kernel  # what torch.export's tracer runs
            table[op] = kernel           # what fake tensors run on symbolic shapes
            op._dispatch_cache.clear()
        yield
    finally:
        for op, kernel, decomposition in saved:
            for store, previous in ((op.py_kernels, kernel), (table, decomposition)):
                if previous is None:
                    store.pop(key if store is op.py_kernels else op, None)
                else:
                    store[key if store is op.py_kernels else op] = previous
            op._dispatch_cache.clear()
