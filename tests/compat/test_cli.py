"""`fx2nnef export <hf-model-dir> <out>` and `fx2nnef inspect <archive>`."""
from __future__ import annotations

import json

import pytest
import torch
import transformers

from fx2nnef.cli import main

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Save a few tiny models with save_pretrained, as a user's model directories."""
    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    models = {
        "bert": transformers.BertForSequenceClassification(transformers.BertConfig(vocab_size=100, **TINY)),
        "resnet": transformers.ResNetForImageClassification(
            transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")),
        "vit": transformers.ViTForImageClassification(transformers.ViTConfig(image_size=32, patch_size=8, **TINY)),
        "llama": transformers.LlamaForCausalLM(transformers.LlamaConfig(vocab_size=100, num_key_value_heads=1, **TINY)),
    }
    for name, model in models.items():
        model.save_pretrained(root / name)
    return root


@pytest.mark.parametrize("name, symbols", [("bert", "B, S"), ("resnet", "B, H, W"), ("vit", "B"), ("llama", "B, S")])
def test_export_builds_inputs_and_dynamic_axes_from_the_config(saved, tmp_path, capsys, name, symbols):
    assert main(["-q", "export", str(saved / name), str(tmp_path / "m.nnef.tgz")]) == 0
    out = capsys.readouterr().out
    assert out.count(": passed (tract ") == 3 and (tmp_path / "m.nnef.tgz").is_file()
    assert main(["inspect", str(tmp_path / "m.nnef.tgz")]) == 0
    assert f"symbols: {symbols}" in capsys.readouterr().out


def test_export_options(saved, tmp_path, capsys):
    assert main(["-q", "export", str(saved / "bert"), str(tmp_path / "m.nnef"), "--static", "--no-check",
                 "--task", "feature-extraction", "--dtype", "f16", "--tract-version", "0.22.4"]) == 0
    assert "tract check: skipped" in capsys.readouterr().out
    assert main(["inspect", "--json", str(tmp_path / "m.nnef")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["symbols"] == [] and summary["properties"]["tract_target_version"] == "0.22.4"
    assert "f16" in summary["bytes_per_dtype"] and summary["signature"].startswith("graph network(input_ids")


@pytest.mark.parametrize("argv, message", [
    (["export", "{missing}", "{out}"], "no config.json"),
    (["export", "{bert}", "{out}", "--task", "image-classification"], "cannot load"),
    (["inspect", "{missing}"], "no archive"),
    (["inspect", "{bert}"], "holds no graph.nnef"),
])
def test_errors_go_to_stderr_with_a_nonzero_status(saved, tmp_path, capsys, argv, message):
    paths = {"missing": tmp_path / "nothing", "out": tmp_path / "m.nnef.tgz", "bert": saved / "bert"}
    assert main([a.format(**paths) for a in argv]) == 1
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == "" and not (tmp_path / "m.nnef.tgz").exists()


@pytest.mark.parametrize("command, options", [
    ("export", ["--task", "--dtype", "--check", "--no-check", "--static", "--batch", "--sequence-length",
                "--tract-version", "--tolerance", "--trust-remote-code", "--debug-bundle"]),
    ("inspect", ["--json"]), ("demo", ["--output", "--layers", "--no-check", "--dynamic"])])
def test_help_lists_every_option(capsys, command, options):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0 and all(option in text for option in options)
