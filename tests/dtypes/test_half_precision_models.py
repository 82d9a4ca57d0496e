"""Whole models in f16 (model.half()) and bf16 export and match eager PyTorch at the tolerance
stated per op family in docs/dtypes.md (tract computes f16 natively; bf16 as f32 or f16).

Eager PyTorch is the reference in its own dtype: a bf16 model is compared with eager bf16, so the
tolerance covers bf16's 8-bit mantissa, not an error of the export.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from fx2nnef import KhronosNNEF, TractNNEF, export_model_to_nnef
from testing_utils import tiny_bert

# (atol, rtol) per op family and dtype: the check passes where |got - expected| <= atol + rtol * |expected|
TOLERANCES = {
    ("elementwise", torch.float16): (1e-3, 1e-3),
    ("matmul", torch.float16): (1e-2, 1e-2),
    ("conv", torch.float16): (1e-2, 1e-2),
    ("softmax", torch.float16): (1e-3, 1e-2),
    ("norm", torch.float16): (1e-2, 1e-2),
    ("attention", torch.float16): (1e-2, 1e-2),
    ("reduction", torch.float16): (1e-2, 1e-2),
    ("transformer", torch.float16): (1e-2, 1e-2),
    ("cnn", torch.float16): (1e-2, 1e-2),
    ("elementwise", torch.bfloat16): (1e-2, 1e-2),
    ("transformer", torch.bfloat16): (1e-1, 5e-2),
    ("cnn", torch.bfloat16): (5e-2, 5e-2),
}


class Family(torch.nn.Module):
    def __init__(self, fn, *modules):
        super().__init__()
        self.fn = fn
        self.parts = torch.nn.ModuleList(modules)

    def forward(self, x):
        return self.fn(self, x)


FAMILIES = {
    "elementwise": (lambda m, x: torch.tanh(x) * torch.sigmoid(x) + torch.exp(-x.abs()) - x * 0.5, (4, 32)),
    "matmul": (lambda m, x: m.parts[0](x) @ x.transpose(-1, -2), (2, 16, 32), lambda: torch.nn.Linear(32, 32)),
    "conv": (lambda m, x: m.parts[0](x), (2, 4, 12, 12), lambda: torch.nn.Conv2d(4, 8, 3, padding=1)),
    "softmax": (lambda m, x: torch.softmax(x * 3, -1), (4, 64)),
    "norm": (lambda m, x: m.parts[0](x) + F.rms_norm(x, (32,)), (8, 32), lambda: torch.nn.LayerNorm(32)),
    "attention": (lambda m, x: F.scaled_dot_product_attention(x, x, x, is_causal=True), (1, 2, 8, 16)),
    "reduction": (lambda m, x: x.sum(-1) + x.mean(0).sum() - x.amax(-1), (16, 64)),
}


def _family(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    fn, shape, *modules = FAMILIES[name]
    return Family(fn, *(make() for make in modules)).eval(), torch.randn(*shape)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_f16_op_family_in_tract(family, tmp_path):
    model, x = _family(family)
    tol = TOLERANCES[(family, torch.float16)]
    report = export_model_to_nnef(model.half(), (x.half(),), tmp_path / "m.nnef", TractNNEF(check_io_tolerance=tol))
    assert report.graph.inputs[0].dtype == "f16" and report.graph.outputs[0].dtype == "f16"


def test_bf16_elementwise_in_tract(tmp_path):
    model, x = _family("elementwise")
    tol = TOLERANCES[("elementwise", torch.bfloat16)]
    export_model_to_nnef(model.bfloat16(), (x.bfloat16(),), tmp_path / "m.nnef", TractNNEF(check_io_tolerance=tol))


# -- whole models -------------------------------------------------------------------------------

class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.GELU(), torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(), torch.nn.Linear(16, 10))

    def forward(self, x):
        return self.features(x)


def cnn():
    torch.manual_seed(0)
    return SmallCNN().eval(), (torch.randn(2, 3, 16, 16),)


def _cast_inputs(args, dtype):
    return tuple(a.to(dtype) if a.is_floating_point() else a for a in args)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("name, make", [("transformer", tiny_bert), ("cnn", cnn)], ids=["bert", "cnn"])
def test_half_model_in_tract(name, make, dtype, tmp_path):
    model, args = make()
    tol = TOLERANCES[(name, dtype)]
    report = export_model_to_nnef(model.to(dtype), _cast_inputs(args, dtype), tmp_path / "m.nnef",
                                  TractNNEF(check_io_tolerance=tol))
    expected = "f16" if dtype == torch.float16 else "f32"   # tract has no bf16: default bfloat16="f32"
    assert {t.dtype for t in report.graph.outputs} == {expected}
    assert all(r.ok for r in report.check)


def test_f16_bert_with_sensitive_ops_in_f32_is_closer(tmp_path):
    model, args = tiny_bert()
    model = model.half()
    plain = export_model_to_nnef(copy.deepcopy(model), args, tmp_path / "a.nnef",
                                 TractNNEF(check_io_tolerance=TOLERANCES[("transformer", torch.float16)]))
    upcast = export_model_to_nnef(model, args, tmp_path / "b.nnef",
                                  TractNNEF(check_io_tolerance=TOLERANCES[("transformer", torch.float16)],
                                            f16_sensitive_in_f32=True))
    assert upcast.check[0].max_abs <= plain.check[0].max_abs


def test_bf16_bert_as_f16_in_tract(tmp_path):
    model, args = tiny_bert()
    report = export_model_to_nnef(model.bfloat16(), args, tmp_path / "m.nnef",
                                  TractNNEF(bfloat16="f16", check_io_tolerance=TOLERANCES[("transformer", torch.bfloat16)]))
    assert {t.dtype for t in report.graph.outputs} == {"f16"}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_half_cnn_in_khronos(dtype, tmp_path):
    pytest.importorskip("nnef_tools")
    model, args = cnn()
    export_model_to_nnef(model.to(dtype), _cast_inputs(args, dtype), tmp_path / "m.nnef",
                         KhronosNNEF(check_io_tolerance=TOLERANCES[("cnn", dtype)]))
