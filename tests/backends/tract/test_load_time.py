"""Guard: tract's load time of an exported model grows linearly with its depth, even when every layer
shares one set of weights (ALBERT), which made it quadratic (benchmarks/README.md, "Load time")."""
from __future__ import annotations

import time

import torch
from transformers import AlbertConfig, AlbertModel

from fx2nnef import TractNNEF, export_model_to_nnef
from fx2nnef.backends.tract.runner import load, prepare


def _load_seconds(layers: int, directory) -> float:
    """Export a small ALBERT of `layers` layers and return the best of five tract load + optimize times."""
    torch.manual_seed(0)
    config = AlbertConfig(hidden_size=512, num_attention_heads=8, intermediate_size=1024, embedding_size=64,
                          vocab_size=1000, num_hidden_layers=layers)
    path = directory / f"albert-{layers}.nnef.tgz"
    report = export_model_to_nnef(AlbertModel(config).eval(), torch.randint(0, 1000, (1, 8)), path,
                                  TractNNEF(version=TractNNEF.latest_version(), check_io=False))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        prepare(load(path, report.graph.registries), path)
        times.append(time.perf_counter() - start)
    return min(times)


def test_load_time_is_linear_in_depth_with_shared_weights(tmp_path):
    eight, sixteen = _load_seconds(8, tmp_path), _load_seconds(16, tmp_path)
    assert sixteen < 2.5 * eight, f"8 layers load in {eight:.3f} s, 16 in {sixteen:.3f} s ({sixteen / eight:.2f}x)"
