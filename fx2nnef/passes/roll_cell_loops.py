"""RollCellLoopsPass: a Python loop over time calling a recurrent cell becomes one recurrent layer."""
from __future__ import annotations

import dataclasses
import operator

import torch
from torch.export import ExportedProgram

from ..compiler.pass_base import Pass, PassResult
from ..compiler.program import fake_mode, renamed_outputs, replace

aten = torch.ops.aten
# cell op -> the fx2nnef recurrent layer op (compiler/recurrent.py) that runs it over a sequence
LAYERS = {
    aten.lstm_cell.default: "lstm", aten.gru_cell.default: "gru",
    aten.rnn_tanh_cell.default: "rnn_tanh", aten.rnn_relu_cell.default: "rnn_relu",
}


@dataclasses.dataclass
class _Loop:
    """A chain of cell steps, in order, and the sequence they read."""

    cells: list[torch.fx.Node]
    sequence: torch.fx.Node
    time: int                                  # the sequence's time axis (0, or 1 when batch first)


def _states(cell: torch.fx.Node) -> list:
    """Return the state inputs of a cell step: [h, c] for an LSTM cell, [h] otherwise."""
    return list(cell.args[1]) if cell.target is aten.lstm_cell.default else [cell.args[1]]


def _outputs(cell: torch.fx.Node) -> list:
    """Return the nodes holding a cell step's next states ([h, c] items for an LSTM cell, the step itself
    otherwise); None where the graph does not read one."""
    if cell.target is not aten.lstm_cell.default:
        return [cell]
    items = {user.args[1]: user for user in cell.users if user.target is operator.getitem}
    return [items.get(0), items.get(1)]


def _step(cell: torch.fx.Node) -> tuple[torch.fx.Node, int, int] | None:
    """Return (sequence, axis, index) when a cell step reads `select(sequence, axis, index)` of a rank-3
    sequence along axis 0 or 1, else None."""
    x = cell.args[0]
    if not (isinstance(x, torch.fx.Node) and x.target is aten.select.int):
        return None
    sequence, axis, index = x.args
    shape = sequence.meta["val"].shape
    if len(shape) != 3 or axis not in (0, 1) or not isinstance(shape[axis], int) or not isinstance(index, int):
        return None
    return sequence, axis, index % shape[axis]


def _next(cell: torch.fx.Node) -> torch.fx.Node | None:
    """Return the step of the same cell (same op and weights) that reads this step's states, if one does."""
    outputs = _outputs(cell)
    if any(o is None for o in outputs):
        return None
    for user in outputs[0].users:
        if user.target is cell.target and user.args[2:] == cell.args[2:] and _states(user) == outputs:
            return user
    return None


def _loops(graph: torch.fx.Graph) -> list[_Loop]:
    """Return the chains of cell steps that run one cell over every step of a sequence, in order."""
    cells = [n for n in graph.nodes if n.op == "call_function" and n.target in LAYERS]
    followers = {nxt for nxt in map(_next, cells) if nxt is not None}
    loops = []
    for first in cells:
        if first in followers:
            continue
        chain = [first]
        while (nxt := _next(chain[-1])) is not None:
            chain.append(nxt)
        steps = [_step(cell) for cell in chain]
        if len(chain) < 2 or any(s is None for s in steps):
            continue
        sequence, axis = steps[0][0], steps[0][1]
        if [s[:2] for s in steps] != [(sequence, axis)] * len(chain) or \
                [s[2] for s in steps] != list(range(sequence.meta["val"].shape[axis])):
            continue
        loops.append(_Loop(chain, sequence, axis))
    return loops


def _collected(loop: _Loop) -> torch.fx.Node | None:
    """Return the node stacking every step's hidden state along the time axis (the layer's output), if
    the model builds one."""
    hiddens = [_outputs(cell)[0] for cell in loop.cells]
    for user in hiddens[0].users:
        if user.target is aten.stack.default and list(user.args[0]) == hiddens and \
                (user.args[1] if len(user.args) > 1 else user.kwargs.get("dim", 0)) == loop.time:
            return user
    return None


def _rollable(loop: _Loop, collected: torch.fx.Node | None) -> bool:
    """Tell whether only the next step, the stack of all hidden states and anything after the last
    step read the steps' states (the rolled layer gives these and nothing else)."""
    for cell, nxt in zip(loop.cells, loop.cells[1:]):
        for output in _outputs(cell):
            if output is not None and any(user not in (nxt, collected) for user in output.users):
                return False
    return True


def _roll(graph: torch.fx.Graph, loop: _Loop, collected: torch.fx.Node | None, mode) -> None:
    """Replace a loop by one fx2nnef recurrent layer node and items of its result."""
    first, last = loop.cells[0], loop.cells[-1]
    name = LAYERS[first.target]
    w_ih, w_hh, *biases = first.args[2:]
    has_biases = len(biases) == 2 and all(b is not None for b in biases)
    def call(target, *args) -> torch.fx.Node:
        node = graph.call_function(target, args)
        with mode:
            node.meta["val"] = target(*torch.fx.node.map_aggregate(
                args, lambda a: a.meta["val"] if isinstance(a, torch.fx.Node) else a))
        node.meta.update({k: first.meta[k] for k in ("stack_trace", "nn_module_stack") if k in first.meta})
        return node

    with graph.inserting_before(first):
        initial = [call(aten.unsqueeze.default, state, 0) for state in _states(first)]
        layer = call(getattr(torch.ops.fx2nnef, name).default, loop.sequence,
                     initial if name == "lstm" else initial[0], [w_ih, w_hh, *(biases if has_biases else [])],
                     has_biases, 1, 0.0, False, False, loop.time == 1)
        items = [call(operator.getitem, layer, i) for i in range(len(layer.meta["val"]))]
    if collected is not None:
        collected.replace_all_uses_with(items[0])
    with graph.inserting_before(last):
        for i, output in enumerate(_outputs(last)):
            if output is not None and output.users:
                output.replace_all_uses_with(call(aten.squeeze.dim, items[1 + i], 0))


class RollCellLoopsPass(Pass):
    """After it, a loop running one cell (nn.LSTMCell, nn.GRUCell, nn.RNNCell: the same op and
    weights) over every step of a sequence, in order, is one recurrent layer node (`fx2nnef::lstm`,
    ...), lowered as a tract loop whose size does not grow with the sequence.

    torch.export unrolls a Python loop over time into one cell step per time step. A chain rolls
    when step t reads `select(x, axis, t)` of a static time axis (0, or 1 when batch first) and the
    states step t-1 returned, and when only the next step, a stack of every step's hidden state
    along the time axis and the last step's readers read the states."""

    def call(self, program: ExportedProgram) -> PassResult:
        graph, mode, rolled = program.graph, fake_mode(program), 0
        for loop in _loops(graph):
            collected = _collected(loop)
            if _rollable(loop, collected):
                _roll(graph, loop, collected, mode)
                rolled += 1
        if not rolled:
            return PassResult(program, False)
        graph.eliminate_dead_code()
        return PassResult(replace(program, graph_signature=renamed_outputs(program)), True)
