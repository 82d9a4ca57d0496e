"""The frontend of an LLM export: a module whose inputs and outputs are the KV cache, so that a
causal LM's step `(new tokens, cache) -> (logits, cache)` is one graph with symbols S (new tokens)
and P (cached tokens).

    inputs:  input_ids [B, S] i64, [attention_mask [B, S] i64, in_attention_mask [B, P] i64,]
             [logits_to_keep [] i64,] in_cache_key_0, in_cache_value_0, ...   [B, kv_heads, P, head_dim]
    outputs: outputs [B, n, vocab] (logits of the last n positions),
             [out_attention_mask [B, P+S] i64,] out_cache_key_0, out_cache_value_0, ... [B, kv_heads, P+S, head_dim]

B is 1 unless a batch is asked for. With a batch, the attention mask (1: token, 0: padding) is
state like the cache: the new tokens' part is an input, the past's part comes back as
`out_attention_mask` to be fed next call (one [B, P+S] input would tie its length to S and P,
which a graph input's shape cannot say). Positions (with a mask: the real tokens before each one,
so left padding does not shift them) and the causal mask are computed inside.
"""
from __future__ import annotations

import dataclasses
import inspect

import torch

from ..errors import ExportInputError


@dataclasses.dataclass(frozen=True)
class CacheShape:
    """What the KV cache of a model looks like: layers, key/value heads, head size, dtype."""

    layers: int
    kv_heads: int
    head_dim: int
    max_positions: int

    @classmethod
    def of(cls, config) -> "CacheShape":
        """Read the cache geometry from a transformers config (text config of a multimodal one)."""
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        heads = _first(config, "num_attention_heads", "n_head", "num_heads")
        hidden = _first(config, "hidden_size", "n_embd", "d_model")
        kv_heads = _first(config, "num_key_value_heads", "num_kv_heads", default=None)
        if kv_heads is None:   # Falcon: one shared key/value head unless it has new_decoder_architecture
            kv_heads = 1 if getattr(config, "multi_query", False) and not getattr(
                config, "new_decoder_architecture", False) else heads
        head_dim = getattr(config, "head_dim", None) or hidden // heads
        layers = _first(config, "num_hidden_layers", "n_layer", "num_layers")
        positions = _first(config, "max_position_embeddings", "n_positions", "max_seq_len", default=None) or 4096
        return cls(layers, kv_heads, head_dim, positions)

    def names(self, direction: str) -> list[str]:
        """Return the cache tensors' names, layer by layer: `in_cache_key_0`, `in_cache_value_0`, ..."""
        return [f"{direction}_cache_{kind}_{i}" for i in range(self.layers) for kind in ("key", "value")]


def _first(config, *names: str, default=ExportInputError):
    """Return the first attribute of `config` among `names`."""
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    if default is ExportInputError:
        raise ExportInputError(f"{type(config).__name__} has none of {', '.join(names)}: fx2nnef.llm cannot tell the "
                               "shape of its KV cache")
    return default


class CausalLMWithCache(torch.nn.Module):
    """`model` (a transformers causal LM) with its KV cache as explicit tensors.

    `logits_to_keep`: the number of last positions whose logits are returned (0: all), or "dynamic"
    (an i64 input says how many). `attention_mask`: take a [B, P+S] mask (1 = token, 0 = padding)
    and derive positions from it, so left-padded prompts of different lengths decode together.
    """

    def __init__(self, model: torch.nn.Module, logits_to_keep: int | str = 1, attention_mask: bool = False):
        super().__init__()
        self.model = model
        self.logits_to_keep = logits_to_keep
        self.attention_mask = attention_mask
        self.cache = CacheShape.of(model.config)
        parameters = inspect.signature(model.forward).parameters
        self.cache_argument = "cache" if "cache" in parameters else "past_key_values"
        self.keeps_logits = "logits_to_keep" in parameters

    def input_names(self) -> list[str]:
        """Return the graph's input names, in forward()'s order."""
        return (["input_ids"] + (["attention_mask", "in_attention_mask"] if self.attention_mask else [])
                + (["logits_to_keep"] if self.logits_to_keep == "dynamic" else []) + self.cache.names("in"))

    def output_names(self) -> list[str]:
        """Return the graph's output names."""
        return ["outputs"] + (["out_attention_mask"] if self.attention_mask else []) + self.cache.names("out")

    def forward(self, input_ids: torch.Tensor, *rest: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Run one step: new tokens and the cache in, logits and the grown cache out."""
        from transformers import DynamicCache

        rest = list(rest)
        mask = torch.cat([rest.pop(1), rest.pop(0)], dim=1) if self.attention_mask else None   # past, new
        keep = rest.pop(0) if self.logits_to_keep == "dynamic" else self.logits_to_keep
        cache = DynamicCache()
        for layer in range(self.cache.layers):
            cache.update(rest[2 * layer], rest[2 * layer + 1], layer)
        past, new = rest[0].shape[2], input_ids.shape[1]
        if mask is None:
            positions = torch.arange(past, past + new, device=input_ids.device).unsqueeze(0)
        else:   # left padding: a token's position counts the real tokens before it
            positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, past:]
        kwargs = {self.cache_argument: cache, "position_ids": positions, "use_cache": True, "attention_mask": mask}
        if self.keeps_logits and isinstance(keep, int):
            kwargs["logits_to_keep"] = keep
        out = self.model(input_ids=input_ids, **kwargs)
        logits = out.logits
        if isinstance(keep, torch.Tensor):   # the last `keep` positions, a size the graph reads from data
            last = torch.arange(new, device=logits.device) >= new - keep
            logits = logits.index_select(1, last.nonzero().squeeze(1))
        elif keep and logits.shape[1] != keep and not self.keeps_logits:
            logits = logits[:, -keep:]
        grown = [t for layer in cache.layers for t in (layer.keys, layer.values)]   # grown in place
        return (logits, mask, *grown) if self.attention_mask else (logits, *grown)

    def example(self, new: int, past: int, batch: int = 1, dtype: torch.dtype = torch.float32,
                generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Return inputs for `new` tokens after `past` cached ones (random ids and cache)."""
        vocab = self.model.config.get_text_config().vocab_size
        ids = torch.randint(0, vocab, (batch, new), generator=generator)
        inputs = [ids]
        if self.attention_mask:
            inputs += [torch.ones(batch, new, dtype=torch.int64), torch.ones(batch, past, dtype=torch.int64)]
        if self.logits_to_keep == "dynamic":
            inputs.append(torch.tensor(1))
        shape = (batch, self.cache.kv_heads, past, self.cache.head_dim)
        inputs += [torch.randn(shape, generator=generator).to(dtype) for _ in range(2 * self.cache.layers)]
        return inputs
