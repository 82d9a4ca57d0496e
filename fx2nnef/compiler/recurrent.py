"""Keep recurrent layers whole through torch.export: one node per nn.LSTM / nn.GRU / nn.RNN call,
whose time axis stays symbolic.

torch.export keeps functional CompositeImplicitAutograd ops such as `aten.lstm.input` whole, but
computes their output shapes by running their C++ decomposition, which unrolls the time steps and
fixes the sequence length. Inside `keep_recurrences_whole()` the CompositeImplicitAutograd kernel of
each recurrent op is a Python one (the mechanism of torch.export._patches for LSTM and GRU) that
calls the custom op `fx2nnef::<op>`: its fake implementation gives the output shapes from the input
shapes, so the time axis stays a symbol, and its real implementation is torch's own kernel, so a
decomposition of the op stays correct. lowerings/recurrent.py lowers both names to tract scans.
A PackedSequence given to a recurrent module stops the capture with an UnsupportedOpError.
"""
from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Iterator

import torch
from torch._C import DispatchKey
from torch._decomp import decomposition_table
from torch.nn.utils.rnn import PackedSequence

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


def _refuse_packed(path: str, module: torch.nn.Module, args: tuple) -> None:
    """Forward pre-hook of the recurrent module at `path`: raise an UnsupportedOpError on a PackedSequence."""
    if args and isinstance(args[0], PackedSequence):
        raise UnsupportedOpError(
            f"{type(module).__name__} '{path}' runs on a PackedSequence, which an NNEF graph cannot express (its batch "
            "shrinks step by step, with lengths read from data): export the model on padded tensors instead "
            "(no pack_padded_sequence) and mask the padded steps after the layer")


@contextlib.contextmanager
def keep_recurrences_whole(model: torch.nn.Module) -> Iterator[None]:
    """Make torch.export (and the decompositions run inside) keep each recurrent layer as one node with
    a symbolic time axis, and refuse packed sequences given to the model's recurrent modules; restore
    torch's kernels and remove the hooks on exit."""
    key = DispatchKey.CompositeImplicitAutograd
    ops = {getattr(torch.ops.aten, name).input: getattr(torch.ops.fx2nnef, name).default for name in RECURRENT_OPS}
    saved = {op: (op.py_kernels.get(key), decomposition_table.get(op)) for op in ops}
    hooks = [m.register_forward_pre_hook(functools.partial(_refuse_packed, path or "<root>"))
             for path, m in model.named_modules() if isinstance(m, torch.nn.RNNBase)]
    try:
        for op, kernel in ops.items():
            op.py_kernels[key] = kernel       # what torch.export's tracer runs
            decomposition_table[op] = kernel  # what fake tensors run on symbolic shapes
            op._dispatch_cache.clear()
        with warnings.catch_warnings():       # nn.RNNBase refreshes its weight list in forward(): harmless
            warnings.filterwarnings("ignore", message=r"The tensor attributes self\._flat_weights")
            yield
    finally:
        for hook in hooks:
            hook.remove()
        for op, (kernel, decomposition) in saved.items():
            _restore(op.py_kernels, key, kernel)
            _restore(decomposition_table, op, decomposition)
            op._dispatch_cache.clear()


def _restore(table: dict, key, value) -> None:
    """Put `value` back under `key` in `table`, or remove the key when there was none."""
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value
