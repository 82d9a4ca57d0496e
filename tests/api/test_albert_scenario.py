"""The issue's scenario: multi-input, ModelOutput-returning ALBERT exported and checked in tract."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import tract

from fx2nnef import ExportInputError, TractNNEF, export_model_to_nnef
from fx2nnef.examples import albert

NAMES = ["input_ids", "attention_mask", "token_type_ids"]
SIGNATURE = ("graph network(input_ids, attention_mask, token_type_ids) -> "
             "(output_last_hidden_state, output_pooler_output)")


def run_in_tract(path, arrays):
    """Run an archive with the tract package directly (outside fx2nnef)."""
    model = tract.nnef().with_tract_transformers().load(str(path)).into_runnable()
    return [t.to_numpy() for t in model.run([np.asarray(a) for a in arrays])]


def test_scenario_albert_base(tmp_path):
    """The issue's code, verbatim in spirit: albert-base shape, positional args, one root output name."""
    model, inputs = albert()
    path = tmp_path / "albert_v2.nnef.tgz"
    report = export_model_to_nnef(
        model=model, args=[inputs[k] for k in NAMES], file_path_export=path,
        inference_target=TractNNEF(version=TractNNEF.latest_version(), check_io=True),
        input_names=NAMES, output_names=["output"], debug_bundle_path=tmp_path / "debug.tgz")
    assert report.signature == SIGNATURE
    assert all(r.ok for r in report.check)
    assert not (tmp_path / "debug.tgz").exists()
    got = run_in_tract(path, [inputs[k].numpy() for k in NAMES])
    with torch.no_grad():
        out = model(**inputs)
    np.testing.assert_allclose(got[0], out.last_hidden_state.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(got[1], out.pooler_output.numpy(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("order", [["token_type_ids", "attention_mask", "input_ids"], NAMES])
def test_mapping_args_bind_by_name(tmp_path, small_albert, order):
    """args=inputs as a dict in any key order binds by name: forward()'s order, same result."""
    model, inputs = small_albert
    report = export_model_to_nnef(model, {k: inputs[k] for k in order}, tmp_path / "m.nnef.tar",
                                  TractNNEF(check_io=True), output_names=["output"])
    assert report.signature == SIGNATURE
    assert all(r.ok for r in report.check)


def test_batch_encoding_args(tmp_path, small_albert):
    """A tokenizer's BatchEncoding (a Mapping, not a dict) is bound by name too."""
    from transformers import BatchEncoding
    model, inputs = small_albert
    report = export_model_to_nnef(model, BatchEncoding(dict(inputs)), tmp_path / "m", TractNNEF())
    assert report.input_names == NAMES
    assert report.output_names == ["last_hidden_state", "pooler_output"]


def test_values_in_dict_order_is_caught(tmp_path, small_albert):
    """The classic pitfall: list(inputs.values()) in tokenizer order with its keys as names."""
    model, inputs = small_albert
    path = tmp_path / "m.nnef.tgz"
    with pytest.raises(ExportInputError, match="wrong order"):
        export_model_to_nnef(model, list(inputs.values()), path, TractNNEF(), input_names=list(inputs))
    assert not path.exists()


def test_wrapped_model_returning_last_hidden_state(tmp_path, small_albert):
    """A wrapper returning one tensor, with one output name: that name is used as is."""
    model, inputs = small_albert

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.albert = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.albert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state

    report = export_model_to_nnef(Wrapped(), [inputs[k] for k in NAMES], tmp_path / "w.nnef.tgz",
                                  TractNNEF(), input_names=NAMES, output_names=["output"])
    assert report.output_names == ["output"]
    assert all(r.ok for r in report.check)


def test_padded_batch_matches(tmp_path, small_albert):
    """A batch of 2 where the second sequence is padded (mask zeros) matches PyTorch."""
    model, _ = small_albert
    ids = torch.tensor([[2, 10, 15, 31, 37, 17, 3], [2, 44, 3, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    args = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    report = export_model_to_nnef(model, args, tmp_path / "p.nnef.tgz", TractNNEF(), output_names=["output"])
    assert [r.name for r in report.check] == ["output_last_hidden_state", "output_pooler_output"]
    assert all(r.ok for r in report.check)
