"""ALBERT with dynamic batch and sequence: exported once, then run by tract itself at unseen sizes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import tract

from fx2nnef import TractNNEF, export_model_to_nnef
from fx2nnef.backends.nnef.serializer import format_document

transformers = pytest.importorskip("transformers")

NAMES = ["input_ids", "attention_mask", "token_type_ids"]


def _albert(**overrides) -> torch.nn.Module:
    """Return an ALBERT with random weights (a small one unless overridden)."""
    torch.manual_seed(0)
    config = dict(vocab_size=120, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=37, max_position_embeddings=64)
    config.update(overrides)
    return transformers.AlbertModel(transformers.AlbertConfig(**config)).eval()


def _inputs(batch: int, seq: int, vocab: int, seed: int) -> dict[str, torch.Tensor]:
    """Return token ids, a mask with padding on the last row, and two token types."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[-1, seq // 2 + 1:] = 0
    types = torch.zeros(batch, seq, dtype=torch.long)
    types[:, seq // 2:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _export(model, path, example) -> object:
    axes = {name: {0: "B", 1: "S"} for name in NAMES}
    return export_model_to_nnef(model, example, path, TractNNEF(dynamic_axes=axes),
                                input_names=NAMES, output_names=["last_hidden_state", "pooler_output"])


def _assert_matches(model, path, sizes, vocab, atol):
    """Load the archive with tract directly (no fx2nnef), run it at each size, compare with PyTorch."""
    runnable = tract.nnef().with_tract_transformers().load(str(path)).into_runnable()
    for seed, (batch, seq) in enumerate(sizes):
        inputs = _inputs(batch, seq, vocab, seed)
        with torch.no_grad():
            out = model(**inputs)
        got = [t.to_numpy() for t in runnable.run([inputs[n].numpy() for n in NAMES])]
        for name, expected, actual in zip(["last_hidden_state", "pooler_output"],
                                          [out.last_hidden_state, out.pooler_output], got):
            assert actual.shape == tuple(expected.shape), (batch, seq, name)
            np.testing.assert_allclose(actual, expected.numpy(), atol=atol, rtol=1e-4,
                                       err_msg=f"{name} at B={batch}, S={seq}")


def test_albert_dynamic_batch_and_sequence(tmp_path):
    model = _albert()
    path = tmp_path / "albert.nnef.tgz"
    report = _export(model, path, _inputs(2, 7, 120, seed=100))
    assert report.graph.symbols == ["B", "S"]
    text = format_document(report.graph)
    assert "extension tract_symbol B;" in text and "extension tract_symbol S;" in text
    assert "extension tract_assert S <= 64;" in text  # the position table bounds S
    assert len(report.checks) == 3 and all(r.ok for rs in report.checks.values() for r in rs)
    _assert_matches(model, path, [(3, 19), (1, 1), (4, 33), (1, 64)], 120, atol=1e-4)


@pytest.mark.slow
def test_albert_base_dynamic_full_size(tmp_path):
    model = _albert(vocab_size=30000, embedding_size=128, hidden_size=768, num_hidden_layers=12,
                    num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512)
    path = tmp_path / "albert_base.nnef.tgz"
    _export(model, path, _inputs(2, 7, 30000, seed=100))
    _assert_matches(model, path, [(3, 19), (1, 128)], 30000, atol=1e-3)
