"""Quantized exports next to f32: archive size, error, and tract latency, model by model.

For each model and scheme: the archive's size over the f32 archive's; the error of tract's outputs
against the right reference (the model carrying the archive's decoded weights for Q4_0, the PT2E
model for int8), and against the float model (what quantization costs); tract's latency over the
f32 archive's, paired run by run, for one row and for 32 rows. With --reference-python (an
interpreter where `torch_to_nnef` is installed, e.g. a side venv), the reference exporter's Q4_0
archive of the same model is measured alike. Weight error per layer: min-max against MSE
calibration on every quantized weight.

    python benchmarks/bench_quant.py                          # Llama (TinyLlama dims, 2 layers), MLP, CNN, PT2E
    python benchmarks/bench_quant.py --layers 4 --budget 8
    python benchmarks/bench_quant.py --reference-python /tmp/t2n-venv/bin/python
"""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROWS = (1, 32)
LLAMA = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_attention_heads=32,
             num_key_value_heads=4)   # TinyLlama-1.1B's shapes


def llama(layers: int):
    """Return a random-weight Llama with TinyLlama's layer shapes and `layers` layers (untied head)."""
    import transformers
    torch.manual_seed(0)
    config = transformers.LlamaConfig(**LLAMA, num_hidden_layers=layers, use_cache=False, tie_word_embeddings=False)
    return transformers.LlamaForCausalLM(config).eval()


def llama_inputs(rows: int) -> dict:
    return {"input_ids": torch.randint(0, LLAMA["vocab_size"], (1, rows), generator=torch.Generator().manual_seed(rows))}


class EmbeddingMLP(torch.nn.Module):
    """A token embedding, four residual MLP blocks and an output projection (no attention, no norm):
    a Q4_0 case every exporter handles."""

    def __init__(self, vocab=32000, dim=512, hidden=2048):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(vocab, dim)
        self.up = torch.nn.ModuleList(torch.nn.Linear(dim, hidden) for _ in range(4))
        self.down = torch.nn.ModuleList(torch.nn.Linear(hidden, dim) for _ in range(4))
        self.head = torch.nn.Linear(dim, vocab, bias=False)

    def forward(self, ids):
        x = self.embed(ids)
        for up, down in zip(self.up, self.down):
            x = x + down(torch.relu(up(x)))
        return self.head(x)


def mlp_inputs(rows: int) -> dict:
    return {"ids": torch.randint(0, 32000, (1, rows), generator=torch.Generator().manual_seed(rows))}


class CNN(torch.nn.Module):
    """A small ResNet-like CNN: a 3-channel stem (stays float: rows of 27) and 64/128-channel blocks."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        conv = torch.nn.Conv2d
        self.stem = conv(3, 64, 3, padding=1)
        self.blocks = torch.nn.ModuleList([conv(64, 64, 3, padding=1), conv(64, 64, 3, padding=1),
                                           conv(64, 128, 3, stride=2, padding=1), conv(128, 128, 3, padding=1)])
        self.norms = torch.nn.ModuleList([torch.nn.BatchNorm2d(c) for c in (64, 64, 128, 128)])
        self.head = torch.nn.Linear(128, 128)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        for i, (conv, norm) in enumerate(zip(self.blocks, self.norms)):
            y = torch.relu(norm(conv(x)))
            x = y + x if y.shape == x.shape else y
        return self.head(x.mean((2, 3)))


def cnn_inputs(rows: int) -> dict:
    return {"x": torch.randn(rows, 3, 32, 32, generator=torch.Generator().manual_seed(rows))}


def transformer_block():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from quant.test_pt2e import TransformerBlock
    torch.manual_seed(0)
    return TransformerBlock(dim=256, heads=8).eval()


def block_inputs(rows: int) -> dict:
    return {"x": torch.randn(1, rows, 256, generator=torch.Generator().manual_seed(rows))}


# ------------------------------------------------------------------------------------------ measuring

def size_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20 if path.is_dir() \
        else path.stat().st_size / 2**20


def runnable(path: Path, registries=("tract_core", "tract_transformers")):
    from fx2nnef.backends.tract.runner import load, prepare
    return prepare(load(path, registries), path)


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    """Return max |got - expected| / max |expected| (the error relative to the output's scale)."""
    return float(np.abs(got.astype(np.float64) - expected).max() / max(np.abs(expected).max(), 1e-30))


def outputs(model, inputs: dict, weights=None) -> np.ndarray:
    from fx2nnef.stages import reference_outputs
    return reference_outputs(model, (), dict(inputs), weights)[0].detach().float().numpy()


def tract_output(run, inputs: dict) -> np.ndarray:
    return run.run([t.numpy() for t in inputs.values()])[0].to_numpy()


def latency_ratios(runs: dict, inputs_by_rows, budget: float) -> dict:
    """Return {name: {rows: median paired latency ratio to the "f32" run}} for each row count."""
    from bench_models import latencies_ms
    ratios: dict = {name: {} for name in runs}
    for rows in ROWS:
        arrays = [t.numpy() for t in inputs_by_rows(rows).values()]
        timed = latencies_ms({name: (run, arrays) for name, run in runs.items()}, reference="f32", budget_s=budget)
        for name in ratios:
            ratios[name][rows] = timed[name]["ratio"]
        print(f"  f32 at {rows} rows: {timed['f32']['median']:.2f} ms", file=sys.stderr)
    return ratios


def export(model, inputs: dict, path: Path, **target) -> tuple:
    """Export through the stages; return (seconds, the decoded weights the check used as reference,
    the per-layer relative weight errors of the Q4_0 pass)."""
    from fx2nnef import TractNNEF
    from fx2nnef.compiler.pipeline import default_passes
    from fx2nnef.passes import QuantizeWeightsPass
    from fx2nnef.stages import Export
    target = TractNNEF(**target)
    passes = default_passes(input_names=list(inputs), target=target)
    start = time.perf_counter()
    export = Export.begin(model, dict(inputs), path, target, input_names=list(inputs), passes=passes)
    with export.guard():
        export.build()
        export.write()
        export.check()
        export.commit()
    seconds = time.perf_counter() - start
    quantizer = next((p for p in passes if isinstance(p, QuantizeWeightsPass)), None)
    return seconds, export.reference_weights(), quantizer.errors if quantizer else {}


def reference_export(python: str, model: str, layers: int, path: Path) -> float | None:
    """Export `model` with torch_to_nnef's Q4_0 (min_max_q4_0_with_embeddings / _all) in a child
    interpreter; return its export seconds, or None when it failed (its error is printed)."""
    done = subprocess.run([python, __file__, "--reference-child", model, "--layers", str(layers), "--out", str(path)],
                          capture_output=True, text=True)
    if done.returncode:
        print(f"  torch_to_nnef failed on {model}: {done.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def reference_child(model_name: str, layers: int, out: str) -> None:
    """(In the reference interpreter) export with torch_to_nnef and print {"seconds": ...}."""
    from torch_to_nnef import TractNNEF, export_model_to_nnef
    from torch_to_nnef.compress import DEFAULT_COMPRESSION
    model, inputs = {"llama": lambda: (llama(layers), llama_inputs(32)), "cnn": lambda: (CNN().eval(), cnn_inputs(32)),
                     "mlp": lambda: (EmbeddingMLP().eval(), mlp_inputs(32))}[model_name]()
    DEFAULT_COMPRESSION["min_max_q4_0_all" if model_name == "cnn" else "min_max_q4_0_with_embeddings"](model)
    # torch_to_nnef wants a tract command-line binary (it downloads one, offline here) even without
    # check_io, only to read its version: a stand-in answers that; the archive is run in this script
    shim = Path(out).with_suffix(".tract-version.sh")
    shim.write_text("#!/bin/sh\necho tract 0.23.8\n")
    shim.chmod(0o755)
    start = time.perf_counter()
    export_model_to_nnef(model=model, args=tuple(inputs.values()), file_path_export=Path(out),
                         inference_target=TractNNEF(version="0.23.8", check_io=False, specific_tract_binary_path=shim,
                                                    reify_sdpa_operator=False,  # its fused sdpa gets a bool mask
                                                    dynamic_axes={name: {0 if model_name == "cnn" else 1: "S"}
                                                                  for name in inputs}),
                         input_names=list(inputs), output_names=["output"])
    print(json.dumps({"seconds": time.perf_counter() - start}))


# ------------------------------------------------------------------------------------------ sections

def bench_q4_0(name: str, model, inputs_by_rows, layers_kw: tuple, axis: int, directory: Path, args) -> list[dict]:
    """Export f32 and Q4_0 (min-max, MSE) archives of `model`; measure them (and torch_to_nnef's)."""
    example = inputs_by_rows(ROWS[-1])
    dynamic = {k: {axis: "S"} for k in example}
    archives, rows, errors, decoded, notes = {}, [], {}, {}, []
    for scheme, target in [("f32", {}), ("q4_0 min_max", dict(weight_quant="q4_0", weight_quant_layers=layers_kw)),
                           ("q4_0 mse", dict(weight_quant="q4_0", weight_quant_layers=layers_kw,
                                             weight_quant_calibration="mse"))]:
        path = directory / f"{name}-{scheme.replace(' ', '-')}.nnef.tgz"
        seconds, decoded[scheme], errors[scheme] = export(model, example, path, dynamic_axes=dynamic,
                                                          check_io=scheme != "f32", check_io_tolerance=(1e-4, 1e-4),
                                                          **target)
        archives[scheme] = path
        rows.append({"model": name, "scheme": scheme, "export_s": seconds, "size_mib": size_mib(path)})
    if args.reference_python:
        path = directory / f"{name}-t2n.nnef.tgz"
        seconds = reference_export(args.reference_python, name, args.layers, path)
        if seconds is not None:
            archives["torch_to_nnef q4_0"] = path
            rows.append({"model": name, "scheme": "torch_to_nnef q4_0", "export_s": seconds, "size_mib": size_mib(path)})
    runs = {}
    for scheme, path in archives.items():
        try:
            runs[scheme] = runnable(path)
            for count in ROWS:
                tract_output(runs[scheme], inputs_by_rows(count))
        except Exception as error:  # noqa: BLE001  (the reference exporter's archive may not run)
            runs.pop(scheme, None)
            reason = str(error).split("Stack backtrace")[0].strip().splitlines()[-1].strip()
            rows = [row for row in rows if row["scheme"] != scheme]
            notes.append(f"{name}: {scheme} archive written, but tract 0.23.9 cannot run it ({reason})")
    ratios = latency_ratios(runs, inputs_by_rows, args.budget)
    for row in rows:
        scheme = row["scheme"]
        row["size_ratio"] = row["size_mib"] / rows[0]["size_mib"]
        row["latency_ratio"] = ratios.get(scheme, {r: 1.0 for r in ROWS})
        weights = decoded.get(scheme) or None
        for rows_count in ROWS:
            inputs = inputs_by_rows(rows_count)
            got = tract_output(runs[scheme], inputs)
            row[f"err_float_{rows_count}"] = relative_error(got, outputs(model, inputs))
            if weights is not None:
                row[f"err_ref_{rows_count}"] = relative_error(got, outputs(model, inputs, weights))
    if notes:
        rows[0]["notes"] = notes
    if errors.get("q4_0 mse"):
        mm, mse = errors["q4_0 min_max"], errors["q4_0 mse"]
        lower = sum(mse[k] < mm[k] for k in mm)
        rows[0]["weight_error"] = (f"MSE below min-max on {lower}/{len(mm)} layers; mean relative weight error "
                                   f"{np.mean(list(mm.values())):.4f} -> {np.mean(list(mse.values())):.4f}, "
                                   f"worst layer ratio {max(mse[k] / mm[k] for k in mm):.3f}")
    return rows


def last_quantum(model) -> float:
    """Return the scale of the last activation quantization of a PT2E model (the quantum its output
    is computed from)."""
    return [n.args[1] for n in model.graph.nodes if n.op == "call_function"
            and n.target == torch.ops.quantized_decomposed.quantize_per_tensor.default][-1]


def bench_int8(name: str, float_model, inputs_by_rows, directory: Path, args) -> list[dict]:
    """For each row count: export the float model (f32) and its PT2E int8 versions (X86 per-channel,
    simulated; symmetric per-tensor, simulated and on integer kernels), each quantized and calibrated
    at that size (PT2E graphs have static shapes); measure size, error and paired latency."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from quant.test_pt2e import per_tensor_symmetric, pt2e
    rows: dict[str, dict] = {}
    for count in ROWS:
        example = inputs_by_rows(count)
        args_ = tuple(example.values())
        per_tensor = pt2e(float_model, args_, per_tensor_symmetric())
        variants = [("f32", float_model, {}), ("int8 per-channel simulated", pt2e(float_model, args_), {}),
                    ("int8 per-tensor simulated", per_tensor, {}),
                    ("int8 per-tensor int8_kernels", per_tensor, dict(int8_kernels=True))]
        runs = {}
        for scheme, model, target in variants:
            path = directory / f"{name.replace(' ', '-')}-{scheme.replace(' ', '-')}-{count}"
            seconds, _, _ = export(model, example, path, check_io=True, check_io_tolerance="very", **target)
            row = rows.setdefault(scheme, {"model": name, "scheme": scheme, "export_s": seconds,
                                           "size_mib": size_mib(path), "latency_ratio": {}})
            runs[scheme] = runnable(path)
            got = tract_output(runs[scheme], example)
            row[f"err_float_{count}"] = relative_error(got, outputs(float_model, example))
            if scheme != "f32":
                expected = model(*args_).detach().numpy()
                row[f"err_ref_{count}"] = relative_error(got, expected)
                row[f"quanta_{count}"] = float(np.abs(got - expected).max()) / last_quantum(model)
        from bench_models import latencies_ms
        timed = latencies_ms({s: (r, [a.numpy() for a in args_]) for s, r in runs.items()}, reference="f32",
                             budget_s=args.budget)
        for scheme, row in rows.items():
            row["latency_ratio"][count] = timed[scheme].get("ratio", 1.0)
    for row in rows.values():
        row["size_ratio"] = row["size_mib"] / rows["f32"]["size_mib"]
    return list(rows.values())


# ------------------------------------------------------------------------------------------ report

def table(rows: list[dict]) -> str:
    head = ("model", "scheme", "export s", "MiB", "size / f32", "err vs ref, 1 row", "32 rows", "err vs float, 1 row",
            "32 rows", "quanta vs PT2E, 1 row", "32 rows", "latency / f32, 1 row", "32 rows")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        def pair(key):
            values = [r.get(f"{key}_{n}") for n in ROWS]
            return " | ".join("-" if v is None else f"{v:.2e}" for v in values)
        latency = " | ".join(f"{r['latency_ratio'][n]:.2f}" if n in r["latency_ratio"] else "-" for n in ROWS)
        quanta = " | ".join(f"{r[f'quanta_{n}']:.2f}" if f"quanta_{n}" in r else "-" for n in ROWS)
        lines.append(f"| {r['model']} | {r['scheme']} | {r['export_s']:.1f} | {r['size_mib']:.1f} | "
                     f"{r['size_ratio']:.3f} | {pair('err_ref')} | {pair('err_float')} | {quanta} | {latency} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", default=["llama", "mlp", "cnn", "pt2e"], help="llama, mlp, cnn, pt2e")
    parser.add_argument("--layers", type=int, default=2, help="Llama layers (TinyLlama has 22)")
    parser.add_argument("--budget", type=float, default=4.0, help="seconds of paired latency rounds per row count")
    parser.add_argument("--reference-python", help="an interpreter with torch_to_nnef installed (a side venv)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--reference-child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_child:
        reference_child(args.reference_child, args.layers, args.out)
        return
    logging.basicConfig(level=logging.WARNING)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        if "llama" in args.sections:
            rows += bench_q4_0("llama", llama(args.layers), llama_inputs, ("linear", "embedding"), 1, directory, args)
        if "mlp" in args.sections:
            rows += bench_q4_0("mlp", EmbeddingMLP().eval(), mlp_inputs, ("linear", "embedding"), 1, directory, args)
        if "cnn" in args.sections:
            rows += bench_q4_0("cnn", CNN().eval(), cnn_inputs, ("linear", "embedding", "conv"), 0, directory, args)
        if "pt2e" in args.sections:
            rows += bench_int8("pt2e cnn", CNN().eval(), cnn_inputs, directory, args)
            rows += bench_int8("pt2e block", transformer_block(), block_inputs, directory, args)
    print(table(rows))
    for row in rows:
        if "weight_error" in row:
            print(f"{row['model']}: {row['weight_error']}")
        for note in row.get("notes", []):
            print(note)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
