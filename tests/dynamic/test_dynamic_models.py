"""Dynamic axes end to end: a CNN with dynamic batch/height/width and a causal decoder with dynamic length."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import tract

from fx2nnef import TractNNEF, export_model_to_nnef
from fx2nnef.backends.tract import runner
from fx2nnef.backends.tract.runner import load

transformers = pytest.importorskip("transformers")


class SmallCNN(torch.nn.Module):
    """Conv + batch norm + strided conv + pooling + global mean + linear head."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.c2 = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.pool = torch.nn.MaxPool2d(2)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, image):
        y = torch.relu(self.bn(self.c1(image)))
        y = self.pool(torch.relu(self.c2(y)))
        return self.head(y.mean(dim=(2, 3))), y


def test_cnn_dynamic_height_width(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = SmallCNN().eval()
    path = tmp_path / "cnn.nnef.tgz"
    loads = []  # the check loads the archive once and runs it at every size
    monkeypatch.setattr(runner, "load", lambda *args: loads.append(args) or load(*args))
    report = export_model_to_nnef(model, torch.randn(2, 3, 16, 20), path,
                                  TractNNEF(dynamic_axes={"image": {0: "B", 2: "H", 3: "W"}}))
    assert report.graph.symbols == ["B", "H", "W"]
    assert len(report.checks) == 3
    assert len(loads) == 1
    runnable = tract.nnef().load(str(path)).into_runnable()
    for shape in [(1, 3, 9, 31), (3, 3, 64, 48)]:
        x = torch.randn(shape)
        with torch.no_grad():
            expected = model(x)
        got = [t.to_numpy() for t in runnable.run([x.numpy()])]
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g, e.numpy(), atol=1e-4, rtol=1e-4, err_msg=str(shape))


class LastHidden(torch.nn.Module):
    """A decoder called on token ids only (no cache), returning its last hidden state."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return self.model(input_ids=input_ids, use_cache=False).last_hidden_state


def test_llama_dynamic_sequence(tmp_path):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    model = LastHidden(transformers.LlamaModel(config)).eval()
    path = tmp_path / "llama.nnef.tgz"
    report = export_model_to_nnef(model, torch.randint(0, 100, (1, 7)), path,
                                  TractNNEF(dynamic_axes={"input_ids": {1: "S"}}))
    assert list(report.checks) == ["S=7", "S=1", "S=15"]
    runnable = tract.nnef().with_tract_transformers().load(str(path)).into_runnable()
    for length in (3, 29):
        ids = torch.randint(0, 100, (1, length))
        with torch.no_grad():
            expected = model(ids)
        got = runnable.run([ids.numpy()])[0].to_numpy()
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-4, rtol=1e-4, err_msg=f"S={length}")
