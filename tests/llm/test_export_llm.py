"""fx2nnef.llm: the KV cache as graph IO, the export directory, the generation check, dtypes and Q4_0."""
from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
import torch

from fx2nnef.backends.nnef.reader import read_archive
from fx2nnef.backends.tract.runner import execute, load, prepare
from fx2nnef.errors import ExportInputError, TractCheckError
from fx2nnef.llm import export_llm
from fx2nnef.llm.generate import TractDecoder

from llm.models import causal_lm, save_llama


def graph_text(report) -> str:
    with tarfile.open(report.path) as archive:
        return archive.extractfile("graph.nnef").read().decode()


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return save_llama(tmp_path_factory.mktemp("llama"))


def run_tests_file(report, label: str):
    """Run tests/<label>.npz's inputs in tract; return (expected, got) outputs."""
    data = np.load(report.path.parent.parent / "tests" / f"{label}.npz")
    inputs = [data[f"input_{name}"] for name in report.input_names]
    runnable = prepare(load(report.path, report.graph.registries), report.path)
    return [data[f"output_{name}"] for name in report.output_names], execute(runnable, inputs, report.path)


def test_a_model_directory_exports_with_the_reference_io_contract(llama_dir, tmp_path):
    report = export_llm(llama_dir, tmp_path / "out", dump_with_tokenizer_and_conf=True)
    out = tmp_path / "out"
    assert report.path == out / "model" / "model.nnef.tgz" and report.path.is_file()
    assert (out / "model" / "config.json").is_file() and (out / "tokenizer" / "tokenizer.json").is_file()
    assert report.input_names == ["input_ids", "in_cache_key_0", "in_cache_value_0", "in_cache_key_1",
                                  "in_cache_value_1"]
    assert report.output_names == ["outputs", "out_cache_key_0", "out_cache_value_0", "out_cache_key_1",
                                   "out_cache_value_1"]
    text = graph_text(report)
    rules = [line.removeprefix("extension tract_assert ").removesuffix(";") for line in text.splitlines()
             if line.startswith("extension tract_assert")]
    assert rules == ["S >= 1", "P >= 0", "S + P < 256", "tg: S == 1", "pp: P == 0"]   # no redundant S, P <= 255
    assert "tract_core_external(shape = [1, 2, P, 16], datum_type = 'f32')" in text
    modes = json.loads((out / "modes.json").read_text())
    assert modes["modes"] == {"tg": "S == 1", "pp": "P == 0"} and modes["inputs"] == report.input_names
    generation = report.generation
    assert generation.tokens == generation.reference and len(generation.tokens) == 32
    assert generation.prompt_max_abs <= 1e-4
    for label in ("prompt", "prompt_with_past", "generation_step"):
        expected, got = run_tests_file(report, label)
        assert got[1].shape[2] == {"prompt": 8, "prompt_with_past": 12, "generation_step": 13}[label]
        assert max(float(np.abs(e - g).max()) for e, g in zip(expected, got)) <= 1e-4
    assert not list(tmp_path.glob(".fx2nnef-tmp-*"))


@pytest.mark.parametrize("dtype,compression", [("f16", None), ("f32", "q4_0"), ("f16", "q4_0_with_embeddings"),
                                               ("bf16", None)])
def test_dtypes_and_q4_0(dtype, compression, tmp_path):
    model = causal_lm(num_key_value_heads=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = export_llm(model, tmp_path / "out", dtype=dtype, compression=compression)
    assert report.generation.ok and report.generation.tokens == report.generation.reference
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())   # the user's model untouched
    text = graph_text(report)
    cache_type = "f16" if dtype == "f16" else "f32"
    assert f"[1, 2, P, 16], datum_type = '{cache_type}'" in text
    quantized = {t.label for t in read_archive(report.path).tensors if t.dtype == "q4_0"}
    expected = {"model.lm_head.weight", "model.model.layers.0.mlp.up_proj.weight"} if compression else set()
    assert expected <= quantized and ("model.model.embed_tokens.weight" in quantized) == (compression or "").endswith(
        "embeddings")
    expected, _ = run_tests_file(report, "generation_step")
    assert expected[1].dtype == np.dtype(cache_type.replace("f", "float"))


def test_logits_of_every_position_and_a_dynamic_count(tmp_path):
    model = causal_lm(num_hidden_layers=1)
    everything = export_llm(model, tmp_path / "all", num_logits_to_keep=0, verify=False)
    dynamic = export_llm(model, tmp_path / "dynamic", num_logits_to_keep="dynamic")
    assert dynamic.input_names[:2] == ["input_ids", "logits_to_keep"] and dynamic.generation.ok
    ids = np.random.default_rng(0).integers(0, 256, (1, 5))
    cache = [np.zeros((1, 4, 0, 16), np.float32)] * 2
    with torch.no_grad():
        logits = model(torch.from_numpy(ids)).logits.numpy()
    for report, extra, kept in ((everything, [], 5), (dynamic, [np.array(3)], 3)):
        runnable = prepare(load(report.path, report.graph.registries), report.path)
        got = execute(runnable, [ids, *extra, *cache], report.path)[0]
        assert got.shape == (1, kept, 256)
        np.testing.assert_allclose(got, logits[:, -kept:], atol=1e-4)


def test_a_left_padded_batch_decodes_like_each_prompt_alone(tmp_path):
    model = causal_lm(num_key_value_heads=2)
    report = export_llm(model, tmp_path / "out", batch=True)
    assert report.input_names[:3] == ["input_ids", "attention_mask", "in_attention_mask"]
    runnable = prepare(load(report.path, report.graph.registries), report.path)
    prompts = [[5, 17, 99, 3, 42, 7], [8, 1, 200]]
    width = max(map(len, prompts))
    ids = np.array([[0] * (width - len(p)) + p for p in prompts])
    mask = np.array([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    past = np.zeros((2, 0), np.int64)
    cache = [np.zeros((2, 2, 0, 16), np.float32)] * 4
    tokens = []
    for _ in range(8):
        logits, past, *cache = execute(runnable, [ids, mask, past, *cache], report.path)
        ids, mask = logits[:, -1].argmax(-1)[:, None], np.ones((2, 1), np.int64)
        tokens.append(ids[:, 0].tolist())
    for row, prompt in enumerate(prompts):
        alone = model.generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False, eos_token_id=None,
                               pad_token_id=0)[0, len(prompt):].tolist()
        assert [step[row] for step in tokens] == alone


def test_a_divergence_names_the_step_and_writes_the_debug_bundle(tmp_path, monkeypatch):
    real = TractDecoder.__call__
    calls = []

    def perturbed(self, ids, cache):
        logits, cache = real(self, ids, cache)
        calls.append(1)
        if len(calls) == 4:   # the 3rd generated token: another argmax
            logits = logits.copy()
            logits[0, -1, int(np.argmin(logits[0, -1]))] = 100.0
        return logits, cache

    monkeypatch.setattr(TractDecoder, "__call__", perturbed)
    with pytest.raises(TractCheckError, match=r"diverges at step 3 \(position 10\).*top-2 logits are token \d+ "
                                              r"\(100\)"):
        export_llm(causal_lm(num_hidden_layers=1), tmp_path / "out")
    assert not (tmp_path / "out").exists() and (tmp_path / "out-debug.tgz").is_file()
    assert not list(tmp_path.glob(".fx2nnef-tmp-*"))


def test_bad_input_is_a_clear_error_and_leaves_nothing(llama_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportInputError, match="no config.json"):
        export_llm(tmp_path / "empty", tmp_path / "a")
    with pytest.raises(ExportInputError, match="LlamaModel has no language-model head"):
        export_llm(causal_lm(model="LlamaModel"), tmp_path / "b")
    with pytest.raises(ExportInputError, match="T5ForConditionalGeneration is an encoder-decoder model"):
        import transformers
        export_llm(transformers.T5ForConditionalGeneration(transformers.T5Config(
            d_model=32, d_ff=64, num_layers=1, num_heads=2, vocab_size=64)), tmp_path / "c")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(ExportInputError, match="already exists.*overwrite"):
        export_llm(llama_dir, tmp_path / "taken")
    with pytest.raises(ExportInputError, match="compression='q8'"):
        export_llm(llama_dir, tmp_path / "d", compression="q8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "taken"]


def test_a_tokenizer_that_cannot_load(tmp_path):
    directory = tmp_path / "model"
    causal_lm(num_hidden_layers=1).save_pretrained(directory)
    (directory / "tokenizer_config.json").write_text('{"tokenizer_class": "NoSuchTokenizer"}')
    with pytest.raises(ExportInputError, match="cannot load the tokenizer"):
        export_llm(directory, tmp_path / "out", dump_with_tokenizer_and_conf=True, verify=False)
    assert not (tmp_path / "out").exists()
    report = export_llm(directory, tmp_path / "out", verify=False)
    assert report.path.is_file() and not (tmp_path / "out" / "tokenizer").exists()
