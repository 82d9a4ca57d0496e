"""Small random-weight causal LMs (no hub access) and their saved directories."""
from __future__ import annotations

import torch
import transformers

SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, vocab_size=256,
             max_position_embeddings=256, initializer_range=0.2)   # 0.2: greedy choices well apart


def causal_lm(config: str = "LlamaConfig", model: str = "LlamaForCausalLM", **options) -> torch.nn.Module:
    """Return a seeded random-weight causal LM of the small size."""
    torch.manual_seed(0)
    return getattr(transformers, model)(getattr(transformers, config)(**{**SMALL, **options})).eval()


def word_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """Return a word-level tokenizer over 256 made-up words (built here: nothing downloaded)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    vocab = {"<unk>": 0, **{f"w{i}": i for i in range(1, 256)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


def save_llama(directory):
    """Save a Llama with a tokenizer into `directory`, as save_pretrained leaves a model; return it."""
    causal_lm(num_key_value_heads=2).save_pretrained(directory)
    word_tokenizer().save_pretrained(directory)
    return directory
