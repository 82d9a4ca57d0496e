"""The KhronosNNEF target: only standard NNEF is emitted, the Khronos parser accepts it, the
nnef_tools interpreter (PyTorch backend) reproduces eager PyTorch, and ops standard NNEF cannot
express fail at export with an error that names the op and suggests TractNNEF."""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from fx2nnef import ExportInputError, KhronosCheckError, KhronosNNEF, TractNNEF, UnsupportedOpError, export_model_to_nnef
from fx2nnef.backends.nnef.graph import Graph, Operation, Tensor
from fx2nnef.backends.nnef.lower import Builder
from fx2nnef.backends.nnef.serializer import save
from fx2nnef.backends.nnef.standard import STANDARD_OPS
from testing_utils import tiny_bert

nnef = pytest.importorskip("nnef", reason="the Khronos target needs the nnef parser")
pytest.importorskip("nnef_tools", reason="the Khronos target needs nnef_tools")
from fx2nnef.backends import khronos  # noqa: E402


class Block(torch.nn.Module):
    """A transformer-ish block: embedding, linear, layer norm, attention with a bool mask, gelu,
    log_softmax, silu and an expand."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 8)
        self.linear = torch.nn.Linear(8, 8)
        self.norm = torch.nn.LayerNorm(8)

    def forward(self, x, ids, mask):
        h = self.norm(self.linear(x + self.embed(ids)))
        a = F.scaled_dot_product_attention(h, h, h, attn_mask=mask)
        c = F.scaled_dot_product_attention(h, h, h, is_causal=True)
        return F.gelu(a), F.gelu(c, approximate="tanh"), torch.log_softmax(a, -1), F.silu(a).expand(3, 2, 4, 8)


def block_inputs():
    torch.manual_seed(0)
    mask = torch.rand(2, 4, 4) > 0.3
    mask[..., 0] = True
    return torch.randn(2, 4, 8), torch.randint(0, 10, (2, 4)), mask


def emitted_ops(text: str) -> set[str]:
    """Return the operation names invoked in the graph body of a graph.nnef text."""
    body = text[text.index("graph network"):]
    return set(re.findall(r"= ([a-z_][a-z0-9_]*)(?:<\w+>)?\(", body))


def test_block_is_standard_nnef_and_matches_pytorch(tmp_path):
    report = export_model_to_nnef(Block().eval(), block_inputs(), tmp_path / "block.nnef", KhronosNNEF())
    text = (report.path / "graph.nnef").read_text()
    assert "tract" not in text
    assert emitted_ops(text) <= STANDARD_OPS | {"erf"}
    assert "extension KHR_enable_fragment_definitions;" in text and "fragment erf" in text
    assert [r.ok for r in report.check] == [True] * 4
    graph = khronos.parse(report.path, ["erf"])
    assert list(graph.inputs) == ["x", "ids", "mask"]


def test_tar_archive_is_checked(tmp_path):
    report = export_model_to_nnef(Block().eval(), block_inputs(), tmp_path / "block.nnef.tgz", KhronosNNEF())
    assert report.path.is_file() and report.check


def test_parse_only_without_check_io(tmp_path):
    report = export_model_to_nnef(Block().eval(), block_inputs(), tmp_path / "block.nnef",
                                  KhronosNNEF(check_io=False))
    assert report.check is None and (report.path / "graph.nnef").exists()


class CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))

    def forward(self, x):
        return self.features(x)


def test_cnn(tmp_path):
    torch.manual_seed(0)
    report = export_model_to_nnef(CNN().eval(), (torch.randn(2, 3, 12, 12),), tmp_path / "cnn.nnef", KhronosNNEF())
    assert report.check[0].ok


NON_STANDARD = {
    "gather": (lambda x, i: torch.gather(x, 1, i), "aten::gather"),
    "prod": (lambda x, i: torch.prod(x, -1), "aten::prod.dim_int"),
    "integer-mul": (lambda x, i: i * 3, "aten::mul.Tensor"),
}


class Apply(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, i):
        return self.fn(x, i)


@pytest.mark.parametrize("case", list(NON_STANDARD))
def test_non_standard_ops_fail_at_export_naming_the_op(case, tmp_path):
    fn, op = NON_STANDARD[case]
    args = (torch.randn(3, 4), torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(UnsupportedOpError, match="TractNNEF") as info:
        export_model_to_nnef(Apply(fn), args, tmp_path / "m.nnef", KhronosNNEF())
    assert f"{op} cannot be exported to standard Khronos NNEF" in str(info.value)
    assert not (tmp_path / "m.nnef").exists()
    # the suggestion holds: tract exports the same model
    report = export_model_to_nnef(Apply(fn), args, tmp_path / "m.nnef", TractNNEF())
    assert all(r.ok for r in report.check)


def test_builder_refuses_tract_ops_on_khronos():
    b = Builder(Graph(), dialect="khronos")
    x = Tensor("x", "f32", (2,))
    with pytest.raises(UnsupportedOpError, match="tract_core"):
        b.require("tract_core")
    with pytest.raises(UnsupportedOpError, match="tract_core_erf"):
        b.op("tract_core_erf", x)
    with pytest.raises(UnsupportedOpError, match="tensor<integer>"):
        b.op("add", Tensor("i", "i64", (2,)), 1.0)
    assert b.cast(Tensor("i", "i32", (2,)), "i64").name == "i"     # one `integer` type: no cast


def test_interpreter_mismatch_is_a_khronos_check_error(tmp_path):
    graph = Graph(inputs=[Tensor("x", "f32", (2,))])
    y = Tensor("y", "f32", (2,))
    graph.operations = [Operation("external", (), {"shape": [2]}, (graph.inputs[0],), "scalar"),
                        Operation("neg", (graph.inputs[0],), {}, (y,))]
    graph.outputs = [y]
    save(graph, tmp_path / "g.nnef")
    x = torch.ones(2).numpy()
    with pytest.raises(KhronosCheckError, match="differ from PyTorch"):
        khronos.check(tmp_path / "g.nnef", ["y"], [x], [x], [x.dtype], "approx")


def test_parser_rejection_is_a_khronos_check_error(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "graph.nnef").write_text("version 1.0;\ngraph g(x) -> (y) { x = external(shape = [2]); "
                                                 "y = tract_core_erf(x); }\n")
    with pytest.raises(KhronosCheckError, match="Khronos nnef parser rejects"):
        khronos.parse(tmp_path / "bad")


def test_unknown_version_is_rejected():
    with pytest.raises(ExportInputError, match="1.0.5"):
        KhronosNNEF(version="2.0")


def test_bert_with_attention_mask(tmp_path):
    """HF BERT's mask building indexes with constant index tensors: one standard gather."""
    model, args = tiny_bert()
    report = export_model_to_nnef(model, args, tmp_path / "bert.nnef", KhronosNNEF())
    text = (report.path / "graph.nnef").read_text()
    assert "tract" not in text and emitted_ops(text) <= STANDARD_OPS | {"erf"}
    assert all(r.ok for r in report.check)
