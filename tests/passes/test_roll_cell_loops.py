"""RollCellLoopsPass: unrolled cell loops become one recurrent layer (op counts, numerics, what stays)."""
from __future__ import annotations

import pytest
import torch

from fx2nnef.compiler.pass_base import count_ops
from fx2nnef.passes import RollCellLoopsPass
from testing_utils import assert_same_numerics, captured


class Loop(torch.nn.Module):
    """A Python loop over time calling a cell; `returns` picks what the model reads."""

    def __init__(self, cls, batch_first: bool = False, returns: str = "stack"):
        super().__init__()
        self.cell, self.batch_first, self.returns = cls(4, 8), batch_first, returns

    def forward(self, x, h):
        c, outs = torch.zeros_like(h), []
        for t in range(x.shape[1 if self.batch_first else 0]):
            xt = x[:, t] if self.batch_first else x[t]
            if isinstance(self.cell, torch.nn.LSTMCell):
                h, c = self.cell(xt, (h, c))
            else:
                h = self.cell(xt, h)
            outs.append(h)
        if self.returns == "stack":
            return torch.stack(outs, dim=1 if self.batch_first else 0), h
        if self.returns == "last":
            return h + 1.0
        return torch.stack(outs), outs[1] * 2.0      # an inner state read elsewhere


@pytest.mark.parametrize("cls", [torch.nn.LSTMCell, torch.nn.GRUCell, torch.nn.RNNCell])
@pytest.mark.parametrize("batch_first,returns", [(False, "stack"), (True, "stack"), (False, "last")])
def test_a_cell_loop_becomes_one_layer(cls, batch_first, returns):
    torch.manual_seed(0)
    x, h = (torch.randn(2, 6, 4) if batch_first else torch.randn(6, 2, 4)), torch.randn(2, 8)
    model = Loop(cls, batch_first, returns).eval()
    before = captured(model, x, h)
    result = RollCellLoopsPass()(captured(model, x, h))
    ops = count_ops(result.program)
    assert result.modified and not any(op.endswith("_cell") for op in ops)
    assert sum(v for k, v in ops.items() if k.startswith("fx2nnef::")) == 1
    assert_same_numerics(before, result.program, x, h, atol=1e-6)


def test_a_loop_whose_inner_states_are_read_elsewhere_stays():
    torch.manual_seed(0)
    x, h = torch.randn(6, 2, 4), torch.randn(2, 8)
    result = RollCellLoopsPass()(captured(Loop(torch.nn.GRUCell, returns="inner").eval(), x, h))
    assert not result.modified and count_ops(result.program)["aten::gru_cell"] == 6
