"""One test per dtype rule of docs/dtypes.md, on both targets (TractNNEF and KhronosNNEF).

Each export runs the archive (tract, or the nnef_tools interpreter) and compares it with eager
PyTorch; the tests also check what the archive's signature says about each input and output.
"""
from __future__ import annotations

import logging

import pytest
import torch

import fx2nnef
from fx2nnef import KhronosNNEF, TractNNEF, UnsupportedOpError, export_model_to_nnef

khronos_tools = pytest.importorskip("nnef_tools", reason="KhronosNNEF checks need nnef and nnef_tools")


class Affine(torch.nn.Module):
    """A float model: linear, softmax and an elementwise tail."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)

    def forward(self, x):
        return torch.softmax(self.linear(x), -1) * 2.0 + x


def export(model, args, target, tmp_path, name="model.nnef"):
    """Export with the check on and return the report."""
    return export_model_to_nnef(model.eval(), args, tmp_path / name, target)


def io_dtypes(report) -> tuple[list[str], list[str]]:
    """Return the datum types of the archive's inputs and outputs."""
    return [t.dtype for t in report.graph.inputs], [t.dtype for t in report.graph.outputs]


def graph_text(report) -> str:
    return (report.path / "graph.nnef").read_text()


F16 = (1e-2, 1e-2)   # atol, rtol: f16 linear + softmax (docs/dtypes.md, "tolerances")
BF16 = (5e-2, 5e-2)


# -- f32 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", [TractNNEF(), KhronosNNEF()], ids=["tract", "khronos"])
def test_f32_is_kept(target, tmp_path):
    torch.manual_seed(0)
    report = export(Affine(), (torch.randn(2, 8),), target, tmp_path)
    assert io_dtypes(report) == (["f32"], ["f32"])
    assert all(r.ok for r in report.check)


# -- f16 ------------------------------------------------------------------------------------

def test_f16_stays_f16_for_tract(tmp_path):
    torch.manual_seed(0)
    report = export(Affine().half(), (torch.randn(2, 8).half(),), TractNNEF(check_io_tolerance=F16), tmp_path)
    assert io_dtypes(report) == (["f16"], ["f16"])
    assert {t.dtype for op in report.graph.operations for t in op.outputs if t.dtype and t.dtype[0] == "f"} == {"f16"}


def test_f16_sensitive_ops_computed_in_f32_for_tract(tmp_path):
    torch.manual_seed(0)
    target = TractNNEF(check_io_tolerance=F16, f16_sensitive_in_f32=True)
    report = export(Affine().half(), (torch.randn(2, 8).half(),), target, tmp_path)
    assert io_dtypes(report) == (["f16"], ["f16"])
    by_name = {op.outputs[0].name: op for op in report.graph.operations}
    softmax = next(op for op in report.graph.operations if op.name == "softmax")
    matmul = next(op for op in report.graph.operations if op.name == "matmul")
    assert softmax.outputs[0].dtype == "f32" and matmul.outputs[0].dtype == "f32"
    assert "tract_core_cast" in {op.name for op in by_name.values()}


def test_f16_sensitive_pass_casts_in_and_back():
    torch.manual_seed(0)
    model = Affine().eval().half()
    plain = fx2nnef.compile(model, (torch.randn(2, 8).half(),))
    upcast = fx2nnef.compile(model, (torch.randn(2, 8).half(),),
                             passes=fx2nnef.default_passes(target=TractNNEF(f16_sensitive_in_f32=True)))
    nodes = {n.target: n for n in upcast.program.graph.nodes if n.op == "call_function"}
    assert nodes[torch.ops.aten.softmax.int].meta["val"].dtype == torch.float32
    assert nodes[torch.ops.aten.linear.default].meta["val"].dtype == torch.float32
    casts = [n for n in upcast.program.graph.nodes if n.target == torch.ops.aten._to_copy.default]
    assert len(casts) > len([n for n in plain.program.graph.nodes if n.target == torch.ops.aten._to_copy.default])
    x = torch.randn(2, 8).half()
    torch.testing.assert_close(upcast.program.module()(x), plain.program.module()(x), atol=1e-2, rtol=1e-2)


def test_f16_is_scalar_for_khronos(tmp_path):
    torch.manual_seed(0)
    report = export(Affine().half(), (torch.randn(2, 8).half(),), KhronosNNEF(check_io_tolerance=F16), tmp_path)
    assert "external<scalar>" in graph_text(report)
    assert io_dtypes(report) == (["f32"], ["f32"])


# -- bf16 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("choice, dtype", [("f32", "f32"), ("f16", "f16")])
def test_bf16_becomes_the_chosen_dtype_with_a_warning(choice, dtype, tmp_path, caplog):
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING, logger="fx2nnef"):
        report = export(Affine().bfloat16(), (torch.randn(2, 8).bfloat16(),),
                        TractNNEF(bfloat16=choice, check_io_tolerance=BF16), tmp_path)
    assert io_dtypes(report) == ([dtype], [dtype])
    assert "input x is torch.bfloat16" in caplog.text and "output output is torch.bfloat16" in caplog.text


def test_bf16_is_scalar_for_khronos(tmp_path):
    torch.manual_seed(0)
    report = export(Affine().bfloat16(), (torch.randn(2, 8).bfloat16(),), KhronosNNEF(check_io_tolerance=BF16),
                    tmp_path)
    assert "external<scalar>" in graph_text(report)


def test_bf16_f64_choice_is_rejected():
    with pytest.raises(fx2nnef.ExportInputError, match="bfloat16='f64'"):
        TractNNEF(bfloat16="f64")


# -- f64 ------------------------------------------------------------------------------------

def test_f64_computed_as_f32_keeps_f64_signature_for_tract(tmp_path, caplog):
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING, logger="fx2nnef"):
        report = export(Affine().double(), (torch.randn(2, 8).double(),), TractNNEF(), tmp_path)
    assert io_dtypes(report) == (["f64"], ["f64"])
    matmul = next(op for op in report.graph.operations if op.name == "matmul")
    assert matmul.outputs[0].dtype == "f32"
    assert "torch.float64 as torch.float32" in caplog.text


def test_f64_kept_for_tract(tmp_path):
    torch.manual_seed(0)
    report = export(Affine().double(), (torch.randn(2, 8).double(),), TractNNEF(float64="f64"), tmp_path)
    assert io_dtypes(report) == (["f64"], ["f64"])
    assert all(op.outputs[0].dtype == "f64" for op in report.graph.operations if op.name == "matmul")


def test_f64_is_scalar_for_khronos(tmp_path):
    torch.manual_seed(0)
    report = export(Affine().double(), (torch.randn(2, 8).double(),), KhronosNNEF(), tmp_path)
    assert io_dtypes(report) == (["f32"], ["f32"])


# -- integers -------------------------------------------------------------------------------

class IntegerMaths(torch.nn.Module):
    """Integer arithmetic, floor and true division, comparisons and reshapes."""

    def forward(self, x, y):
        return x + y, x * y, x.reshape(-1), torch.maximum(x, y), x > y, x // 3, x // y, x / y


class IntegerMoves(torch.nn.Module):
    """Data movement only (what torch runs for uint16/32/64, and what standard NNEF allows)."""

    def forward(self, x, y):
        return torch.cat([x, y]).t(), x.reshape(-1)


SIGNED_AND_U8 = [torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8]
WIDE_UNSIGNED = [torch.uint16, torch.uint32, torch.uint64]
TRACT_NAMES = {torch.int8: "i8", torch.int16: "i16", torch.int32: "i32", torch.int64: "i64", torch.uint8: "u8",
               torch.uint16: "u16", torch.uint32: "u32", torch.uint64: "u64"}


def _int_inputs(dtype):
    torch.manual_seed(0)
    low = -10 if dtype.is_signed else 0
    return torch.randint(low, 10, (2, 3)).to(dtype), torch.randint(1, 10, (2, 3)).to(dtype)


@pytest.mark.parametrize("dtype", SIGNED_AND_U8, ids=str)
def test_integer_maths_keeps_dtype_for_tract(dtype, tmp_path):
    report = export(IntegerMaths(), _int_inputs(dtype), TractNNEF(), tmp_path)
    name = TRACT_NAMES[dtype]
    assert io_dtypes(report) == ([name, name], [name] * 4 + ["bool", name, name, "f32"])


@pytest.mark.parametrize("dtype", WIDE_UNSIGNED, ids=str)
def test_wide_unsigned_keeps_dtype_for_tract(dtype, tmp_path):
    report = export(IntegerMoves(), _int_inputs(dtype), TractNNEF(), tmp_path)
    assert io_dtypes(report)[0] == [TRACT_NAMES[dtype]] * 2


@pytest.mark.parametrize("dtype", SIGNED_AND_U8 + WIDE_UNSIGNED, ids=str)
def test_integer_moves_are_integer_for_khronos(dtype, tmp_path):
    report = export(IntegerMoves(), _int_inputs(dtype), KhronosNNEF(), tmp_path)
    assert graph_text(report).count("external<integer>") == 2


def test_integer_arithmetic_is_a_clear_error_for_khronos(tmp_path):
    with pytest.raises(UnsupportedOpError, match=r"aten::add\.Tensor .*tensor<integer>.*TractNNEF"):
        export(IntegerMaths(), _int_inputs(torch.int32), KhronosNNEF(), tmp_path)
    assert not (tmp_path / "model.nnef").exists()


# -- bool -----------------------------------------------------------------------------------

class Masks(torch.nn.Module):
    def forward(self, x, mask):
        keep = mask & (x > 0)
        return torch.where(keep, x, 0.0), x.masked_fill(~mask, -1.0), keep | mask, keep.any(-1)


@pytest.mark.parametrize("target", [TractNNEF(), KhronosNNEF()], ids=["tract", "khronos"])
def test_bool_masks(target, tmp_path):
    torch.manual_seed(0)
    report = export(Masks(), (torch.randn(3, 4), torch.rand(3, 4) > 0.5), target, tmp_path)
    assert io_dtypes(report) == (["f32", "bool"], ["f32", "f32", "bool", "bool"])


# -- complex --------------------------------------------------------------------------------

class Complex(torch.nn.Module):
    def forward(self, x):
        return torch.view_as_real(torch.polar(x, x) * 2), torch.polar(x, x)


@pytest.mark.parametrize("target", [TractNNEF(), KhronosNNEF()], ids=["tract", "khronos"])
def test_complex_values_are_real_pairs(target, tmp_path):
    report = export(Complex(), (torch.rand(4),), target, tmp_path)
    assert [tuple(t.shape) for t in report.graph.outputs] == [(4, 2), (4, 2)]
    assert io_dtypes(report)[1] == ["f32", "f32"]


def test_complex_ops_without_a_pair_form_are_a_clear_error(tmp_path):
    class Unsupported(torch.nn.Module):
        def forward(self, x):
            return torch.view_as_real(torch.logcumsumexp(torch.polar(x, x), 0))

    with pytest.raises(UnsupportedOpError, match=r"op\(s\) on complex values .*no real-pair form(.|\n)*"
                                                 r"aten::logcumsumexp"):
        export(Unsupported(), (torch.rand(4),), TractNNEF(), tmp_path)


# -- mixed-dtype graphs -----------------------------------------------------------------------

class Mixed(torch.nn.Module):
    """Integer index maths next to float compute, an int/float comparison and an int true division."""

    def forward(self, x, idx):
        pos = idx * 2 + 1                   # int maths
        scaled = x * pos                    # int promoted to float
        ratio = idx / 4                     # int true division -> float
        near = idx < x.sum(-1, keepdim=True)  # int vs float comparison
        return scaled + ratio, near, torch.cat([x, idx.float()], -1), idx // 2


def test_mixed_dtypes_every_promotion_is_a_cast():
    program = fx2nnef.compile(Mixed().eval(), (torch.randn(2, 3), torch.arange(6).reshape(2, 3))).program
    for node in program.graph.nodes:
        if node.op == "call_function" and node.target in (torch.ops.aten.mul.Tensor, torch.ops.aten.lt.Tensor,
                                                           torch.ops.aten.add.Tensor):
            dtypes = {a.meta["val"].dtype for a in node.args if isinstance(a, torch.fx.Node)}
            assert len(dtypes) == 1, node.format_node()


def test_mixed_dtypes_for_tract(tmp_path):
    torch.manual_seed(0)
    report = export(Mixed(), (torch.randn(2, 3), torch.arange(6).reshape(2, 3)), TractNNEF(), tmp_path)
    assert io_dtypes(report)[1] == ["f32", "bool", "f32", "i64"]


def test_int_float_comparison_for_khronos(tmp_path):
    class Compare(torch.nn.Module):
        def forward(self, x, idx):
            return idx < x, torch.where(idx > 2, x, x * 2)
    torch.manual_seed(0)
    report = export(Compare(), (torch.randn(2, 3) * 4, torch.arange(6).reshape(2, 3)), KhronosNNEF(), tmp_path)
    assert "cast<scalar>" in graph_text(report)


def test_legalize_pass_keeps_no_replaced_dtype_inside():
    program = fx2nnef.compile(Affine().eval().double(), (torch.randn(2, 8).double(),),
                              passes=fx2nnef.default_passes(target=TractNNEF())).program
    inner = [n for n in program.graph.nodes if n.op == "call_function"
             and n.target != torch.ops.aten._to_copy.default]
    assert all(n.meta["val"].dtype == torch.float32 for n in inner)
