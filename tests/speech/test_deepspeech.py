"""The reference's dynamic-axes tutorial model (conv front-end + DeepSpeech with a bidirectional RNN)
with symbolic batch and time, checked at the example and two unseen sizes."""
from __future__ import annotations

import pytest

from fx2nnef import TractNNEF, export_model_to_nnef
from fx2nnef.examples import deepspeech


@pytest.mark.parametrize("sizes", [
    pytest.param(dict(batch=3, frames=40, n_mels=16, channels=16, n_hidden=32), id="small"),
    pytest.param(dict(), id="tutorial", marks=pytest.mark.slow),    # melbank [7, 100, 64], hidden 256
])
def test_deepspeech_with_dynamic_batch_and_time(sizes, tmp_path):
    model, melbank = deepspeech(**sizes)
    report = export_model_to_nnef(model, melbank, tmp_path / "deepspeech.nnef.tgz",
                                  TractNNEF(dynamic_axes={"melbank": {0: "B", 1: "S"}}),
                                  input_names=["melbank"], output_names=["output"])
    assert len(report.checks) == 3 and all(r.ok for check in report.checks.values() for r in check)
    assert [label.split(", ")[0] for label in report.checks][0] == f"B={melbank.shape[0]}"
    assert sum(op.name == "tract_core_scan" for op in report.graph.operations) == 2   # the RNN's two directions
