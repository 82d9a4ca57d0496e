"""Benchmark fx2nnef against the torch.onnx.export -> tract path, model by model.

Each model runs in its own child process (so peak memory is its own), and reports:
export time by stage, peak memory of the export, archive size, tract load+optimize time,
tract latency (median of repeated runs after warm-up), and the op counts of tract's optimized
graph; then the same for torch.onnx.export -> tract's ONNX loader, with the two paths' runs
interleaved and their paired latency ratio.

    python benchmarks/bench_models.py                      # the tiny zoo + albert-base
    python benchmarks/bench_models.py albert-base llama    # chosen models
    python benchmarks/bench_models.py --big-llama 1.1      # a ~1.1 B parameter Llama, export only
    python benchmarks/bench_models.py bloom --budget 30    # 30 s of latency rounds instead of 4
    python benchmarks/bench_models.py --depth-sweep        # ALBERT-base's load time at 2..32 layers, both paths

Load times are tract's load + optimize + runnable, the best of three, for both paths in one process.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import importlib.util
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ["albert-base", "bert", "distilbert", "gpt2", "llama", "t5", "vit", "resnet", "whisper"]


def catalogue():
    """Import the zoo catalogue (tests/zoo/models.py) by path."""
    spec = importlib.util.spec_from_file_location("fx2nnef_zoo_models", ROOT / "tests/zoo/models.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def rss_mib(field: str = "VmRSS") -> float:
    """Return this process's resident memory (VmRSS) or its peak since the last reset (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def latencies_ms(runs: dict, reference: str | None = None, warmup: int = 5, budget_s: float = 4.0,
                 min_rounds: int = 20) -> dict[str, dict[str, float]]:
    """Time runnable.run(inputs) for runs = {path: (runnable, inputs)}, after `warmup` runs each.

    The paths take turns, one run each per round, in an order that alternates round by round, so
    that a change of machine load (this VM's speed drifts by 5-10 % over seconds) hits them alike.
    Returns {path: {"median": ms, "ratio": median over rounds of this path's time / the
    `reference` path's}} (ratio only with a reference): the paired ratio is the robust comparison."""
    for runnable, inputs in runs.values():
        for _ in range(warmup):
            runnable.run(inputs)
    paths = list(runs)
    times: dict[str, list[float]] = {path: [] for path in paths}
    start = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or time.perf_counter() - start < budget_s:
        for path in (paths if rounds % 2 == 0 else paths[::-1]):
            runnable, inputs = runs[path]
            t = time.perf_counter()
            runnable.run(inputs)
            times[path].append((time.perf_counter() - t) * 1000)
        rounds += 1
    base = times.get(reference)
    return {path: {"median": statistics.median(values),
                   **({"ratio": statistics.median(v / b for v, b in zip(values, base))} if base else {})}
            for path, values in times.items()}


def op_counts(runnable, inputs) -> dict[str, int]:
    """Return {tract op name: count} over the nodes of tract's optimized graph (Const excluded)."""
    nodes = json.loads(runnable.profile_json(inputs))["nodes"]
    return dict(collections.Counter(n["op_name"] for n in nodes if n["op_name"] != "Const"))


def arrays_by_name(inputs: dict, names: list[str]) -> list:
    """Return the numpy inputs in the order of `names` (the model's input names)."""
    return [inputs[name].detach().numpy() for name in names]


def bench_nnef(model, inputs, directory: Path, check: bool, suffix: str = ".nnef.tgz") -> dict:
    """Export with fx2nnef; return the export figures and (under "load") how to load the archive."""
    from fx2nnef import TractNNEF, export_model_to_nnef
    from fx2nnef.backends.tract.runner import load, prepare

    path = directory / f"model{suffix}"
    reset_peak()
    before = rss_mib()
    start = time.perf_counter()
    report = export_model_to_nnef(model, inputs, path, TractNNEF(check_io=check))
    total = time.perf_counter() - start
    peak_rss = rss_mib("VmHWM")
    arrays = arrays_by_name(inputs, report.input_names)
    return {"export_s": total, "stages": report.timings, "peak_mib": peak_rss - before, "peak_rss_mib": peak_rss,
            "size_mib": path.stat().st_size / 2**20, "nnef_ops": len(report.graph.operations),
            "load": (lambda: prepare(load(path, report.graph.registries), path), arrays)}


def bench_onnx(model, inputs, directory: Path) -> dict:
    """Export with torch.onnx.export (dynamo); return the export figures and (under "load") how to
    load it in tract's ONNX loader."""
    from fx2nnef.backends.tract.onnx_runner import prepare_onnx
    from fx2nnef.onnx_check import export_onnx
    import tract

    path = directory / "model.onnx"
    reset_peak()
    before = rss_mib()
    start = time.perf_counter()
    export_onnx(model, (), dict(inputs), path)
    total = time.perf_counter() - start
    peak = rss_mib("VmHWM") - before
    names = [tract.onnx().load(str(path)).input_name(i) for i in range(len(inputs))]
    arrays = arrays_by_name(inputs, names)
    return {"export_s": total, "peak_mib": peak, "size_mib": path.stat().st_size / 2**20,
            "load": (lambda: prepare_onnx(path, arrays), arrays)}


def best_load(prepare, repeats: int = 3) -> tuple:
    """Return (the runnable `prepare()` makes, the best of `repeats` timings of it in seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runnable = prepare()
        times.append(time.perf_counter() - start)
    return runnable, min(times)


def load_and_count(row: dict) -> tuple:
    """Load and optimize a path's model in tract (timing it, counting its ops); return (runnable, inputs)."""
    prepare, arrays = row.pop("load")
    runnable, row["load_s"] = best_load(prepare)
    row["tract_ops"] = op_counts(runnable, arrays)
    return runnable, arrays


def big_llama(billions: float):
    """Return a Llama with about `billions` B random parameters, built without initializing them."""
    import torch
    import transformers
    hidden, layers = 2048, max(1, round((billions * 1e9 - 2 * 32000 * 2048) / (16 * 2048 * 2048 + 2 * 2048)))
    config = transformers.LlamaConfig(vocab_size=32000, hidden_size=hidden, intermediate_size=4 * hidden,
                                      num_hidden_layers=layers, num_attention_heads=16, num_key_value_heads=16,
                                      use_cache=False, tie_word_embeddings=False)
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(config)
    model = model.to_empty(device="cpu").eval()
    with torch.no_grad():
        for parameter in model.parameters():  # touch every page, so the weights are resident
            parameter.uniform_(-0.02, 0.02)
    for buffer_name, buffer in model.named_buffers():
        if "inv_freq" in buffer_name:
            buffer.copy_(1.0 / (10000 ** (torch.arange(0, buffer.numel()) * 2.0 / (2 * buffer.numel()))))
    return model, {"input_ids": torch.zeros(1, 8, dtype=torch.long), "attention_mask": torch.ones(1, 8, dtype=torch.long)}


def child(name: str, check: bool, onnx: bool, big: float | None, suffix: str, budget: float) -> dict:
    """Benchmark one model in this process; return the result row."""
    import torch
    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    if big:
        model, inputs = big_llama(big)
        onnx = False
    else:
        entry = catalogue().ZOO[name]
        model, inputs = entry.build(), entry.inputs()
    weights = sum(t.numel() * t.element_size() for t in {id(t): t for t in
                  [*model.parameters(), *model.buffers()]}.values())
    row = {"model": name, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
           "weights_mib": weights / 2**20, "rss_before_mib": rss_mib()}
    with tempfile.TemporaryDirectory(prefix="fx2nnef-bench-") as tmp:
        with contextlib.redirect_stdout(io.StringIO()):
            row["nnef"] = bench_nnef(model, inputs, Path(tmp), check, suffix)
        if onnx:
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    row["onnx"] = bench_onnx(model, inputs, Path(tmp))
            except Exception as exc:  # the ONNX path failing is a result, not a crash
                row["onnx"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        # both models are loaded after both exports, one after the other: a runnable built before
        # the ONNX export's allocations ran up to 3 % slower than a second load of the same archive
        runs = {}
        if big:  # export only
            row["nnef"].pop("load")
        else:
            runs["nnef"] = load_and_count(row["nnef"])
        if "load" in row.get("onnx", {}):
            try:
                runs["onnx"] = load_and_count(row["onnx"])
            except Exception as exc:  # tract failing on the ONNX file is a result too
                row["onnx"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        latencies = latencies_ms(runs, reference="onnx" if "onnx" in runs else None, budget_s=budget)
        for path, latency in latencies.items():
            row[path]["latency_ms"] = latency["median"]
        if "onnx" in runs:
            row["nnef"]["latency_vs_onnx"] = latencies["nnef"]["ratio"]
    return row


def run_child(name: str, args) -> dict:
    """Run `child` for one model in a fresh process; return its row (or the error it died with)."""
    command = [sys.executable, __file__, "--child", name, "--suffix", args.suffix, "--budget", str(args.budget),
               *(["--check"] if args.check else []),
               *(["--no-onnx"] if args.no_onnx else []), *(["--big-llama", str(args.big_llama)] if args.big_llama else [])]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=args.timeout)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"model": name, "error": (done.stderr.strip().splitlines() or ["died"])[-1][:300]}


def total_ops(counts: dict | None) -> str:
    return "-" if not counts else str(sum(counts.values()))


def table(rows: list[dict]) -> str:
    """Render the rows as a markdown table."""
    head = ("| model | params (M) | capture s | decompose s | other passes s | lower s | serialize s | check s "
            "| export s (no check) | peak MiB "
            "| weights MiB | archive MiB | tract ops | tract latency ms | onnx export s | onnx peak MiB "
            "| onnx MiB | onnx tract ops | onnx latency ms | NNEF/ONNX latency (paired) | tract load s "
            "| onnx load s | NNEF/ONNX load |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['model']} | error: {row['error']} |")
            continue
        n, o = row["nnef"], row.get("onnx") or {}
        stages = n["stages"]
        passes = sum(v for k, v in stages.items() if k not in ("capture", "lower", "serialize", "check",
                                                               "DecomposePass"))
        onnx_cells = ([f"{o['export_s']:.2f}", f"{o['peak_mib']:.0f}", f"{o['size_mib']:.2f}",
                       total_ops(o["tract_ops"]), f"{o['latency_ms']:.3f}", f"{n['latency_vs_onnx']:.3f}"]
                      if "latency_ms" in o else [o.get("error", "-")] + ["-"] * 5)
        load_cells = [f"{n['load_s']:.3f}" if "load_s" in n else "-", f"{o['load_s']:.3f}" if "load_s" in o else "-",
                      f"{n['load_s'] / o['load_s']:.2f}" if "load_s" in n and "load_s" in o else "-"]
        cells = [row["model"], f"{row['params_m']:.1f}", f"{stages.get('capture', 0):.2f}",
                 f"{stages.get('DecomposePass', 0):.2f}", f"{passes:.2f}",
                 f"{stages.get('lower', 0):.2f}", f"{stages.get('serialize', 0):.2f}",
                 f"{stages['check']:.2f}" if "check" in stages else "-",
                 f"{n['export_s'] - stages.get('check', 0):.2f}",
                 f"{n['peak_mib']:.0f}", f"{row['weights_mib']:.0f}", f"{n['size_mib']:.2f}",
                 total_ops(n.get("tract_ops")), f"{n['latency_ms']:.3f}" if "latency_ms" in n else "-", *onnx_cells,
                 *load_cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def depth_sweep(depths: list[int]) -> str:
    """Export ALBERT-base (random weights, its layers sharing one set) at each depth with fx2nnef and
    torch.onnx.export; return a markdown table of tract's load time for both paths and their ratio."""
    import torch
    import transformers
    warnings.simplefilter("ignore")
    lines = ["| layers | NNEF ops | tract load s (NNEF) | tract load s (ONNX) | NNEF/ONNX |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="fx2nnef-depth-") as tmp:
        for depth in depths:
            torch.manual_seed(0)
            config = transformers.AlbertConfig(hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                                               embedding_size=128, vocab_size=30000, num_hidden_layers=depth)
            model = transformers.AlbertModel(config).eval()
            ids = torch.randint(5, 1000, (1, 16))
            inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            directory = Path(tmp) / str(depth)
            directory.mkdir()
            with contextlib.redirect_stdout(io.StringIO()):
                nnef, onnx = bench_nnef(model, inputs, directory, False), bench_onnx(model, inputs, directory)
            nnef_s, onnx_s = best_load(nnef["load"][0])[1], best_load(onnx["load"][0])[1]
            lines.append(f"| {depth} | {nnef['nnef_ops']} | {nnef_s:.3f} | {onnx_s:.3f} | {nnef_s / onnx_s:.2f} |")
            print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help=f"zoo names (default: {' '.join(DEFAULT_MODELS)})")
    parser.add_argument("--all", action="store_true", help="every model of the zoo (tests/zoo/models.py)")
    parser.add_argument("--check", action="store_true", help="export with check_io=True (adds the check stage)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the torch.onnx.export -> tract path")
    parser.add_argument("--big-llama", type=float, metavar="B", help="benchmark a Llama of about B billion params")
    parser.add_argument("--suffix", default=".nnef.tgz", help="archive kind: .nnef.tgz, .nnef.tar or .nnef (directory)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--budget", type=float, default=4.0, help="seconds of latency rounds per model (default 4)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--depth-sweep", nargs="*", type=int, metavar="LAYERS",
                        help="ALBERT-base's tract load time at these depths (default 2 4 8 16 32), NNEF and ONNX")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.depth_sweep is not None:
        print(depth_sweep(args.depth_sweep or [2, 4, 8, 16, 32]))
        return
    if args.child:
        print(json.dumps(child(args.child, args.check, not args.no_onnx, args.big_llama, args.suffix, args.budget)))
        return
    names = [f"llama-{args.big_llama}B"] if args.big_llama else (
        list(catalogue().ZOO) if args.all else args.models or DEFAULT_MODELS)
    rows = []
    for name in names:
        rows.append(run_child(name, args))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(table(rows))
    for row in rows:
        if "nnef" in row:
            print(f"\n{row['model']}: peak RSS during export {row['nnef']['peak_rss_mib']:.0f} MiB = "
                  f"{row['nnef']['peak_rss_mib'] / row['weights_mib']:.2f} x the weights ({row['weights_mib']:.0f} MiB); "
                  f"RSS before export {row['rss_before_mib']:.0f} MiB; stages (s): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in row["nnef"]["stages"].items()))
    for row in rows:
        if "tract_ops" in row.get("nnef", {}):
            ops = ", ".join(f"{k} {v}" for k, v in sorted(row["nnef"]["tract_ops"].items()))
            print(f"\n{row['model']} tract ops (NNEF): {ops}")
            if "tract_ops" in (row.get("onnx") or {}):
                ops = ", ".join(f"{k} {v}" for k, v in sorted(row["onnx"]["tract_ops"].items()))
                print(f"{row['model']} tract ops (ONNX): {ops}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
