"""Q4_0 weights: the packer, the archive's bytes (decoded here, independently), the pass's choices
and tract against the model carrying the decoded weights."""
from __future__ import annotations

import logging
import struct
import tarfile

import numpy as np
import pytest
import torch

from fx2nnef import TractNNEF, export_model_to_nnef
from fx2nnef.backends.nnef.q4_0 import pack_q4_0, q4_0_unpackable
from fx2nnef.errors import ExportInputError
from fx2nnef.passes import QuantizeWeightsPass
from testing_utils import captured, tiny_bert

Q4 = dict(weight_quant="q4_0", check_io_tolerance=(1e-5, 1e-5))   # tract vs the decoded-weights model
ALL = ("linear", "embedding", "conv")


def read_dat(raw: bytes) -> tuple[dict, bytes]:
    """Parse an NNEF tensor file: its header fields and its payload."""
    assert raw[:4] == b"\x4e\xef\x01\x00"
    size, rank = struct.unpack_from("<II", raw, 4)
    dims = struct.unpack_from(f"<{rank}I", raw, 12)
    bits, item_type, vendor = struct.unpack_from("<IHH", raw, 44)
    assert raw[52:128] == bytes(76)
    return dict(size=size, dims=dims, bits=bits, item_type=item_type, vendor=vendor), raw[128:]


def decode_q4_0_payload(payload: bytes, dims: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Decode Q4_0 blocks byte by byte as GGML lays them out: (weights, one scale per block)."""
    blocks = np.frombuffer(payload, np.uint8).reshape(-1, 18)
    scales = blocks[:, :2].copy().view("<f2")[:, 0].astype(np.float32)
    values = np.empty((len(blocks), 32), np.float32)
    for i in range(16):
        values[:, i] = ((blocks[:, 2 + i] & 0x0F).astype(np.float32) - 8) * scales
        values[:, i + 16] = ((blocks[:, 2 + i] >> 4).astype(np.float32) - 8) * scales
    return values.reshape(dims), scales


def archive_files(path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def export(model, args, tmp_path, name="model", **target):
    path = tmp_path / f"{name}.nnef.tgz"
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = export_model_to_nnef(model, args, path, TractNNEF(**{**Q4, **target}))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the user's model changed"
    return report, archive_files(path)


def quantized_labels(files: dict[str, bytes]) -> set[str]:
    return {name[:-4] for name, raw in files.items() if name.endswith(".dat") and read_dat(raw)[0]["item_type"] == 0x3040}


# ------------------------------------------------------------------------------------------ packer

def test_packer_layout_round_trips_and_keeps_each_block_extreme():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 64)).astype(np.float32)
    w[0, :32] = np.linspace(-1, 1, 32)          # a block whose extreme is +1 (signed max)
    w[1, :32] = 0.0                              # an all-zero block
    packed = pack_q4_0(w)
    assert packed.blocks.shape == (12, 18) and packed.blocks.dtype == np.uint8
    decoded, scales = decode_q4_0_payload(packed.blocks.tobytes(), w.shape)
    np.testing.assert_array_equal(decoded, packed.decode())
    np.testing.assert_array_equal(np.asarray(packed), decoded)
    step = np.repeat(np.abs(scales), 32).reshape(w.shape)
    assert (np.abs(decoded - w) <= step * 1.0001).all()        # half a step, a full one where clamped
    blocks = w.reshape(-1, 32)
    extreme = np.abs(blocks).argmax(axis=1)
    np.testing.assert_allclose(decoded.reshape(-1, 32)[np.arange(12), extreme], blocks[np.arange(12), extreme],
                               rtol=1e-3)                      # exact up to the f16 scale
    assert (decoded[1, :32] == 0).all()


def test_packer_refuses_what_q4_0_cannot_hold():
    assert q4_0_unpackable((16, 27)) == "its rows hold 27 values, not a multiple of 32"
    assert q4_0_unpackable((64,)).startswith("rank 1")
    assert q4_0_unpackable((8, 3, 3, 3)) is not None and q4_0_unpackable((8, 32, 3, 3)) is None
    with pytest.raises(ValueError, match="multiple of 32"):
        pack_q4_0(np.zeros((4, 48), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        pack_q4_0(np.full((1, 32), np.nan, np.float32))
    with pytest.raises(ValueError, match="calibration"):
        pack_q4_0(np.zeros((1, 32), np.float32), "awq")


def test_mse_calibration_lowers_the_error_of_every_block_family():
    rng = np.random.default_rng(1)
    for w in (rng.standard_normal((64, 256)), rng.laplace(size=(32, 128)), rng.uniform(-1, 1, (16, 64))):
        w = w.astype(np.float32)
        errors = {c: np.square(pack_q4_0(w, c).decode() - w).reshape(-1, 32).sum(axis=1) for c in ("min_max", "mse")}
        assert (errors["mse"] <= errors["min_max"] * (1 + 1e-6)).all()
        assert errors["mse"].sum() < 0.95 * errors["min_max"].sum()


# ------------------------------------------------------------------------------------------ targets

def test_target_validates_the_quantization_options():
    with pytest.raises(ExportInputError, match="weight_quant="):
        TractNNEF(weight_quant="int4")
    with pytest.raises(ExportInputError, match="weight_quant_layers"):
        TractNNEF(weight_quant="q4_0", weight_quant_layers=("attention",))
    with pytest.raises(ExportInputError, match="weight_quant_calibration"):
        TractNNEF(weight_quant="q4_0", weight_quant_calibration="gptq")
    assert TractNNEF(weight_quant="q4_0", weight_quant_layers="conv").weight_quant_layers == ("conv",)
    assert TractNNEF().weight_quant_rules() is None


# ------------------------------------------------------------------------------------------ models

class LinearStack(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(64, 64) for _ in range(3))
        self.extra = torch.nn.Parameter(torch.randn(32, 64) * 0.1)
        self.odd = torch.nn.Linear(64, 40)           # 64 values per row: quantized, 40 rows is fine
        self.narrow = torch.nn.Linear(40, 8)          # rows of 40 values: stays float

    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.narrow(self.odd(x)), x @ self.extra.t()


def test_linear_stack_archive_bytes_decode_to_the_reference_weights(tmp_path, caplog):
    torch.manual_seed(0)
    model = LinearStack().eval()
    with caplog.at_level(logging.INFO, logger="fx2nnef"):
        report, files = export(model, torch.randn(2, 5, 64), tmp_path)
    assert quantized_labels(files) == {"layers.0.weight", "layers.1.weight", "layers.2.weight", "extra", "odd.weight"}
    assert "narrow.weight [8, 40] stays float: its rows hold 40 values, not a multiple of 32" in caplog.text
    assert "weight error" in caplog.text
    header, payload = read_dat(files["layers.1.weight.dat"])
    assert header == dict(size=64 * 64 // 32 * 18, dims=(64, 64), bits=0xFFFFFFFF, item_type=0x3040, vendor=0x5452)
    decoded, _ = decode_q4_0_payload(payload, header["dims"])
    w = model.layers[1].weight.detach().numpy()
    assert 0 < np.abs(decoded - w).max() <= np.abs(w).max() / 8   # at most one step, a scale is |block max| / 8
    assert all(r.ok for r in report.check) and report.float_checks["example"][0].max_abs > 0
    # a single row (a decoding step) runs too
    export(model, torch.randn(1, 1, 64), tmp_path, "one_row")


def test_embedding_and_tied_output_projection_are_quantized_once(tmp_path, caplog):
    torch.manual_seed(0)

    class TiedLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(100, 32)
            self.lm_head = torch.nn.Linear(32, 100, bias=False)
            self.lm_head.weight = self.embed.weight

        def forward(self, ids):
            return self.lm_head(torch.tanh(self.embed(ids)))

    model, ids = TiedLM().eval(), torch.randint(0, 100, (2, 7))
    _, files = export(model, ids, tmp_path, weight_quant_layers=("linear", "embedding"))
    (label,) = quantized_labels(files)          # torch.export names a tied weight after one of its modules
    assert label in ("embed.weight", "lm_head.weight") and sum(n.endswith(".dat") for n in files) == 1
    with caplog.at_level(logging.INFO, logger="fx2nnef"):
        _, files = export(model, ids, tmp_path, "linear_only", weight_quant_layers=("linear",))
    assert quantized_labels(files) == set()
    assert f"{label} [100, 32] stays float: it is shared with a embedding layer, not asked for" in caplog.text


class ConvNet(torch.nn.Module):
    """A 3-channel stem (rows of 27: float), conv + batch norm, a 1-D conv and a linear head."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 32, 3, padding=1)
        self.conv = torch.nn.Conv2d(32, 32, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(32)
        self.conv1d = torch.nn.Conv1d(32, 16, 2)
        self.head = torch.nn.Linear(16 * 15, 10)   # 240 values per row: not a multiple of 32

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(torch.relu(self.stem(x)))))
        x = torch.nn.functional.max_pool2d(x, 2).mean(dim=2)
        return self.head(torch.relu(self.conv1d(x)).flatten(1))


def test_cnn_convolutions_are_quantized_and_tract_matches_the_decoded_model(tmp_path, caplog):
    torch.manual_seed(0)
    model = ConvNet().eval()
    model.bn.running_mean.uniform_(-0.5, 0.5)
    model.bn.running_var.uniform_(0.5, 2)
    with caplog.at_level(logging.INFO, logger="fx2nnef"):
        report, files = export(model, torch.randn(2, 3, 32, 32), tmp_path, weight_quant_layers=ALL)
    assert quantized_labels(files) == {"conv.weight", "conv1d.weight"}
    assert "stem.weight [32, 3, 3, 3] stays float: its rows hold 27 values" in caplog.text
    header, payload = read_dat(files["conv.weight.dat"])
    assert header["dims"] == (32, 32, 3, 3) and header["size"] == 32 * 288 // 32 * 18
    decoded, _ = decode_q4_0_payload(payload, header["dims"])
    assert np.abs(decoded - model.conv.weight.detach().numpy()).max() < 0.05
    assert all(r.ok for r in report.check)


def test_small_transformer_quantized(tmp_path):
    model, (ids, mask) = tiny_bert()
    report, files = export(model, [ids, mask], tmp_path, weight_quant_layers=("linear", "embedding"),
                           weight_quant_calibration="mse")
    labels = quantized_labels(files)
    assert "embeddings.word_embeddings.weight" in labels
    assert {f"encoder.layer.{i}.attention.self.query.weight" for i in range(2)} <= labels
    assert all(r.ok for r in report.check)


def test_pass_rewrites_transposed_products_into_linear_and_leaves_other_uses_float():
    class Mixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(32, 64))
            self.v = torch.nn.Parameter(torch.randn(32, 64))

        def forward(self, x):
            return torch.mm(x, self.w.t()) + torch.addmm(self.v[:, 0], x, self.w.t()), self.v.sum()

    program = captured(Mixed(), torch.randn(4, 64))
    q = QuantizeWeightsPass(layers=("linear",))
    result = q(program)
    ops = [n.target for n in result.program.graph.nodes if n.op == "call_function"]
    assert ops.count(torch.ops.aten.linear.default) == 2 and torch.ops.aten.t.default not in ops
    assert set(q.errors) == {"w"}


def test_validate_rejects_a_q4_0_weight_where_tract_cannot_read_it():
    from fx2nnef.backends.nnef.graph import Graph, Operation, Tensor
    from fx2nnef.backends.nnef.validate import validate
    from fx2nnef.errors import InvalidGraphError

    def graph(op_name, **attribs):
        w = Tensor("w", "f32", (4, 32), data=pack_q4_0(np.ones((4, 32), np.float32)), label="w")
        x = Tensor("x", "f32", (2, 32))
        y = Tensor("y", "f32", (2, 4))
        return Graph(inputs=[x], outputs=[y], operations=[
            Operation("tract_core_external", (), {"shape": [2, 32], "datum_type": "f32"}, (x,)),
            Operation("variable", (), {"shape": [4, 32], "label": "w"}, (w,)),
            Operation(op_name, (x, w), attribs, (y,))])

    validate(graph("matmul", transposeB=True))
    with pytest.raises(InvalidGraphError, match="block-quantized weight 'w'"):
        validate(graph("matmul"))
    with pytest.raises(InvalidGraphError, match="block-quantized weight 'w'"):
        validate(graph("add"))
