"""Shared fixtures: small random-weight models built from code (nothing is downloaded)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def small_albert():
    """A 2-layer, hidden-64 ALBERT and a tokenized sentence as a dict in tokenizer order."""
    from fx2nnef.examples import albert
    model, inputs = albert(hidden_size=64, num_attention_heads=4, intermediate_size=128, embedding_size=32,
                           vocab_size=1000, num_hidden_layers=2)
    inputs["input_ids"] = inputs["input_ids"] % 1000
    return model, inputs


@pytest.fixture
def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4)).eval()
