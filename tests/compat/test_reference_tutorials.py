"""torch_to_nnef's own tutorial calls (docs/examples of sonos/torch-to-nnef), with only the import
changed. The models are built from config classes with random weights instead of downloaded; each
export call is the tutorial's, word for word."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers

from fx2nnef import TractNNEF, export_model_to_nnef  # was: from torch_to_nnef import ...


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in a temporary directory: the tutorials write to relative paths."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def small_vit():
    """A ViT image classifier (the tutorials use torchvision's vit_b_16) and a 1-image batch."""
    torch.manual_seed(0)
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                    image_size=32, patch_size=8, num_labels=10)
    return transformers.ViTForImageClassification(config).eval(), torch.rand(1, 3, 32, 32)


def small_albert_and_tokens(batch: int = 1):
    """An ALBERT model and tokenizer-like inputs (input_ids, token_type_ids, attention_mask)."""
    torch.manual_seed(0)
    config = transformers.AlbertConfig(vocab_size=300, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, intermediate_size=64)
    ids = torch.randint(5, 300, (batch, 7))
    inputs = {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": torch.ones_like(ids)}
    if batch > 1:
        inputs["attention_mask"][1, 5:] = 0
    return transformers.AlbertModel(config).eval(), inputs


def test_getting_started(in_tmp):
    my_image_model, input_data_sample = small_vit()
    file_path_export = Path("vit_b_16.nnef.tgz")
    export_model_to_nnef(
        model=my_image_model,  # any nn.Module
        args=input_data_sample,  # list of model arguments
        # (here simply an example of tensor image)
        file_path_export=file_path_export,  # filepath to dump NNEF archive
        inference_target=TractNNEF(  # inference engine to target
            version=TractNNEF.latest_version(),  # tract version
            # (to ensure compatible operators)
            check_io=True,  # default False
            # (tract binary will be installed on the machine on fly)
        ),
        input_names=["input"],
        output_names=["output"],
        debug_bundle_path=Path(
            "./debug.tgz"
        ),  # create a debug bundle in case model export work
        # but NNEF fail in tract (either due to load error or precision mismatch)
    )
    assert file_path_export.is_file() and not Path("debug.tgz").exists()


def test_multi_inputs_outputs(in_tmp):
    albert_model, inputs = small_albert_and_tokens()
    file_path_export = Path("albert_v2.nnef.tgz")
    input_names = ["input_ids", "attention_mask", "token_type_ids"]
    report = export_model_to_nnef(
        model=albert_model,
        args=[inputs[k] for k in input_names],
        file_path_export=file_path_export,
        inference_target=TractNNEF(
            version=TractNNEF.latest_version(),
            check_io=True,
        ),
        input_names=input_names,
        output_names=["output"],
        debug_bundle_path=Path("./debug.tgz"),
    )
    assert report.output_names == ["output_last_hidden_state", "output_pooler_output"]


def test_dynamic_axes_batchable(in_tmp):
    my_image_model, input_data_sample = small_vit()
    file_path_export = Path("vit_b_16_batchable.nnef.tgz")
    report = export_model_to_nnef(
        model=my_image_model,  # any nn.Module
        args=input_data_sample,  # list of model arguments
        # (here simply an example of tensor image)
        file_path_export=file_path_export,  # filepath to dump NNEF archive
        inference_target=TractNNEF(  # inference engine to target
            version=TractNNEF.latest_version(),  # tract version
            # (to ensure compatible operators)
            check_io=True,  # default False
            # (tract binary will be installed on the machine on fly)
            dynamic_axes={"input": {0: "B"}},
        ),
        input_names=["input"],
        output_names=["output"],
        debug_bundle_path=Path(
            "./debug.tgz"
        ),  # create a debug bundle in case model export work
        # but NNEF fail in tract (either due to load error or precision mismatch)
    )
    assert len(report.checks) == 3  # the example and two other batch sizes


def test_dynamic_axes_with_custom_extensions(in_tmp):
    albert_model, inputs = small_albert_and_tokens(batch=2)
    file_path_export = Path("albert_v2_dyn.nnef.tgz")
    input_names = ["input_ids", "attention_mask", "token_type_ids"]
    report = export_model_to_nnef(
        model=albert_model,
        args=[inputs[k] for k in input_names],
        file_path_export=file_path_export,
        inference_target=TractNNEF(
            dynamic_axes={
                "input_ids": {0: "B", 1: "S"},
                "attention_mask": {0: "B", 1: "S"},
                "token_type_ids": {0: "B", 1: "S"},
            },
            version=TractNNEF.latest_version(),
            check_io=True,
        ),
        input_names=input_names,
        output_names=["output"],
        debug_bundle_path=Path("./debug.tgz"),
        custom_extensions=[
            "tract_assert S >= 1",
            "tract_assert S <= 32000",
        ],
    )
    assert {"S >= 1", "S <= 32000"} <= set(report.graph.assertions)
