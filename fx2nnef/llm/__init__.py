"""LLM export: a Hugging Face causal LM with its KV cache as graph IO, checked by generating tokens in
tract (docs/llm.md).

    from fx2nnef.llm import export_llm
    report = export_llm("path/to/hf-model-dir", "exported/", dtype="f16", compression="q4_0")
"""
from .export import export_llm
from .generate import GenerationReport
from .wrapper import CausalLMWithCache

__all__ = ["export_llm", "GenerationReport", "CausalLMWithCache"]
