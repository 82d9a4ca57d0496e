"""A Hugging Face model directory as an export: the model, example inputs built from its config and
dynamic axes (what `fx2nnef export <dir> <out>` runs, in the manner of `optimum-cli export onnx`).

The model class is the task's Auto class when a task is given, else the architecture its config
names; nothing is downloaded (local files only) and remote code runs only when asked for.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import torch

from .errors import ExportInputError

log = logging.getLogger("fx2nnef")

TASKS = {
    "feature-extraction": "AutoModel",
    "text-generation": "AutoModelForCausalLM",
    "fill-mask": "AutoModelForMaskedLM",
    "text-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "question-answering": "AutoModelForQuestionAnswering",
    "image-classification": "AutoModelForImageClassification",
    "audio-classification": "AutoModelForAudioClassification",
    "text2text-generation": "AutoModelForSeq2SeqLM",
}
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
BATCH, SEQUENCE, AUDIO_SAMPLES = 2, 8, 4000


@dataclasses.dataclass
class HubExport:
    """What to export: the model, its example inputs by forward() name, their dynamic axes."""

    model: torch.nn.Module
    inputs: dict[str, torch.Tensor]
    dynamic_axes: dict[str, dict[int, str]]
    task: str


def load(model_dir: str | os.PathLike, task: str | None = None, dtype: str = "f32", trust_remote_code: bool = False,
         batch: int = BATCH, sequence_length: int = SEQUENCE, dynamic: bool = True) -> HubExport:
    """Load the model saved in `model_dir` and build example inputs and dynamic axes for it."""
    model, name = load_model(model_dir, task, dtype, trust_remote_code)
    inputs, axes = example_inputs(model, batch, sequence_length)
    log.info("%s from %s: inputs %s", type(model).__name__, model_dir,
             ", ".join(f"{k} {list(v.shape)} {v.dtype}" for k, v in inputs.items()))
    return HubExport(model, inputs, axes if dynamic else {}, task or name)


def load_model(model_dir: str | os.PathLike, task: str | None = None, dtype: str = "f32",
               trust_remote_code: bool = False) -> tuple[torch.nn.Module, str]:
    """Load the model saved in `model_dir` (local files only), in eval mode; return it and its class name."""
    import transformers
    directory = Path(model_dir)
    if not (directory / "config.json").is_file():
        raise ExportInputError(f"{directory} is not a Hugging Face model directory: it has no config.json")
    if task is not None and task not in TASKS:
        raise ExportInputError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
    if dtype not in DTYPES:
        raise ExportInputError(f"unknown dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    try:
        config = transformers.AutoConfig.from_pretrained(directory, local_files_only=True,
                                                         trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise ExportInputError(f"cannot read the config in {directory}: {exc}") from exc
    model_class = _model_class(transformers, config, task, directory)
    try:
        model = model_class.from_pretrained(directory, local_files_only=True, trust_remote_code=trust_remote_code,
                                            dtype=DTYPES[dtype])
    except (OSError, ValueError) as exc:
        raise ExportInputError(f"cannot load {model_class.__name__} from {directory}: {exc}") from exc
    return model.eval(), model_class.__name__


def _model_class(transformers, config, task: str | None, directory: Path):
    """Return the class to load: the task's Auto class, else the config's first architecture."""
    if task is not None:
        return getattr(transformers, TASKS[task])
    architectures = getattr(config, "architectures", None) or []
    for name in architectures:
        if hasattr(transformers, name):
            return getattr(transformers, name)
    if architectures:
        raise ExportInputError(f"{directory}: transformers {transformers.__version__} has no class "
                               f"{architectures[0]} (remote code? pass --trust-remote-code), or give --task")
    return transformers.AutoModel


def example_inputs(model: torch.nn.Module, batch: int, sequence_length: int
                   ) -> tuple[dict[str, torch.Tensor], dict[str, dict[int, str]]]:
    """Return random example inputs for the model's main input (text, image or audio), with the
    attention mask and token types it takes, and their dynamic axes."""
    config, generator = model.config, torch.Generator().manual_seed(0)
    main = getattr(model, "main_input_name", "input_ids")
    accepted = set(_forward_parameters(model))
    if main == "input_ids":
        vocab = getattr(config, "vocab_size", None) or 100
        ids = torch.randint(min(5, vocab - 1), vocab, (batch, sequence_length), generator=generator)
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if batch > 1:
            inputs["attention_mask"][-1, sequence_length // 2:] = 0  # a padded row
        if "token_type_ids" in accepted and getattr(config, "type_vocab_size", 0):
            inputs["token_type_ids"] = torch.zeros_like(ids)
        if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" in accepted:
            inputs["decoder_input_ids"] = ids[:, : max(1, sequence_length // 2)].clone()
        axes = {name: {0: "B", 1: "S"} for name in inputs}
        if "decoder_input_ids" in inputs:
            axes["decoder_input_ids"] = {0: "B", 1: "T"}
    elif main == "pixel_values":
        size = getattr(config, "image_size", 224)
        size = size if isinstance(size, int) else size[0] if isinstance(size, (list, tuple)) else 224
        channels = getattr(config, "num_channels", 3)
        inputs = {"pixel_values": torch.rand(batch, channels, size, size, generator=generator)}
        axes = {"pixel_values": {0: "B", 2: "H", 3: "W"}}
    elif main == "input_values":
        inputs = {"input_values": torch.randn(batch, AUDIO_SAMPLES, generator=generator)}
        axes = {"input_values": {0: "B", 1: "T"}}
    elif main == "input_features":
        bins = getattr(config, "num_mel_bins", 80)
        frames = 2 * getattr(config, "max_source_positions", 1500)
        inputs = {"input_features": torch.randn(batch, bins, frames, generator=generator)}
        if "decoder_input_ids" in accepted:
            inputs["decoder_input_ids"] = torch.full((batch, 4), getattr(config, "decoder_start_token_id", 1) or 1)
        axes = {"input_features": {0: "B"}, "decoder_input_ids": {0: "B", 1: "T"}}
    else:
        raise ExportInputError(f"{type(model).__name__} takes {main!r} first: fx2nnef export builds text, image "
                               "and audio inputs only; export it from Python with your own inputs")
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    inputs = {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs.items()}
    return inputs, {k: v for k, v in axes.items() if k in inputs}


def _forward_parameters(model: torch.nn.Module) -> list[str]:
    """Return the names forward() takes."""
    import inspect
    return list(inspect.signature(model.forward).parameters)

