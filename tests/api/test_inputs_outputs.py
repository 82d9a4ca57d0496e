"""Input binding and output naming rules, and the errors for bad input (issue points 3 and 4)."""
from __future__ import annotations

import pytest
import torch

from fx2nnef import ExportInputError, TractNNEF, export_model_to_nnef
from fx2nnef.compiler.frontend import TraceConstantWarning


class Nested(torch.nn.Module):
    """Takes a tensor, a dict of tensors, a list and a Python scale; returns a nested structure."""

    def forward(self, x, extra, pair, scale=2.0, flag=None):
        a, b = pair
        return {"sum": x * scale + extra["u"], "parts": (a - b, extra["v"] + 1)}


def nested_args():
    return [torch.randn(2, 3), {"u": torch.randn(2, 3), "v": torch.randn(4)}, [torch.ones(2), torch.zeros(2)]]


def test_nested_inputs_and_outputs(tmp_path):
    report = export_model_to_nnef(Nested(), nested_args(), tmp_path / "n", TractNNEF())
    assert report.input_names == ["x", "extra_u", "extra_v", "pair_0", "pair_1"]
    assert report.output_names == ["sum", "parts_0", "parts_1"]
    assert all(r.ok for r in report.check)


def test_one_root_name_prefixes_key_paths(tmp_path):
    report = export_model_to_nnef(Nested(), nested_args(), tmp_path / "n", TractNNEF(), output_names=["out"])
    assert report.output_names == ["out_sum", "out_parts_0", "out_parts_1"]


def test_one_name_per_output_used_as_is(tmp_path):
    report = export_model_to_nnef(Nested(), nested_args(), tmp_path / "n", TractNNEF(check_io=False),
                                  output_names=["a", "b", "c"])
    assert report.output_names == ["a", "b", "c"]


def test_literal_like_output_keys_get_the_output_prefix(tmp_path):
    class Scores(torch.nn.Module):
        def forward(self, x):
            return {"true_logits": x + 1, "inf_mask": x}

    report = export_model_to_nnef(Scores(), torch.randn(3), tmp_path / "s", TractNNEF())
    assert report.output_names == ["output_true_logits", "output_inf_mask"] and all(r.ok for r in report.check)


def test_tuple_outputs_without_names(tmp_path):
    class Two(torch.nn.Module):
        def forward(self, x):
            return x + 1, x * 2

    report = export_model_to_nnef(Two(), torch.randn(3), tmp_path / "t", TractNNEF())
    assert report.output_names == ["output_0", "output_1"]


def test_python_scalar_is_a_constant_with_a_warning(tmp_path):
    args = nested_args() + [3.0]
    with pytest.warns(TraceConstantWarning, match="'scale' = 3.0"):
        report = export_model_to_nnef(Nested(), args, tmp_path / "n", TractNNEF())
    assert "scale" not in report.input_names
    assert all(r.ok for r in report.check)


def test_identity_output_is_copied(tmp_path):
    class Echo(torch.nn.Module):
        def forward(self, x, y):
            return x, y * 2, x

    report = export_model_to_nnef(Echo(), [torch.randn(2), torch.randn(2)], tmp_path / "e", TractNNEF())
    assert report.output_names == ["output_0", "output_1", "output_2"]
    assert all(r.ok for r in report.check)


@pytest.mark.parametrize("args, message", [
    (lambda a: {"x": a[0], "extra": a[1], "pair": a[2]}.values(), "dict_values.*pass list"),
    (lambda a: (t for t in a), "generator.*list or tuple"),
    (lambda a: {"x": a[0], "extra": a[1], "pair": a[2], "nope": a[0]}, "no parameter 'nope'.*takes x, extra, pair"),
    (lambda a: a[:1], "do not fit"),
    (lambda a: [a[0], object(), a[2]], "input 'extra' has type object"),
])
def test_bad_inputs(tmp_path, args, message):
    with pytest.raises(ExportInputError, match=message):
        export_model_to_nnef(Nested(), args(nested_args()), tmp_path / "n.nnef.tgz", TractNNEF())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"output_names": ["a", "b"]}, "output_names has 2 names but the model returns 3"),
    ({"output_names": ["a", "a", "b"]}, "duplicate output names: a"),
    ({"output_names": ["a", "b", "not-valid"]}, "not a valid NNEF identifier"),
    ({"output_names": ["x", "b", "c"]}, "both an input and an output: x"),
    ({"input_names": ["a", "b"]}, "input_names has 2 names but the model takes 5"),
    ({"input_names": ["a", "b", "c", "d", "1e"]}, "not a valid NNEF identifier"),
    ({"input_names": ["a", "b", "c", "d", "info"]}, "starts like a literal"),
    ({"output_names": ["a", "b", "true_c"]}, "starts like a literal"),
])
def test_bad_names(tmp_path, kwargs, message):
    with pytest.raises(ExportInputError, match=message):
        export_model_to_nnef(Nested(), nested_args(), tmp_path / "n.nnef.tgz", TractNNEF(), **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_bad_call_arguments(tmp_path):
    with pytest.raises(ExportInputError, match="must be a torch.nn.Module"):
        export_model_to_nnef(lambda x: x, torch.randn(2), tmp_path / "m", TractNNEF())
    with pytest.raises(ExportInputError, match="inference_target must be a TractNNEF"):
        export_model_to_nnef(Nested(), nested_args(), tmp_path / "m", "tract")
    with pytest.raises(ExportInputError, match="does not exist"):
        export_model_to_nnef(Nested(), nested_args(), tmp_path / "missing" / "m.tgz", TractNNEF())
    with pytest.raises(ExportInputError, match="bfloat16"):
        TractNNEF(bfloat16="f64")


def test_decoder_whose_config_says_use_cache_exports_without_its_cache(tmp_path, caplog):
    from transformers import LlamaConfig, LlamaModel
    torch.manual_seed(0)
    model = LlamaModel(LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=4, num_key_value_heads=2)).eval()
    assert model.config.use_cache
    ids = torch.randint(0, 100, (1, 5))
    with caplog.at_level("INFO", logger="fx2nnef"):
        report = export_model_to_nnef(model, {"input_ids": ids}, tmp_path / "m", TractNNEF(), output_names=["out"])
    assert "use_cache=False" in caplog.text
    assert report.output_names == ["out"] and all(r.ok for r in report.check)  # the cache is no output
