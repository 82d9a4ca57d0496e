"""Built-in example models (random weights, built from config classes: nothing is downloaded)."""
from __future__ import annotations

import torch

ALBERT_BASE = dict(hidden_size=768, num_attention_heads=12, intermediate_size=3072, embedding_size=128,
                   vocab_size=30000, num_hidden_layers=12)


def albert(**overrides) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """Return a random-weight ALBERT (albert-base-v2 shape unless overridden) and a tokenized sentence."""
    try:
        from transformers import AlbertConfig, AlbertModel
    except ImportError as e:  # transformers is a test/demo extra
        raise ImportError("the ALBERT example needs transformers: pip install transformers") from e
    torch.manual_seed(0)
    model = AlbertModel(AlbertConfig(**{**ALBERT_BASE, **overrides})).eval()
    ids = torch.tensor([[2, 10975, 15, 31, 37, 1700, 3]])
    inputs = {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": torch.ones_like(ids)}
    return model, inputs
