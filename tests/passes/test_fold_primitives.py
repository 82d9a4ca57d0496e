"""FoldPrimitivesPass: op counts before/after, `modified` accuracy and numerics."""
from __future__ import annotations

import torch

from fx2nnef.compiler.pass_base import count_ops
from fx2nnef.passes import FoldPrimitivesPass
from testing_utils import assert_same_numerics, captured


class PositionsAndMask(torch.nn.Module):
    """Position ids from a buffer, their embeddings, a causal mask from arange, a no-op clone and an
    eval dropout."""

    def __init__(self):
        super().__init__()
        self.register_buffer("position_ids", torch.arange(32).unsqueeze(0))
        self.embed = torch.nn.Embedding(32, 8)
        self.drop = torch.nn.Dropout(0.1)

    def forward(self, x):
        positions = self.position_ids[:, : x.shape[1]]
        mask = torch.arange(x.shape[1])[:, None] >= torch.arange(x.shape[1])[None, :]
        h = self.drop(x + self.embed(positions)).clone()
        return h.masked_fill(~mask[None, :, :, None].expand(1, 5, 5, 8)[:, :, 0], 0.0)


def test_folds_constant_subgraphs_and_no_ops():
    x = torch.randn(1, 5, 8)
    module = PositionsAndMask().eval()
    program = captured(module, x)
    before = count_ops(program)
    assert any("arange" in k for k in before) and any("slice" in k for k in before)
    result = FoldPrimitivesPass()(program)
    after = count_ops(result.program)
    assert result.modified
    assert not any("arange" in k or "slice" in k or "clone" in k or "dropout" in k or "assert" in k for k in after)
    assert "aten::embedding" not in after  # positions are constant, so are their embeddings (weights only)
    assert_same_numerics(captured(module, x), result.program, x)


def test_second_run_reports_unmodified():
    x = torch.randn(1, 5, 8)
    program = FoldPrimitivesPass()(captured(PositionsAndMask().eval(), x)).program
    assert not FoldPrimitivesPass()(program).modified


def test_parameters_and_user_inputs_are_kept():
    linear = torch.nn.Linear(4, 4)
    program = FoldPrimitivesPass()(captured(linear, torch.randn(2, 4))).program
    assert count_ops(program) == {"aten::linear": 1}


def test_folds_a_view_whose_input_was_made_contiguous_by_a_bypassed_clone():
    class Rotary(torch.nn.Module):  # GPT-J's sin/cos tables: transpose, contiguous copy, view
        def __init__(self):
            super().__init__()
            self.register_buffer("table", torch.arange(12.0).reshape(3, 4))

        def forward(self, x):
            return x + self.table.t().contiguous().view(-1)

    x = torch.randn(2, 12)
    result = FoldPrimitivesPass()(captured(Rotary().eval(), x))
    assert result.modified and "aten::view" not in count_ops(result.program)
    assert_same_numerics(captured(Rotary().eval(), x), result.program, x)


def test_folds_what_is_computed_from_weights_only():
    class RelativePositions(torch.nn.Module):  # DeBERTa: a projection of position embeddings, tiled
        def __init__(self):
            super().__init__()
            self.positions = torch.nn.Parameter(torch.randn(6, 8))
            self.project = torch.nn.Linear(8, 8)
            self.mix = torch.nn.Linear(8, 8)

        def forward(self, x):
            keys = self.project(self.positions).repeat(2, 1, 1)
            return self.mix(x) @ keys.transpose(1, 2)

    x = torch.randn(2, 5, 8)
    module = RelativePositions().eval()
    result = FoldPrimitivesPass()(captured(module, x))
    after = count_ops(result.program)
    assert after["aten::linear"] == 1 and "aten::repeat" not in after  # only the input's linear remains
    assert "mix.weight" in result.program.state_dict  # a weight read as it is stays a parameter
    assert_same_numerics(captured(module, x), result.program, x)
