"""Models whose weights stay on disk: meta-device models with a checkpoint, and accelerate's
disk offload, exported with the weights streamed from their files (compiler/weights.py)."""
from __future__ import annotations

import errno
import json
import logging
import sys
import textwrap

import numpy as np
import pytest
import torch
import transformers

import fx2nnef
from fx2nnef import ExportInputError, SerializationError, TractNNEF, export_model_to_nnef
import fx2nnef.backends.nnef.q4_0
from fx2nnef.backends.nnef import mapped, serializer
from fx2nnef.backends.nnef.reader import read_tensor_files
from fx2nnef.backends.tract import run

accelerate = pytest.importorskip("accelerate")

CONFIG = dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              intermediate_size=128)
IDS = torch.randint(0, 128, (1, 6), generator=torch.Generator().manual_seed(0))


def llama(tie: bool = True, dtype=torch.float32):
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**CONFIG, tie_word_embeddings=tie)).to(dtype).eval()


def empty_llama(tie: bool = True, dtype=torch.float32):
    with accelerate.init_empty_weights():
        return transformers.LlamaForCausalLM(transformers.LlamaConfig(**CONFIG, tie_word_embeddings=tie)).to(dtype).eval()


def logits(model) -> np.ndarray:
    with torch.no_grad():
        return model(input_ids=IDS, use_cache=False).logits.float().numpy()


def export_and_run(model, path, **options) -> tuple[np.ndarray, fx2nnef.ExportReport]:
    report = export_model_to_nnef(model, {"input_ids": IDS}, path, TractNNEF(check_io=False), **options)
    return run(report.path, [IDS.numpy()], report.graph.registries)[0], report


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The reference Llama and its checkpoint in several layouts."""
    root = tmp_path_factory.mktemp("checkpoints")
    model = llama()
    model.save_pretrained(root / "sharded", max_shard_size="100KB")
    model.save_pretrained(root / "single")
    torch.save(model.state_dict(), root / "state.pt")
    return model, root


@pytest.mark.parametrize("layout", ["sharded", "single", "single/model.safetensors", "state.pt"])
def test_meta_model_with_a_checkpoint(saved, tmp_path, layout):
    model, root = saved
    got, report = export_and_run(empty_llama(), tmp_path / "m.nnef.tar", weights=root / layout)
    assert np.abs(got - logits(model)).max() < 1e-4
    assert fx2nnef.compare_with_checkpoint(report.path, root / layout) == {}
    tied = ("model.embed_tokens.weight", "lm_head.weight")  # one stored tensor: one variable
    assert sum(1 for op in report.graph.operations if op.name == "variable" and op.attribs["label"] in tied) == 1


def test_disk_offload_exports_as_is_and_is_left_offloaded(saved, tmp_path):
    model, root = saved
    offloaded = transformers.LlamaForCausalLM.from_pretrained(root / "single").eval()
    accelerate.disk_offload(offloaded, tmp_path / "offload")
    before = logits(offloaded)
    got, _ = export_and_run(offloaded, tmp_path / "m.nnef.tar")
    assert np.abs(got - logits(model)).max() < 1e-4
    assert next(offloaded.parameters()).is_meta and np.array_equal(logits(offloaded), before)


def test_checkpoint_dispatched_to_disk(saved, tmp_path):
    model, root = saved
    empty = empty_llama()
    empty.tie_weights()
    dispatched = accelerate.load_checkpoint_and_dispatch(empty, str(root / "sharded"), device_map={"": "disk"},
                                                         offload_folder=str(tmp_path / "offload"))
    got, _ = export_and_run(dispatched, tmp_path / "m.nnef.tar")
    assert np.abs(got - logits(model)).max() < 1e-4


@pytest.mark.parametrize("stored, model_dtype, archive", [
    (torch.bfloat16, torch.float32, "float32"), (torch.bfloat16, torch.bfloat16, "float32"),
    (torch.float32, torch.float16, "float16")])
def test_dtype_converted_while_streaming(tmp_path, stored, model_dtype, archive):
    source = llama(dtype=stored)
    source.save_pretrained(tmp_path / "ckpt")
    got, report = export_and_run(empty_llama(dtype=model_dtype), tmp_path / "m.nnef", weights=tmp_path / "ckpt")
    weight = np.fromfile(report.path / "model.layers.0.mlp.up_proj.weight.dat", dtype=archive, offset=128)
    expected = source.model.layers[0].mlp.up_proj.weight.detach().to(model_dtype).float().numpy().ravel()
    assert np.array_equal(weight.astype(np.float32), expected.astype(archive).astype(np.float32))
    assert fx2nnef.compare_with_checkpoint(report.path, tmp_path / "ckpt") == {}


def test_q4_0_packed_while_written(saved, tmp_path):
    model, root = saved
    target = TractNNEF(check_io=False, weight_quant="q4_0", weight_quant_layers=("linear", "embedding"))
    streamed = export_model_to_nnef(empty_llama(), {"input_ids": IDS}, tmp_path / "s.nnef.tar", target,
                                    weights=root / "sharded")
    loaded = export_model_to_nnef(model, {"input_ids": IDS}, tmp_path / "l.nnef.tar", target)
    assert fx2nnef.compare_with_checkpoint(streamed.path, root / "sharded") == {}
    label = "model.layers.0.mlp.up_proj.weight"
    read = {name: b"".join(chunks) for name, dtype, _, chunks in
            read_tensor_files(streamed.path)
            if name == label and dtype == "q4_0"}
    expected = fx2nnef.backends.nnef.q4_0.pack_q4_0(model.get_parameter(label).detach().numpy()).blocks.tobytes()
    assert read == {label: expected}
    got = run(streamed.path, [IDS.numpy()], streamed.graph.registries)[0]
    reference = run(loaded.path, [IDS.numpy()], loaded.graph.registries)[0]
    assert np.array_equal(got, reference)  # the same blocks as the in-memory export


def test_check_io_is_refused_with_the_alternative(saved, tmp_path):
    with pytest.raises(ExportInputError, match="check_io=False.*smaller configuration.*compare_with_checkpoint"):
        export_model_to_nnef(empty_llama(), {"input_ids": IDS}, tmp_path / "m.nnef", TractNNEF(), weights=saved[1] / "single")
    assert list(tmp_path.iterdir()) == []


def test_bad_checkpoints_name_the_tensor(saved, tmp_path):
    model, root = saved
    target = TractNNEF(check_io=False)
    with pytest.raises(ExportInputError, match="meta device.*weights="):
        export_model_to_nnef(empty_llama(), {"input_ids": IDS}, tmp_path / "m.nnef", target)
    partial = {k: v for k, v in model.state_dict().items() if "layers.1.mlp" not in k}
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(ExportInputError, match=r"model.layers.1.mlp.\w+.weight is on the meta device and not in"):
        export_model_to_nnef(empty_llama(), {"input_ids": IDS}, tmp_path / "m.nnef", target, weights=tmp_path / "partial.pt")
    wrong = dict(model.state_dict(), **{"model.norm.weight": torch.ones(3)})
    torch.save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(ExportInputError, match=r"model.norm.weight has shape \[3\]"):
        export_model_to_nnef(empty_llama(), {"input_ids": IDS}, tmp_path / "m.nnef", target, weights=tmp_path / "wrong.pt")
    ints = dict(model.state_dict(), **{"model.norm.weight": torch.ones(64, dtype=torch.int64)})
    torch.save(ints, tmp_path / "ints.pt")
    with pytest.raises(ExportInputError, match="model.norm.weight is int64, the model.s torch.float32: they must both be floats or both integers"):
        export_model_to_nnef(empty_llama(), {"input_ids": IDS}, tmp_path / "m.nnef", target, weights=tmp_path / "ints.pt")
    shards = tmp_path / "shards"
    model.save_pretrained(shards, max_shard_size="100KB")
    index = json.loads((shards / "model.safetensors.index.json").read_text())
    missing = sorted(set(index["weight_map"].values()))[1]
    (shards / missing).unlink()
    with pytest.raises(ExportInputError, match=f"missing: {missing}"):
        export_model_to_nnef(empty_llama(), {"input_ids": IDS}, tmp_path / "m.nnef", target, weights=shards)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ints.pt", "partial.pt", "shards", "wrong.pt"]


@pytest.mark.parametrize("copy", ["kernel", "converted"])
def test_full_disk_names_the_tensor_and_leaves_nothing(saved, tmp_path, monkeypatch, copy):
    """A full disk while a weight is copied file to file (os.copy_file_range) or converted piece by
    piece: a SerializationError naming the tensor, and no archive left."""
    calls = []

    def failing(original):
        def fail_fifth(*args, **kwargs):
            calls.append(1)
            if len(calls) == 5:
                raise OSError(errno.ENOSPC, "No space left on device")
            return original(*args, **kwargs)
        return fail_fifth
    if copy == "kernel":
        monkeypatch.setattr(serializer.os, "copy_file_range", failing(serializer.os.copy_file_range))
        model = empty_llama()
    else:
        monkeypatch.setattr(mapped.MappedArray, "chunks", failing(mapped.MappedArray.chunks))
        model = empty_llama(dtype=torch.float16)  # f32 checkpoint: converted while written
    with pytest.raises(SerializationError, match=r"writing the tensor model\.[\w.]+\): .*No space left"):
        export_model_to_nnef(model, {"input_ids": IDS}, tmp_path / "m.nnef.tar", TractNNEF(check_io=False),
                             weights=saved[1] / "single")
    assert list(tmp_path.iterdir()) == []


def test_passes_do_not_read_weights_on_disk(saved, tmp_path, caplog):
    class Transposed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(64, 64))

        def forward(self, x):
            return x @ self.w.t().contiguous()
    real = Transposed().eval()
    torch.save(real.state_dict(), tmp_path / "w.pt")
    with torch.device("meta"):
        empty = Transposed().eval()
    x = torch.randn(2, 64)
    report = export_model_to_nnef(empty, x, tmp_path / "m.nnef", TractNNEF(check_io=False), weights=tmp_path / "w.pt")
    assert any(op.name == "transpose" for op in report.graph.operations)  # not folded into a copy
    got = run(report.path, [x.numpy()], report.graph.registries)[0]
    assert np.abs(got - real(x).detach().numpy()).max() < 1e-4


MEMORY_CHILD = textwrap.dedent('''
    import sys, torch, accelerate, fx2nnef
    class Stack(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList(torch.nn.Linear(2048, 2048) for _ in range(16))
        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x
    with accelerate.init_empty_weights():
        model = Stack()
    fx2nnef.export_model_to_nnef(model, torch.ones(1, 2048), sys.argv[2], fx2nnef.TractNNEF(check_io=False),
                                 weights=sys.argv[1])
''')


def test_memory_does_not_grow_with_the_weights(tmp_path):
    """256 MiB of weights exported from disk: peak anonymous memory stays below the weights' size
    above what a tiny export of the same code needs."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "benchmarks"))
    from bench_big import peak_anonymous
    state = {f"layers.{i}.{k}": v for i in range(16) for k, v in
             (("weight", torch.randn(2048, 2048)), ("bias", torch.zeros(2048)))}
    from safetensors.torch import save_file
    save_file(state, tmp_path / "w.safetensors")
    del state
    big, peak_big = peak_anonymous([sys.executable, "-c", MEMORY_CHILD, str(tmp_path / "w.safetensors"),
                                    str(tmp_path / "big.nnef.tar")])
    assert big.returncode == 0, big.stderr[-2000:]
    small = MEMORY_CHILD.replace("range(16)", "range(1)").replace("2048", "64")
    save_file({"layers.0.weight": torch.randn(64, 64), "layers.0.bias": torch.zeros(64)}, tmp_path / "s.safetensors")
    tiny, peak_tiny = peak_anonymous([sys.executable, "-c", small, str(tmp_path / "s.safetensors"),
                                      str(tmp_path / "small.nnef.tar")])
    assert tiny.returncode == 0, tiny.stderr[-2000:]
    assert (tmp_path / "big.nnef.tar").stat().st_size > 256 << 20
    assert peak_big - peak_tiny < 64 << 20, (peak_big >> 20, peak_tiny >> 20)


def test_progress_is_reported(monkeypatch, caplog, tmp_path):
    monkeypatch.setattr(serializer, "PROGRESS_AFTER", 0.0)
    monkeypatch.setattr(serializer, "REPORT_EVERY", 0.0)
    with caplog.at_level(logging.INFO, logger="fx2nnef"):
        export_model_to_nnef(torch.nn.Linear(64, 64), torch.ones(1, 64), tmp_path / "m.nnef.tar", TractNNEF(check_io=False))
    assert "wrote 0/2 tensors" in caplog.text and "MiB/s" in caplog.text

    class Terminal:
        text = ""

        def isatty(self):
            return True

        def write(self, text):
            Terminal.text += text

        def flush(self):
            pass
    progress = serializer.Progress(3, 300, Terminal())
    with progress.tensor("a"):
        progress.advance(100)
    progress.done()
    assert Terminal.text.startswith("\rwrote 0/3 tensors") and Terminal.text.endswith("\n")
