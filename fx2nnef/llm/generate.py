"""The check of an LLM export: greedy generation in tract against transformers' greedy generation.

tract runs the prompt (P = 0), then one token per call, feeding the returned cache back. PyTorch
generates greedily with the same weights (`model.generate(do_sample=False)`). Both sequences must be
equal; the prompt's logits must agree to the tolerance. tract is fed PyTorch's tokens at every step
(teacher forcing), so a difference is seen where it happens, not as a drift after it; a step where
the two disagree and PyTorch's own logits for both choices are within the tolerance is a tie, logged.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..backends.tract.runner import execute, load, prepare
from ..errors import TractCheckError

log = logging.getLogger("fx2nnef")


@dataclasses.dataclass
class GenerationReport:
    """What the generation check saw: both token sequences, the prompt's logits error, ties."""

    tokens: list[int]           # tract's greedy choice at each step (fed PyTorch's tokens)
    reference: list[int]        # transformers' greedy tokens
    prompt_max_abs: float       # tract vs PyTorch on the prompt's logits
    step_max_abs: list[float]   # the same at each generated token
    ties: list[int]             # steps where PyTorch's logits for both choices were within the tolerance

    @property
    def ok(self) -> bool:
        return all(a == b or i in self.ties for i, (a, b) in enumerate(zip(self.tokens, self.reference)))


class TractDecoder:
    """An exported LLM loaded once in tract, called step by step with its cache fed back."""

    def __init__(self, path: Path, registries: Sequence[str], cache_dtype: np.dtype, layers: int,
                 masked: bool = False, keep_input: bool = False):
        self.path = path
        self.runnable = prepare(load(path, registries), path)
        self.cache_dtype = cache_dtype
        self.layers = layers
        self.masked = masked            # the graph takes an attention mask: all ones here
        self.keep_input = keep_input    # the graph takes logits_to_keep: 1 here

    def empty_cache(self, kv_heads: int, head_dim: int, batch: int = 1) -> list[np.ndarray]:
        """Return the cache before the first token (P = 0)."""
        return [np.zeros((batch, kv_heads, 0, head_dim), self.cache_dtype) for _ in range(2 * self.layers)]

    def __call__(self, ids: np.ndarray, cache: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Run new tokens `ids` [B, S] after `cache`; return the logits and the grown cache."""
        extra = []
        if self.masked:   # no padding: the new tokens' mask and the past's
            extra += [np.ones(ids.shape, np.int64), np.ones((ids.shape[0], cache[0].shape[2]), np.int64)]
        if self.keep_input:
            extra.append(np.array(1, np.int64))
        outputs = execute(self.runnable, [ids.astype(np.int64), *extra, *cache], self.path)
        return outputs[0], outputs[2:] if self.masked else outputs[1:]


def reference_generation(model: torch.nn.Module, prompt: torch.Tensor, steps: int) -> tuple[list[int], list[np.ndarray]]:
    """Return transformers' greedy tokens after `prompt` and the logits each was chosen from."""
    from transformers import GenerationConfig

    config = GenerationConfig(do_sample=False, max_new_tokens=steps, min_new_tokens=0, eos_token_id=None,
                              pad_token_id=0, num_beams=1, output_logits=True, return_dict_in_generate=True)
    with torch.no_grad():
        out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), generation_config=config)
    tokens = out.sequences[0, prompt.shape[1]:].tolist()
    return tokens, [step[0].float().numpy() for step in out.logits]


def check_generation(decoder: TractDecoder, model: torch.nn.Module, prompt: torch.Tensor, steps: int,
                     kv_heads: int, head_dim: int, tolerance: float) -> GenerationReport:
    """Generate `steps` tokens after `prompt` in tract and with transformers; raise TractCheckError at
    the first step where tract's choice differs and is not a tie (naming the step, the position and
    both runs' top-2 logits), or when the prompt's logits differ by more than `tolerance`."""
    reference, ref_logits = reference_generation(model, prompt, steps)
    with torch.no_grad():
        prompt_logits = model(input_ids=prompt).logits[0, -1].float().numpy()
    logits, cache = decoder(prompt.numpy(), decoder.empty_cache(kv_heads, head_dim))
    got = logits[0, -1].astype(np.float32)
    prompt_error = float(np.abs(got - prompt_logits).max())
    if prompt_error > tolerance:
        raise TractCheckError(f"the prompt's logits differ from PyTorch's by {prompt_error:.3g} (tolerance "
                              f"{tolerance:g}) at position {prompt.shape[1] - 1}")
    report = GenerationReport([], reference, prompt_error, [], [])
    position = prompt.shape[1] - 1
    for step, expected in enumerate(ref_logits):
        if step:
            logits, cache = decoder(np.array([[reference[step - 1]]]), cache)
            got = logits[0, -1].astype(np.float32)
        error = float(np.abs(got - expected).max())
        report.step_max_abs.append(error)
        report.tokens.append(int(got.argmax()))
        if report.tokens[-1] != reference[step]:
            gap = float(expected[reference[step]] - expected[report.tokens[-1]])
            if gap > tolerance:
                raise TractCheckError(_divergence(step, position + step, got, expected, error))
            report.ties.append(step)
            log.info("step %d: tract chose %d, PyTorch %d, whose logits for the two are %.3g apart (within %g): "
                     "a tie", step, report.tokens[-1], reference[step], gap, tolerance)
    log.info("tract generated the same %d tokens as transformers (prompt logits within %.2g; %d ties)",
             steps, prompt_error, len(report.ties))
    return report


def _divergence(step: int, position: int, got: np.ndarray, expected: np.ndarray, error: float) -> str:
    """Say where and how tract's greedy choice left PyTorch's."""
    def top2(logits: np.ndarray) -> str:
        first, second = np.argsort(logits)[-1], np.argsort(logits)[-2]
        return f"token {first} ({logits[first]:.5g}), token {second} ({logits[second]:.5g})"
    return (f"greedy generation diverges at step {step} (position {position}): tract's top-2 logits are "
            f"{top2(got)}; PyTorch's are {top2(expected)}; the largest logit difference is {error:.3g}")
