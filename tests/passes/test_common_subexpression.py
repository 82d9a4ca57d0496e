"""DedupeConstantsPass and CommonSubexpressionPass: what merges, what must not, numerics, `modified`."""
from __future__ import annotations

import torch

from fx2nnef.compiler.pass_base import count_ops
from fx2nnef.passes import CommonSubexpressionPass, DedupeConstantsPass
from fx2nnef.passes.dedupe_constants import _fingerprint
from testing_utils import assert_same_numerics, captured


class ParallelNorms(torch.nn.Module):
    """Two layer norms of one input (GPT-NeoX's parallel residual), at initialization (equal weights)."""

    def __init__(self):
        super().__init__()
        self.first, self.second = torch.nn.LayerNorm(8), torch.nn.LayerNorm(8)

    def forward(self, x):
        return self.first(x) * 2 + self.second(x)


def dedupe_then_cse(program):
    return CommonSubexpressionPass()(DedupeConstantsPass()(program).program)


def norms(program) -> int:
    return sum(count for op, count in count_ops(program).items() if "layer_norm" in op)


def test_equal_weights_merge_then_the_norms_on_them_merge():
    model, x = ParallelNorms().eval(), torch.randn(2, 8)
    result = dedupe_then_cse(captured(model, x))
    assert result.modified and norms(captured(model, x)) == 2 and norms(result.program) == 1
    assert_same_numerics(captured(model, x), result.program, x)


def test_different_weights_and_different_bytes_stay_apart():
    model, x = ParallelNorms().eval(), torch.randn(2, 8)
    with torch.no_grad():
        model.second.bias.fill_(-0.0)  # equal to 0.0 as a value, not as bytes
    assert norms(dedupe_then_cse(captured(model, x)).program) == 2
    with torch.no_grad():
        model.second.bias.fill_(0.0)
        model.second.weight[3] = 2.0  # differs in one element, away from the sampled ones
    result = dedupe_then_cse(captured(model, x))
    assert norms(result.program) == 2
    assert_same_numerics(captured(model, x), result.program, x)


def test_scalar_types_and_random_ops_are_not_merged():
    class Mixed(torch.nn.Module):
        def forward(self, i, x):
            return i + 1, i + 1.0, i + True, x + 0.0, x + -0.0, torch.rand_like(x), torch.rand_like(x)

    i, x = torch.arange(3), torch.randn(3)
    result = CommonSubexpressionPass()(captured(Mixed(), i, x))
    ops = count_ops(result.program)
    assert not result.modified and ops["aten::rand_like"] == 2 and ops["aten::add.Tensor"] == 5


def test_a_duplicate_output_is_renamed_in_the_signature():
    class Twice(torch.nn.Module):
        def forward(self, x):
            return x.exp(), x.exp() + 1

    x = torch.randn(3)
    result = CommonSubexpressionPass()(captured(Twice(), x))
    assert result.modified and count_ops(result.program)["aten::exp"] == 1
    assert_same_numerics(captured(Twice(), x), result.program, x)


def test_constants_of_any_layout_are_compared():
    class Strided(torch.nn.Module):
        def __init__(self):
            super().__init__()
            base = torch.arange(8.0).reshape(4, 2)
            self.register_buffer("one", base[:1, 0])     # one element, stride 2
            self.register_buffer("same", torch.zeros(1))  # equal bytes, stride 1
            self.register_buffer("wide", base.t())       # transposed

        def forward(self, x):
            return x + self.one, x * self.same, x.unsqueeze(-1) + self.wide[0]

    x = torch.randn(3)
    result = DedupeConstantsPass()(captured(Strided(), x))
    assert result.modified
    assert_same_numerics(captured(Strided(), x), result.program, x)


def test_fingerprint_samples_stay_in_bounds_past_float_precision():
    big = torch.zeros(65_536_000, dtype=torch.uint8)  # a 1 B Llama's embedding has this many elements
    big[-1] = 7
    assert _fingerprint(big)[-1] == 7
