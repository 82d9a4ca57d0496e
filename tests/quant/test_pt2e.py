"""int8 models from PT2E quantization (torchao): exported as tract's 8-bit types and checked against
the quantized PyTorch model; torch.ao's eager / FX / dynamic models are refused with a PT2E hint."""
from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
import torch
from torchao.quantization.pt2e import HistogramObserver, MinMaxObserver
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
from torchao.quantization.pt2e.quantizer import QuantizationConfig, QuantizationSpec
from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
    X86InductorQuantizer, get_default_x86_inductor_quantization_config)

from fx2nnef import TractNNEF, export_model_to_nnef
from fx2nnef.errors import ExportInputError, UnsupportedOpError

TRACT_CHECK = TractNNEF(check_io_tolerance=(1e-5, 1e-5))


def per_tensor_symmetric() -> QuantizationConfig:
    """A symmetric per-tensor config: int8 activations and int8 weights, one scale per tensor."""
    act = QuantizationSpec(dtype=torch.int8, quant_min=-128, quant_max=127, qscheme=torch.per_tensor_symmetric,
                           observer_or_fake_quant_ctr=HistogramObserver.with_args(eps=2**-12))
    weight = QuantizationSpec(dtype=torch.int8, quant_min=-127, quant_max=127, qscheme=torch.per_tensor_symmetric,
                              observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12))
    return QuantizationConfig(act, act, weight, None)


def pt2e(model: torch.nn.Module, args: tuple, config: QuantizationConfig | None = None) -> torch.nn.Module:
    """Return `model` quantized with PT2E (X86InductorQuantizer), calibrated on `args`."""
    torch.manual_seed(0)
    captured = torch.export.export(model.eval(), args).module()
    quantizer = X86InductorQuantizer().set_global(config or get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(captured, quantizer)
    for _ in range(4):
        prepared(*(a + 0.3 * torch.randn_like(a) if a.is_floating_point() else a for a in args))
    prepared(*args)
    return convert_pt2e(prepared)


class ResidualCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.conv = torch.nn.Conv2d(16, 16, 3, padding=1)
        self.branch = torch.nn.Conv2d(16, 8, 1)
        self.fc = torch.nn.Linear(24, 10)

    def forward(self, x):
        y = torch.relu(self.stem(x))
        y = torch.relu(self.conv(y) + y)                 # a residual add of two quantized tensors
        y = torch.cat([y, self.branch(y)], dim=1)          # a concatenation of differently quantized ones
        return self.fc(y.mean((2, 3)))


class TransformerBlock(torch.nn.Module):
    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.proj = torch.nn.Linear(dim, dim)
        self.norm1 = torch.nn.LayerNorm(dim)
        self.norm2 = torch.nn.LayerNorm(dim)
        self.up = torch.nn.Linear(dim, 4 * dim)
        self.down = torch.nn.Linear(4 * dim, dim)

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attention = torch.softmax(q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5, dim=-1) @ v
        x = x + self.proj(attention.transpose(1, 2).reshape(b, s, d))
        return x + self.down(torch.nn.functional.gelu(self.up(self.norm2(x))))


def dat_header(raw: bytes) -> tuple[tuple[int, ...], int, int]:
    """Return (dims, bits per item, item type) of an NNEF tensor file."""
    rank = struct.unpack_from("<I", raw, 8)[0]
    return struct.unpack_from(f"<{rank}I", raw, 12), *struct.unpack_from("<IH", raw, 44)


def export(model, args, tmp_path, target=TRACT_CHECK):
    path = tmp_path / "model"
    report = export_model_to_nnef(model, args, path, target)
    files = {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    return report, files


def quant_entries(files) -> dict[str, str]:
    lines = files.get("graph.quant", b"").decode().splitlines()
    return {line.split('"')[1]: line for line in lines}


def max_error_in_quanta(model, args, report) -> float:
    """Return tract's largest deviation from the PT2E model's output, in quanta of the model's last
    activation quantization (the quantum the output is computed from)."""
    import tract
    expected = model(*args).detach().numpy()
    got = tract.nnef().load(str(report.path)).into_runnable().run([a.numpy() for a in args])[0].to_numpy()
    scales = [n.args[1] for n in model.graph.nodes if n.op == "call_function"
              and n.target == torch.ops.quantized_decomposed.quantize_per_tensor.default]
    return float(np.abs(got - expected).max() / scales[-1])


@pytest.mark.parametrize("config", ["x86_per_channel", "per_tensor_symmetric"])
def test_pt2e_cnn_with_residual_add_and_concat(tmp_path, config):
    x = torch.randn(2, 3, 12, 12)
    model = pt2e(ResidualCNN(), (x,), per_tensor_symmetric() if config == "per_tensor_symmetric" else None)
    report, files = export(model, (x,), tmp_path)
    assert all(r.ok for r in report.check)
    weights = {name: dat_header(raw) for name, raw in files.items() if name.startswith("_frozen_param")}
    assert len(weights) == 4
    assert all(bits == 8 and item_type == 4 for _, bits, item_type in weights.values()), weights  # int8, never f32
    graph, entries = files["graph.nnef"].decode(), quant_entries(files)
    assert "tract_core_cast(x, to = '" in graph and len(entries) >= 4
    if config == "per_tensor_symmetric":   # per-tensor weights: quantized variables with their own entry
        assert all(any(v in e and "signed = true" in e for e in entries.values())
                   for v in ("_frozen_param0", "_frozen_param1"))
        assert not any(name.startswith("_scale") for name in files)
    else:                                   # per-channel: int8 variable times its f32 scales
        assert dat_header(files["_scale_1.dat"]) == ((16,), 32, 0)
        assert not any("frozen_param" in e for e in entries.values())
    assert max_error_in_quanta(model, (x,), report) <= 1e-3


@pytest.mark.parametrize("config", ["x86_per_channel", "per_tensor_symmetric"])
def test_pt2e_transformer_block(tmp_path, config):
    x = torch.randn(1, 6, 32)
    model = pt2e(TransformerBlock(), (x,), per_tensor_symmetric() if config == "per_tensor_symmetric" else None)
    report, files = export(model, (x,), tmp_path)
    assert all(r.ok for r in report.check)
    assert max_error_in_quanta(model, (x,), report) <= 1.0
    linear_weights = [n for n in files if n.startswith("_frozen_param")]
    assert len(linear_weights) == 4 and all(dat_header(files[n])[1:] == (8, 4) for n in linear_weights)
    assert quant_entries(files)


@pytest.mark.parametrize("dtype", [torch.int16, torch.uint16])
def test_activation_widths_tract_cannot_load_fail_at_export(tmp_path, dtype):
    """A 16-bit graph.quant entry would abort tract's loader (a todo!()): refused at export. (PT2E has
    no 4-bit dtype: 4-bit activations are uint8 with quant_max=15, exported below.)"""
    info = torch.iinfo(dtype)

    class Quantized16(torch.nn.Module):
        def forward(self, x):
            q = torch.ops.quantized_decomposed.quantize_per_tensor(x, 0.01, 0, info.min, info.max, dtype)
            return torch.ops.quantized_decomposed.dequantize_per_tensor(q, 0.01, 0, info.min, info.max, dtype)

    with pytest.raises(UnsupportedOpError, match="8-bit .* and 32-bit types only"):
        export(Quantized16(), (torch.randn(2, 8),), tmp_path)
    assert not (tmp_path / "model").exists()


def test_narrow_activation_range_is_clamped(tmp_path):
    """A 4-bit range held in uint8 (quant_max=15) runs in tract: the cast is clamped first."""
    act = QuantizationSpec(dtype=torch.uint8, quant_min=0, quant_max=15, qscheme=torch.per_tensor_affine,
                           observer_or_fake_quant_ctr=HistogramObserver)
    x = torch.randn(2, 3, 8, 8)
    model = pt2e(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3)), (x,),
                 QuantizationConfig(act, act, get_default_x86_inductor_quantization_config().weight, None))
    report, files = export(model, (x * 3,), tmp_path)
    assert all(r.ok for r in report.check) and "min(" in files["graph.nnef"].decode()


def test_torch_ao_eager_fx_and_dynamic_models_are_refused_with_a_pt2e_hint(tmp_path):
    from torch.ao.quantization import (DeQuantStub, QuantStub, convert, get_default_qconfig, prepare,
                                       quantize_dynamic)
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    class Eager(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.quant, self.fc, self.dequant = QuantStub(), torch.nn.Linear(8, 8), DeQuantStub()

        def forward(self, x):
            return self.dequant(self.fc(self.quant(x)))

    x = torch.randn(2, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dynamic = quantize_dynamic(Eager().eval(), {torch.nn.Linear}, dtype=torch.qint8)
        eager = Eager().eval()
        eager.qconfig = get_default_qconfig("x86")
        prepared = prepare(eager)
        prepared(x)
        fx = prepare_fx(torch.nn.Sequential(torch.nn.Linear(8, 8)).eval(), {"": get_default_qconfig("x86")}, (x,))
        fx(x)
        models = {"dynamically quantized": dynamic, "eager or FX mode": convert(prepared),
                  "observers": prepared,
                  "FX mode": convert_fx(fx)}
    for kind, model in models.items():
        with pytest.raises(ExportInputError, match=f"(?s){kind}.*prepare_pt2e"):
            export_model_to_nnef(model, x, tmp_path / "m.nnef.tgz")


def test_int8_kernels_run_per_tensor_layers_on_integer_products(tmp_path):
    x = torch.randn(2, 3, 12, 12)
    model = pt2e(ResidualCNN(), (x,), per_tensor_symmetric())
    report, files = export(model, (x,), tmp_path, TractNNEF(int8_kernels=True, check_io_tolerance="approximate"))
    graph, entries = files["graph.nnef"].decode(), quant_entries(files)
    assert graph.count(" = conv(quantize_per_tensor") == 3 and " = linear(" in graph
    biases = [n for n in files if n.endswith(".i32.dat")]
    assert len(biases) == 4 and all(dat_header(files[n])[1:] == (32, 4) for n in biases)
    assert sum("bits = 32" in e for e in entries.values()) == 4        # the i32 accumulators
    assert max_error_in_quanta(model, (x,), report) <= 1.0


def test_int8_kernels_leave_per_channel_layers_simulated(tmp_path, caplog):
    x = torch.randn(1, 6, 32)
    model = pt2e(TransformerBlock(), (x,))
    with caplog.at_level("INFO", logger="fx2nnef"):
        report, files = export(model, (x,), tmp_path, TractNNEF(int8_kernels=True, check_io_tolerance=(1e-5, 1e-5)))
    assert "4 layers with per-channel weights stay float between casts" in caplog.text
    assert "bits = 32" not in files["graph.quant"].decode()


def test_validate_requires_one_quantization_for_a_binary():
    from fx2nnef.backends.nnef.graph import Graph, Operation, QuantParams, Tensor
    from fx2nnef.backends.nnef.validate import validate
    from fx2nnef.errors import InvalidGraphError

    a, b, c = (Tensor(n, "u8", (2,)) for n in "abc")
    a.quant, b.quant = QuantParams(0.1, 3, 8, False), QuantParams(0.2, 0, 8, False)
    ops = [Operation("tract_core_external", (), {"shape": [2], "datum_type": "u8"}, (t,)) for t in (a, b)]
    with pytest.raises(InvalidGraphError, match="requantize"):
        validate(Graph(inputs=[a, b], outputs=[c], operations=ops + [Operation("add", (a, b), {}, (c,))]))
