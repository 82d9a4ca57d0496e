"""Test helpers: capture a module and compare numerics before/after passes; small models."""
from __future__ import annotations

import torch
import torch.utils._pytree as pytree

from fx2nnef.compiler.frontend import bind_inputs, capture
from fx2nnef.passes import DecomposePass


def captured(module: torch.nn.Module, *args, decompose: bool = True):
    """Return the module's ExportedProgram (after DecomposePass unless told otherwise)."""
    args, kwargs = bind_inputs(module, list(args))
    program = capture(module, args, kwargs)
    return DecomposePass()(program).program if decompose else program


def flat_outputs(program, *args):
    """Run a program's module on inputs and return its flat tensor outputs."""
    return [t for t in pytree.tree_leaves(program.module()(*args)) if isinstance(t, torch.Tensor)]


def assert_same_numerics(before, after, *args, atol=1e-6):
    for a, b in zip(flat_outputs(before, *args), flat_outputs(after, *args), strict=True):
        torch.testing.assert_close(b, a.to(b.dtype), atol=atol, rtol=1e-5)


def tiny_bert():
    """Return a 2-layer, hidden-32 random-weight BERT and (ids, mask) with the last two tokens padded."""
    from transformers import BertConfig, BertModel
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=32)
    ids = torch.randint(0, 100, (1, 8))
    mask = torch.ones(1, 8, dtype=torch.long)
    mask[0, 6:] = 0
    return BertModel(config).eval(), (ids, mask)


class Apply(torch.nn.Module):
    """A module whose forward returns fn(*inputs): one function under test, exported as a model."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *inputs):
        return self.fn(*inputs)
