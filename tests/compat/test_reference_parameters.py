"""Each torch_to_nnef parameter means here what it means there (docs/torch_to_nnef.md)."""
from __future__ import annotations

import logging
import sys
import tarfile
import textwrap

import numpy as np
import pytest
import torch

import fx2nnef
from fx2nnef import ExportInputError, TractCheckTolerance, TractNNEF, export_model_to_nnef
from fx2nnef.backends.tract.compare import TOLERANCES


class Net(torch.nn.Module):
    """Two linear layers in named submodules."""

    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.encoder(x))


@pytest.fixture
def net():
    torch.manual_seed(0)
    return Net().eval(), torch.randn(2, 4)


def graph_text(path) -> str:
    """Return graph.nnef of an archive (directory, .tar or .tgz)."""
    if path.is_dir():
        return (path / "graph.nnef").read_text()
    with tarfile.open(path) as tar:
        return tar.extractfile("graph.nnef").read().decode()


@pytest.mark.parametrize("level, name, produced, gzip", [
    (None, "m.nnef", "m.nnef", None), (0, "m.nnef", "m.nnef.tar", False), (6, "m.nnef", "m.nnef.tgz", True),
    (0, "m.nnef.tar", "m.nnef.tar", False), (9, "m.nnef.tgz", "m.nnef.tgz", True)])
def test_compression_level_chooses_the_container(net, tmp_path, level, name, produced, gzip):
    report = export_model_to_nnef(*net, tmp_path / name, TractNNEF(), compression_level=level)
    assert report.path == tmp_path / produced and report.path.exists()
    if gzip is not None:
        assert (report.path.read_bytes()[:2] == b"\x1f\x8b") == gzip


@pytest.mark.parametrize("level, name", [(None, "m.nnef.tgz"), (0, "m.nnef.tgz"), (3, "m.tar"), (12, "m.nnef"),
                                         ("1", "m.nnef")])
def test_compression_level_contradicting_the_suffix_is_refused(net, tmp_path, level, name):
    with pytest.raises(ExportInputError, match="compression_level"):
        export_model_to_nnef(*net, tmp_path / name, TractNNEF(), compression_level=level)
    assert list(tmp_path.iterdir()) == []


def test_compression_level_deflates_at_that_level(tmp_path):
    model = torch.nn.Embedding(2000, 64).eval()
    with torch.no_grad():
        model.weight.copy_(torch.arange(2000 * 64).reshape(2000, 64) % 7)  # compressible
    ids = torch.tensor([[1, 2]])
    fast = export_model_to_nnef(model, ids, tmp_path / "a.nnef.tgz", TractNNEF())
    best = export_model_to_nnef(model, ids, tmp_path / "b.nnef", TractNNEF(), compression_level=9)
    assert best.path.stat().st_size < 0.5 * fast.path.stat().st_size


def test_log_level_applies_during_the_export_only(net, tmp_path):
    logger, records = logging.getLogger("fx2nnef"), []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    before = logger.level
    try:
        logger.setLevel(logging.WARNING)
        export_model_to_nnef(*net, tmp_path / "m.nnef", TractNNEF(), log_level=logging.DEBUG)
        assert any(r.levelno == logging.DEBUG for r in records) and logger.level == logging.WARNING
        records.clear()
        export_model_to_nnef(*net, tmp_path / "n.nnef", TractNNEF())
        assert records == []
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)
    with pytest.raises(ExportInputError, match="log_level"):
        export_model_to_nnef(*net, tmp_path / "m2.nnef", TractNNEF(), log_level="LOUD")


@pytest.mark.parametrize("scheme, expected", [
    ("raw", ["p_encoder_0_weight", "linear"]),
    ("natural_verbose", ["encoder_0_weight", "encoder_0_linear"]),
    ("natural_verbose_camel", ["encoder0Weight", "encoder0Linear"]),
    ("numeric", ["v0 = variable", "v1 = variable"]),
])
def test_naming_schemes(net, tmp_path, scheme, expected):
    report = export_model_to_nnef(*net, tmp_path / "m.nnef", TractNNEF(), ["x"], ["y"],
                                  nnef_variable_naming_scheme=scheme)
    text = graph_text(report.path)
    assert all(name in text for name in expected), text
    assert "graph network(x) -> (y)" in text and (report.path / "encoder.0.weight.dat").exists()


def test_unknown_naming_scheme(net, tmp_path):
    with pytest.raises(ExportInputError, match="natural_verbose_camel"):
        export_model_to_nnef(*net, tmp_path / "m.nnef", TractNNEF(), nnef_variable_naming_scheme="short")


def test_custom_extensions_are_written_after_checking(net, tmp_path):
    lines = ["tract_assert B >= 1", "extension tract_assert B <= 64;", "tract_symbol P", "tract_assert one: B == 1",
             "tract_assert many: B >= 2", "tract_assert 2 * (B + P) < 4096"]
    report = export_model_to_nnef(*net, tmp_path / "m.nnef", TractNNEF(dynamic_axes={"x": {0: "B"}}), ["x"],
                                  custom_extensions=lines)
    text = graph_text(report.path)
    for rule in ("B >= 1", "B <= 64", "one: B == 1", "many: B >= 2", "2 * (B + P) < 4096"):
        assert f"extension tract_assert {rule};" in text
    assert "extension tract_symbol P;" in text


@pytest.mark.parametrize("line, message", [
    ("tract_assert S >= 1", "undeclared symbol"), ("tract_assert B", "compares two expressions"),
    ("tract_assert B >= 1 >= 0", "compares two expressions"), ("tract_assert B >= (1", "parentheses"),
    ("tract_assert B >= 1; rm -rf", "cannot read"), ("tract_registry tract_magic", "not one fx2nnef can write"),
    ("my_extension", "not one fx2nnef can write"), ("tract_assert 1x: B == 1", "scenario name")])
def test_bad_custom_extensions_name_the_line(net, tmp_path, line, message):
    with pytest.raises(ExportInputError, match=message) as error:
        export_model_to_nnef(*net, tmp_path / "m.nnef", TractNNEF(dynamic_axes={"x": {0: "B"}}), ["x"],
                             custom_extensions=[line])
    assert repr(line) in str(error.value) and list(tmp_path.iterdir()) == []


class Passthrough(torch.nn.Module):
    def forward(self, x, y):
        return x, y * 2


def test_allow_same_io_names(tmp_path):
    args = (torch.randn(3), torch.randn(3))
    with pytest.raises(ExportInputError, match="allow_same_io_names"):
        export_model_to_nnef(Passthrough(), args, tmp_path / "a.nnef", TractNNEF(), ["x", "y"], ["x", "z"])
    with pytest.warns(UserWarning, match="same name"):
        report = export_model_to_nnef(Passthrough(), args, tmp_path / "b.nnef", TractNNEF(), ["x", "y"], ["x", "z"],
                                      allow_same_io_names=True)
    assert report.signature == "graph network(x, y) -> (x, z)"
    with pytest.raises(ExportInputError, match="not that input"):
        export_model_to_nnef(Passthrough(), args, tmp_path / "c.nnef", TractNNEF(), ["x", "y"], ["z", "y"],
                             allow_same_io_names=True)


PLUGIN = '''
import torch, fx2nnef
torch.library.define("plugdemo::twice", "(Tensor x) -> Tensor")
torch.library.impl("plugdemo::twice", "CompositeExplicitAutograd")(lambda x: x * 2)
torch.library.register_fake("plugdemo::twice")(lambda x: torch.empty_like(x))

@fx2nnef.lower("plugdemo::twice")
def plugdemo_twice(b, x):
    """twice(Tensor x) -> Tensor"""
    return b.op("mul", x, 2.0)
'''


class UsesPlugin(torch.nn.Module):
    def forward(self, x):
        return torch.ops.plugdemo.twice(x) + 1


def test_load_extra_op_modules(tmp_path, monkeypatch):
    from fx2nnef.backends.nnef.registry import default_registry
    fx2nnef.LoweringRegistry.from_default()  # fill the default registry, then let the test add to a copy of it
    monkeypatch.setattr(default_registry, "_lowerings", dict(default_registry._lowerings))
    (tmp_path / "plugdemo_lowerings.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ExportInputError, match="cannot import"):
        export_model_to_nnef(torch.nn.ReLU(), torch.randn(2), tmp_path / "r.nnef", TractNNEF(),
                             load_extra_op_modules=["no_such_module_here"], strict_extra_imports=True)
    export_model_to_nnef(torch.nn.ReLU(), torch.randn(2), tmp_path / "r.nnef", TractNNEF(),
                         load_extra_op_modules=["no_such_module_here"])  # not strict: a warning
    report = export_model_to_nnef(UsesPlugin(), torch.randn(2), tmp_path / "m.nnef", TractNNEF(),
                                  load_extra_op_modules=["plugdemo_lowerings"])
    assert report.check[0].ok


def test_entry_point_discovery(monkeypatch):
    from fx2nnef import plugins

    class Point:
        value = "json"
    monkeypatch.setattr(plugins, "entry_points", lambda group: [Point()] if group == "fx2nnef.lowerings" else [])
    assert plugins.load_plugins(None, discover=True) == ["json"]
    assert plugins.load_plugins(None, discover=False) == []
    monkeypatch.setenv("FX2NNEF_EXTRA_MODULES", "json, os")
    assert plugins.plugin_modules(["json"], discover=False) == ["json", "os"]


def test_options_without_effect_warn(net, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="fx2nnef"):
        target = TractNNEF(feature_flags={"complex"}, upsample_with_debox=True, native_gated_delta_op=True)
        export_model_to_nnef(*net, tmp_path / "m.nnef", target, auto_harden_jit=True, skip_eager_forward=True,
                             check_io_names_qte_match=False)
    text = caplog.text
    for option in ("feature_flags", "upsample_with_debox", "native_gated_delta_op", "auto_harden_jit"):
        assert option in text


def test_script_module_is_refused(net, tmp_path):
    with pytest.raises(ExportInputError, match="ScriptModule"):
        export_model_to_nnef(torch.jit.script(net[0]), net[1], tmp_path / "m.nnef", TractNNEF())


def test_identity_properties_only_when_asked(net, tmp_path):
    plain = graph_text(export_model_to_nnef(*net, tmp_path / "a.nnef", TractNNEF()).path)
    identity = graph_text(export_model_to_nnef(*net, tmp_path / "b.nnef", TractNNEF(dump_identity_properties=True)).path)
    assert "hostname" not in plain and "'hostname'" in identity and "'user'" in identity


def test_tolerance_names_and_enum():
    for member in TractCheckTolerance:
        assert TractNNEF(check_io_tolerance=member).check_io_tolerance == member.value
    assert TOLERANCES["ultra"].atol == 0.2
    with pytest.raises(ExportInputError):
        TractNNEF(check_io_tolerance="roughly")


class Attention(torch.nn.Module):
    def forward(self, q, k, v):
        scores = (q @ k.transpose(-1, -2)).softmax(-1)
        return torch.nn.functional.layer_norm(scores @ v, (8,)) @ torch.ones(8, 8, dtype=q.dtype)


@pytest.mark.parametrize("option, more", [
    ({"force_attention_inner_in_f32": True}, True), ({"force_linear_accumulation_in_f32": True}, True),
    ({"force_norm_in_f32": True}, False)])
def test_force_in_f32_options_pick_op_groups(tmp_path, option, more):
    """Each option adds f32 casts around its op group; a norm's statistics are in f32 without asking
    (torch accumulates them in f32: in f16 they overflow), so force_norm_in_f32 adds none."""
    args = tuple(torch.randn(1, 4, 8).half() for _ in range(3))

    def casts(name, **options):
        report = export_model_to_nnef(Attention(), args, tmp_path / name,
                                      TractNNEF(check_io_tolerance=(1e-2, 1e-2), **options))
        return graph_text(report.path).count("to = 'f32'")

    assert (casts("with.nnef", **option) > casts("plain.nnef")) == more


def test_reify_sdpa_operator(tmp_path):
    q = torch.randn(1, 2, 4, 8)
    attention = torch.nn.functional.scaled_dot_product_attention
    model = type("M", (torch.nn.Module,), {"forward": lambda self, q: attention(q, q, q)})()
    fused = graph_text(export_model_to_nnef(model, q, tmp_path / "a.nnef", TractNNEF(reify_sdpa_operator=True)).path)
    plain = graph_text(export_model_to_nnef(model, q, tmp_path / "b.nnef", TractNNEF()).path)
    assert "tract_transformers_sdpa" in fused and "tract_transformers_sdpa" not in plain


STUB_TRACT = '''#!{python}
"""A stand-in for the tract command line (tract's binaries cannot be downloaded here): the subset
fx2nnef calls, run with the tract Python package."""
import sys, numpy as np, tract
if sys.argv[1:] == ["--version"]:
    print("tract " + tract.version()); sys.exit(0)
archive, args = sys.argv[1], sys.argv[2:]
given, saved = args[args.index("--input-from-bundle") + 1], args[args.index("--save-outputs-npz") + 1]
loader = tract.nnef()
if "--nnef-tract-transformers" in args:
    loader = loader.with_tract_transformers()
model = loader.load(archive)
names = [model.output_name(i) for i in range(model.output_count())]
with np.load(given) as inputs:
    feed = [inputs[model.input_name(i)] for i in range(model.input_count())]
outputs = model.into_runnable().run(feed)
np.savez(saved, **{{name: t.to_numpy() for name, t in zip(names, outputs)}})
'''


def test_specific_tract_binary_path(net, tmp_path):
    binary = tmp_path / "tract"
    binary.write_text(STUB_TRACT.format(python=sys.executable))
    binary.chmod(0o755)
    report = export_model_to_nnef(*net, tmp_path / "m.nnef", TractNNEF(specific_tract_binary_path=binary),
                                  ["x"], ["y"])
    assert report.check[0].ok and str(binary) in report.checked_with
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho 'tract 0.23.9'; exit 3\n")
    broken.chmod(0o755)
    with pytest.raises(fx2nnef.TractCheckError, match="exit code 3"):
        export_model_to_nnef(*net, tmp_path / "n.nnef", TractNNEF(specific_tract_binary_path=broken), ["x"], ["y"])


def test_export_tensors(tmp_path):
    from safetensors.torch import save_file
    tensors = {"a.weight": torch.randn(2, 3), "b/bias": torch.arange(4)}
    assert fx2nnef.export_tensors_to_nnef(tensors, tmp_path) is not tensors
    raw = (tmp_path / "a.weight.dat").read_bytes()
    assert raw[:2] == b"\x4e\xef" and np.frombuffer(raw[128:], np.float32).tolist() == tensors["a.weight"].flatten().tolist()
    assert (tmp_path / "b" / "bias.dat").exists()
    save_file({"lora.A": torch.ones(2, 2), "base.w": torch.zeros(2)}, tmp_path / "patch.safetensors")
    torch.save({"lora.A": torch.ones(2, 2), "step": 3}, tmp_path / "patch.pt")
    out = tmp_path / "out"
    out.mkdir()
    seen = []
    for source in ("patch.safetensors", "patch.pt"):
        found = fx2nnef.export_tensors_from_disk_to_nnef(tmp_path / source, out, lambda k: k.startswith("lora."),
                                                         seen.append)
        assert list(found) == ["lora.A"] and (out / "lora.A.dat").exists()
    assert len(seen) == 2
    with pytest.raises(ExportInputError, match="bfloat16"):
        fx2nnef.export_tensors_to_nnef({"w": torch.ones(2, dtype=torch.bfloat16)}, tmp_path)
    with pytest.raises(ExportInputError, match="file name"):
        fx2nnef.export_tensors_to_nnef({"../w": torch.ones(2)}, tmp_path)
    with pytest.raises(ExportInputError, match="not an existing directory"):
        fx2nnef.export_tensors_to_nnef(tensors, tmp_path / "missing")
