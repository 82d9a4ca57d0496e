"""`export_llm`: a Hugging Face causal LM to an export directory that tract runs token by token.

    export_dir/
        model/model.nnef.tgz    the graph: (input_ids, caches) -> (logits, grown caches)
        model/config.json       the model's config
        tokenizer/              the tokenizer, when the source has one that loads
        modes.json              symbols, modes and IO names (what a tract-side runner needs)
        tests/*.npz             PyTorch inputs and outputs: prompt, prompt with past, one generation step

It drives the same stages as `export_model_to_nnef` (fx2nnef/stages.py) on the wrapper of
wrapper.py; its check is greedy generation (generate.py) instead of one forward.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .. import hub
from ..backends.nnef.graph import NUMPY_DTYPES
from ..compiler.dynamic import DynamicDim
from ..errors import ExportInputError
from ..stages import Export, ExportReport, reference_outputs, to_numpy
from ..targets import TractNNEF
from .generate import GenerationReport, TractDecoder, check_generation
from .wrapper import CausalLMWithCache

log = logging.getLogger("fx2nnef")

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
# compression -> the layers stored as Q4_0 (TractNNEF.weight_quant_layers); the reference CLI's names too
COMPRESSIONS = {"q4_0": ("linear",), "min_max_q4_0": ("linear",),
                "q4_0_with_embeddings": ("linear", "embedding"), "min_max_q4_0_with_embeddings": ("linear", "embedding")}
# tract's greedy choice is checked against PyTorch's; the prompt's logits must agree within this
PROMPT_TOLERANCE = {"f32": 1e-4, "bf16": 1e-4, "f16": 3e-2}
NEW, PAST = 3, 4    # example sizes of the capture (torch.export specializes sizes 0 and 1)


def export_llm(model: torch.nn.Module | str | os.PathLike, export_dir: str | os.PathLike, *, dtype: str = "f32",
               compression: str | None = None, num_logits_to_keep: int | str = 1, batch: bool = False,
               verify: bool = True, generation_steps: int = 32, dump_with_tokenizer_and_conf: bool = False,
               overwrite: bool = False, trust_remote_code: bool = False, tract_version: str | None = None,
               debug_bundle_path: str | os.PathLike | None = None) -> ExportReport:
    """Export a causal LM (a local Hugging Face model directory or a loaded `PreTrainedModel`) to
    `export_dir` and, unless `verify=False`, check it by greedy generation in tract.

    dtype: "f32", "f16" (weights, compute and caches in f16) or "bf16" (weights rounded to bf16,
    computed in f32: tract has no bf16). compression: None, "q4_0" (every Linear, the LM head
    included) or "q4_0_with_embeddings" (the token embedding too). num_logits_to_keep: logits of the
    last N positions (0: all), or "dynamic" (an i64 input `logits_to_keep`). batch: a symbolic
    batch B and an `attention_mask` input [B, P+S], for left-padded prompts decoded together.
    Returns the report of the archive (`report.path`: model/model.nnef.tgz; `report.generation`).
    """
    final = _check_arguments(export_dir, dtype, compression, num_logits_to_keep, overwrite)
    causal_lm, source = _causal_lm(model, dtype, trust_remote_code)
    wrapper = CausalLMWithCache(causal_lm, num_logits_to_keep, attention_mask=batch).eval()
    shape = wrapper.cache
    cache_dtype = torch.float16 if dtype == "f16" else torch.float32
    target = TractNNEF(version=tract_version or TractNNEF.latest_version(), check_io=False,
                       dynamic_axes=_dynamic_axes(wrapper, batch),
                       weight_quant="q4_0" if compression else None,
                       weight_quant_layers=COMPRESSIONS.get(compression, ("linear",)))
    staging = final.with_name(f".fx2nnef-tmp-{uuid.uuid4().hex[:8]}-{final.name}")
    (staging / "model").mkdir(parents=True)
    try:
        example = wrapper.example(NEW, PAST, 2 if batch else 1, cache_dtype, torch.Generator().manual_seed(0))
        export = Export.begin(wrapper, example, staging / "model" / "model.nnef.tgz", target,
                              wrapper.input_names(), wrapper.output_names(),
                              debug_bundle_path or final.with_name(final.name + "-debug.tgz"))
        log.info("exporting %s (%d layers, %d key/value heads of %d) as %s%s", type(causal_lm).__name__,
                 shape.layers, shape.kv_heads, shape.head_dim, dtype, f" with {compression}" if compression else "")
        with export.guard():
            export.build()
            export.graph.assertions = _contract(export.graph.assertions, shape.max_positions)
            export.write()
            generation = _verify(export, wrapper, dtype, generation_steps) if verify else None
            report = export.commit()
        report.generation = generation
        _write_companions(staging, export, wrapper, source, dump_with_tokenizer_and_conf, cache_dtype)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.path = final / "model" / "model.nnef.tgz"
    log.info("LLM export written to %s", final)
    return report


def _check_arguments(export_dir, dtype: str, compression: str | None, keep: int | str, overwrite: bool) -> Path:
    """Validate the options; return the export directory (which must not exist unless `overwrite`)."""
    if not isinstance(export_dir, (str, os.PathLike)):
        raise ExportInputError(f"export_dir must be a path, got {type(export_dir).__name__}")
    final = Path(export_dir)
    if dtype not in DTYPES:
        raise ExportInputError(f"dtype={dtype!r}: choose one of {', '.join(DTYPES)}")
    if compression is not None and compression not in COMPRESSIONS:
        raise ExportInputError(f"compression={compression!r}: choose None or one of {', '.join(COMPRESSIONS)}")
    if not (keep == "dynamic" or isinstance(keep, int) and not isinstance(keep, bool) and keep >= 0):
        raise ExportInputError(f"num_logits_to_keep={keep!r}: give an integer >= 0 (0 keeps all) or 'dynamic'")
    if final.exists() and not overwrite and (not final.is_dir() or any(final.iterdir())):
        raise ExportInputError(f"{final} already exists: choose another export directory or allow overwriting "
                               "(overwrite=True, --overwrite)")
    if not final.parent.is_dir():
        raise ExportInputError(f"the parent of the export directory does not exist: {final.parent}")
    return final


def _causal_lm(model, dtype: str, trust_remote_code: bool) -> tuple[torch.nn.Module, Path | None]:
    """Return the causal LM to export in `dtype` (bf16: rounded to bf16, held in f32) and its directory.
    A loaded model of another dtype is converted on a copy: the user's model is not modified."""
    if isinstance(model, (str, os.PathLike)):
        source = Path(model)
        loaded, _ = hub.load_model(source, "text-generation", dtype, trust_remote_code)
    elif isinstance(model, torch.nn.Module):
        source, loaded = None, model
    else:
        raise ExportInputError(f"model must be a Hugging Face model directory or a loaded causal LM, "
                               f"got {type(model).__name__}")
    _check_architecture(loaded)
    if dtype == "bf16":   # weights rounded to bf16, computed in f32 (tract has no bf16)
        return _converted(_converted(loaded, torch.bfloat16, model), torch.float32, model), source
    return _converted(loaded, DTYPES[dtype], model), source


def _converted(model: torch.nn.Module, dtype: torch.dtype, users: object) -> torch.nn.Module:
    """Return `model` with floating-point weights in `dtype`, converting a copy when it is the user's."""
    if {p.dtype for p in model.parameters() if p.is_floating_point()} <= {dtype}:
        return model.eval()
    if model is users:
        log.info("converting a copy of the model to %s (the model given is not modified)", dtype)
        model = copy.deepcopy(model)
    return model.to(dtype).eval()


def _check_architecture(model: torch.nn.Module) -> None:
    """Raise ExportInputError, naming the class and why, for a model fx2nnef.llm cannot export."""
    name = type(model).__name__
    config = getattr(model, "config", None)
    if config is None:
        raise ExportInputError(f"{name} is not a Hugging Face model (it has no config): fx2nnef.llm exports causal "
                               "LMs such as LlamaForCausalLM")
    if getattr(config, "is_encoder_decoder", False):
        raise ExportInputError(f"{name} is an encoder-decoder model: fx2nnef.llm exports decoder-only causal LMs "
                               "(export_model_to_nnef exports its forward)")
    head = getattr(model, "get_output_embeddings", lambda: None)()
    if head is None or not hasattr(model, "generate"):
        raise ExportInputError(f"{name} has no language-model head: pass its ...ForCausalLM class")
    import inspect
    parameters = inspect.signature(model.forward).parameters
    if "cache" not in parameters and "past_key_values" not in parameters:
        raise ExportInputError(f"{name} keeps no key/value cache (its forward takes neither cache nor "
                               "past_key_values): a recurrent or state-space model is not an attention KV-cache LM")


def _dynamic_axes(wrapper: CausalLMWithCache, batch: bool) -> dict:
    """Return the symbols: S new tokens, P cached ones (0 allowed), B with a batch."""
    top = wrapper.cache.max_positions - 1
    new, past = DynamicDim("S", min=1, max=top), DynamicDim("P", min=0, max=top)
    axes = {"input_ids": {1: new}, **{name: {2: past} for name in wrapper.cache.names("in")}}
    if batch:
        for name in ["input_ids", *wrapper.cache.names("in")]:
            axes[name][0] = "B"
        axes["attention_mask"] = {0: "B", 1: new}
        axes["in_attention_mask"] = {0: "B", 1: past}
    return axes


def _contract(ranges: list[str], max_positions: int) -> list[str]:
    """Return the tract_assert rules of the reference's LLM archives: the symbols' lower bounds (from
    `ranges`, the rules of the symbols' ranges), the context bound and the two modes (tg: one new
    token; pp: an empty cache). The upper bounds of S and P are left out: the context bound implies
    them, and under the modes every rule slows tract's load (docs/llm.md)."""
    lower = [rule for rule in ranges if not rule.startswith(("S <=", "P <="))]
    return lower + [f"S + P < {max_positions}", "tg: S == 1", "pp: P == 0"]


def _verify(export: Export, wrapper: CausalLMWithCache, dtype: str, steps: int) -> GenerationReport:
    """Check the written archive by greedy generation against transformers, with the weights the archive
    holds (Q4_0 decoded back); on divergence, keep what was fed and seen for the debug bundle."""
    start = time.perf_counter()
    shape, model = wrapper.cache, wrapper.model
    decoder = TractDecoder(export.temporary, export.graph.registries,
                           np.float16 if dtype == "f16" else np.float32, shape.layers,
                           masked=wrapper.attention_mask, keep_input=wrapper.logits_to_keep == "dynamic")
    vocab = model.config.get_text_config().vocab_size
    prompt = torch.randint(0, vocab, (1, 8), generator=torch.Generator().manual_seed(1))
    weights = {name.removeprefix("model."): value for name, value in export.reference_weights().items()}
    with _weights_in(model, weights):
        report = check_generation(decoder, model, prompt, steps,
                                  shape.kv_heads, shape.head_dim, PROMPT_TOLERANCE[dtype])
    export.timings["check"] = time.perf_counter() - start
    return report


@contextlib.contextmanager
def _weights_in(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> Iterator[None]:
    """Make `model` compute with `weights` (parameter name -> value) inside the block; put its own back."""
    parameters = dict(model.named_parameters(remove_duplicate=False))
    saved = {name: parameters[name].data for name in weights if name in parameters}
    try:
        for name in saved:
            parameters[name].data = weights[name].to(parameters[name].dtype)
        yield
    finally:
        for name, data in saved.items():
            parameters[name].data = data


def _write_companions(staging: Path, export: Export, wrapper: CausalLMWithCache, source: Path | None,
                      tokenizer_required: bool, cache_dtype: torch.dtype) -> None:
    """Write config.json, the tokenizer, modes.json and the tests/ input-output files next to the archive."""
    wrapper.model.config.to_json_file(staging / "model" / "config.json")
    _write_tokenizer(staging / "tokenizer", source, tokenizer_required)
    graph = export.graph
    modes = {"symbols": {"S": "new tokens", "P": "cached tokens", **({"B": "batch"} if wrapper.attention_mask
                                                                      else {})},
             "assertions": graph.assertions, "modes": {"tg": "S == 1", "pp": "P == 0"},
             "inputs": [t.name for t in graph.inputs], "outputs": [t.name for t in graph.outputs],
             "num_logits_to_keep": wrapper.logits_to_keep, "max_position_embeddings": wrapper.cache.max_positions,
             "cache": {"layers": wrapper.cache.layers, "kv_heads": wrapper.cache.kv_heads,
                       "head_dim": wrapper.cache.head_dim, "dtype": np.dtype(NUMPY_DTYPES[graph.inputs[-1].dtype]).name}}
    (staging / "modes.json").write_text(json.dumps(modes, indent=2) + "\n")
    tests = staging / "tests"
    tests.mkdir()
    generator = torch.Generator().manual_seed(2)
    weights = export.reference_weights()
    for label, (new, past) in {"prompt": (8, 0), "prompt_with_past": (4, 8), "generation_step": (1, 12)}.items():
        inputs = wrapper.example(new, past, 1, cache_dtype, generator)
        outputs = reference_outputs(wrapper, tuple(inputs), {}, weights)
        np.savez(tests / f"{label}.npz",
                 **{f"input_{t.name}": to_numpy(x).astype(NUMPY_DTYPES[t.dtype]) for t, x in zip(graph.inputs, inputs)},
                 **{f"output_{t.name}": to_numpy(y) for t, y in zip(graph.outputs, outputs)})


def _write_tokenizer(directory: Path, source: Path | None, required: bool) -> None:
    """Save the source's tokenizer into `directory`; when it cannot load, fail if `required`, else warn."""
    if source is None and not required:
        return
    try:
        from transformers import AutoTokenizer
        if source is None:
            raise OSError("the model was given as an object, not a directory")
        AutoTokenizer.from_pretrained(source, local_files_only=True).save_pretrained(directory)
    except Exception as exc:  # noqa: BLE001 - any tokenizer failure is reported the same way
        if required:
            raise ExportInputError(f"cannot load the tokenizer of {source}: {exc}") from exc
        log.warning("no tokenizer written (%s): %s", source, str(exc).splitlines()[0] if str(exc) else type(exc))
