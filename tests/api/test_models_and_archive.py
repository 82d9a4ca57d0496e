"""Small models of each family the foundation covers, and what the archive holds."""
from __future__ import annotations

import tarfile

import pytest
import torch

from fx2nnef import TractNNEF, export_model_to_nnef
from fx2nnef.cli import main


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 8, 3, stride=2, groups=2, dilation=1), torch.nn.ReLU(),
            torch.nn.AvgPool2d(2, ceil_mode=False), torch.nn.AdaptiveAvgPool2d(1))
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x):
        return torch.softmax(self.head(self.features(x).flatten(1)), dim=-1)


class TiedLM(torch.nn.Module):
    """An embedding whose weight is reused by the output projection (tied weights)."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(50, 16)
        self.norm = torch.nn.LayerNorm(16)
        self.lm_head = torch.nn.Linear(16, 50, bias=False)
        self.lm_head.weight = self.embed.weight

    def forward(self, ids):
        return self.lm_head(torch.tanh(self.norm(self.embed(ids))))


def archive_members(path):
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() if m.isfile() else None for m in tar.getmembers()}


def test_mlp(tmp_path, mlp):
    report = export_model_to_nnef(mlp, torch.randn(3, 8), tmp_path / "mlp.nnef.tgz", TractNNEF())
    assert all(r.ok for r in report.check)
    text = archive_members(report.path)["graph.nnef"].decode()
    assert "tract_transformers" not in text and "fragment" not in text.replace("fragment tract_core_properties", "")
    assert "extension tract_registry tract_core;" in text


def test_small_cnn(tmp_path):
    torch.manual_seed(0)
    model = SmallCNN().eval()
    model.features[1].running_mean.uniform_(-1, 1)
    model.features[1].running_var.uniform_(0.5, 2)
    report = export_model_to_nnef(model, torch.randn(2, 3, 16, 16), tmp_path / "cnn.nnef.tar", TractNNEF())
    assert all(r.ok for r in report.check)


def test_batch_norm_without_running_stats_uses_batch_statistics(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4, track_running_stats=False)).eval()
    report = export_model_to_nnef(model, torch.randn(2, 3, 8, 8), tmp_path / "bn.nnef.tar", TractNNEF())
    assert all(r.ok for r in report.check)


def test_bert_encoder(tmp_path):
    from transformers import BertConfig, BertModel
    torch.manual_seed(0)
    model = BertModel(BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=128, vocab_size=500)).eval()
    ids = torch.randint(5, 500, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    report = export_model_to_nnef(model, {"input_ids": ids, "attention_mask": mask}, tmp_path / "bert",
                                  TractNNEF(), output_names=["output"])
    assert report.output_names == ["output_last_hidden_state", "output_pooler_output"]
    assert all(r.ok for r in report.check)


def test_tied_weights_written_once_with_module_path_labels(tmp_path):
    torch.manual_seed(0)
    report = export_model_to_nnef(TiedLM().eval(), torch.randint(0, 50, (2, 5)), tmp_path / "lm.nnef.tgz",
                                  TractNNEF())
    assert all(r.ok for r in report.check)
    dats = sorted(n for n in archive_members(report.path) if n.endswith(".dat"))
    assert len(dats) == 3 and dats[1:] == ["norm.bias.dat", "norm.weight.dat"]
    assert dats[0] in ("embed.weight.dat", "lm_head.weight.dat")


@pytest.mark.parametrize("suffix", ["", ".tar", ".tgz", ".tar.gz"])
def test_container_by_suffix(tmp_path, mlp, suffix):
    path = tmp_path / f"mlp{suffix}"
    export_model_to_nnef(mlp, torch.randn(3, 8), path, TractNNEF())
    assert path.is_dir() == (suffix == "")
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_cli_demo(tmp_path, capsys):
    out = tmp_path / "albert.nnef.tgz"
    assert main(["--quiet", "demo", "--layers", "1", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "signature: graph network(input_ids, attention_mask, token_type_ids) -> " \
           "(output_last_hidden_state, output_pooler_output)" in printed
    assert "tract check at example: passed" in printed and str(out) in printed
    assert out.exists()
