"""LLM export and decoding: fx2nnef.llm against torch eager, one thread.

    python benchmarks/bench_llm.py                 # ~125 M Llama in f32, f16 and Q4_0, then the 1.1 B export
    python benchmarks/bench_llm.py --no-1b         # without the 1.1 B row

Each configuration runs in a child process, which reports its peak resident memory (VmHWM). The
125 M Llama (hidden 768, 12 layers, 12 heads / 4 KV heads, ffn 2048, vocabulary 32000) is built
with random weights and exported with `export_llm(verify=False)` (the export time; the generation
check is timed apart on the f32 row); then the archive is loaded in tract (load + optimize), a
16-token prompt is run (median of 5) and 64 tokens are decoded feeding the cache back, and the
same prompt and decode run in torch eager (transformers' forward with its DynamicCache), one
thread each. The 1.1 B Llama (TinyLlama's shape: hidden 2048, 22 layers, 32 heads / 4 KV heads,
ffn 5632) is exported in f32 without the check: export time and peak memory against its weights.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMALL = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=4,
             intermediate_size=2048, vocab_size=32000, max_position_embeddings=2048)
LARGE = dict(hidden_size=2048, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
             intermediate_size=5632, vocab_size=32000, max_position_embeddings=2048)
PROMPT, DECODE = 16, 64


def peak_rss() -> int:
    """Return this process's peak resident memory in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def one(name: str, dtype: str, compression: str | None, size: dict, timed: bool, check: bool) -> dict:
    """Export one configuration and (if `timed`) time tract and torch on it; return the row."""
    import numpy as np
    import torch
    from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

    from fx2nnef.backends.tract.runner import execute, load, prepare
    from fx2nnef.llm import export_llm

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**size)).eval()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    out = Path(tempfile.mkdtemp(prefix="bench-llm-")) / "export"
    start = time.perf_counter()
    report = export_llm(model, out, dtype=dtype, compression=compression, verify=False)
    row = {"model": name, "export s": time.perf_counter() - start, "peak RSS GiB": peak_rss() / 2**30,
           "weights GiB": weights / 2**30, "archive MB": report.path.stat().st_size / 1e6}
    if check:
        start = time.perf_counter()
        export_llm(model, out.with_name("checked"), dtype=dtype, compression=compression)
        row["export + check s"] = time.perf_counter() - start
    if not timed:
        return row
    start = time.perf_counter()
    runnable = prepare(load(report.path, report.graph.registries), report.path)
    row["tract load s"] = time.perf_counter() - start
    cache_dtype = np.float16 if dtype == "f16" else np.float32
    heads, head_dim, layers = size["num_key_value_heads"], size["hidden_size"] // size["num_attention_heads"], \
        size["num_hidden_layers"]
    ids = np.random.default_rng(0).integers(0, size["vocab_size"], (1, PROMPT))
    empty = [np.zeros((1, heads, 0, head_dim), cache_dtype)] * (2 * layers)

    def tract_prompt():
        return execute(runnable, [ids, *empty], report.path)

    row["tract prompt ms"] = 1e3 * statistics.median(_times(tract_prompt, 5))
    logits, *cache = tract_prompt()
    start = time.perf_counter()
    for _ in range(DECODE):
        logits, *cache = execute(runnable, [logits[:, -1:].argmax(-1).astype(np.int64), *cache], report.path)
    row["tract tokens/s"] = DECODE / (time.perf_counter() - start)
    torch_model = model.half() if dtype == "f16" else model
    prompt = torch.from_numpy(ids)

    def torch_prompt():
        with torch.no_grad():
            return torch_model(input_ids=prompt, past_key_values=DynamicCache(), use_cache=True)

    row["torch prompt ms"] = 1e3 * statistics.median(_times(torch_prompt, 5))
    out = torch_prompt()
    cache = out.past_key_values
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(DECODE):
            token = out.logits[:, -1:].argmax(-1)
            out = torch_model(input_ids=token, past_key_values=cache, use_cache=True)
    row["torch tokens/s"] = DECODE / (time.perf_counter() - start)
    return row


def _times(fn, repeats: int) -> list[float]:
    """Return the wall times of `repeats` calls of fn (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


CONFIGS = {
    "125M f32": ("f32", None, SMALL, True, True),
    "125M f16": ("f16", None, SMALL, True, False),
    "125M Q4_0": ("f32", "q4_0", SMALL, True, True),
    "1.1B f32": ("f32", None, LARGE, False, False),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--no-1b", action="store_true", help="skip the 1.1 B export")
    args = parser.parse_args(argv)
    if args.one:
        print("ROW " + json.dumps(one(args.one, *CONFIGS[args.one])), flush=True)
        return
    rows = []
    for name in CONFIGS:
        if name.startswith("1.1B") and args.no_1b:
            continue
        child = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
        line = next((l for l in child.stdout.splitlines() if l.startswith("ROW ")), None)
        if line is None:
            print(f"{name}: failed\n{child.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(line[4:]))
        print(rows[-1], flush=True)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(f"{row[c]:.3g}" if isinstance(row.get(c), float) else str(row.get(c, "-"))
                                for c in columns) + " |")
    by = {row["model"]: row for row in rows}
    if "125M f32" in by and "125M Q4_0" in by:
        f32, q4 = by["125M f32"], by["125M Q4_0"]
        print(f"\n125M f32 export <= 10 s: {f32['export s']:.1f} s; Q4_0 <= 15 s: {q4['export s']:.1f} s")
        print(f"Q4_0 decode / f32 decode in tract (>= 2): {q4['tract tokens/s'] / f32['tract tokens/s']:.2f}")
        print(f"f32 decode, tract / torch eager (>= 1): {f32['tract tokens/s'] / f32['torch tokens/s']:.2f}")
    if "1.1B f32" in by:
        big = by["1.1B f32"]
        print(f"1.1B f32 export <= 60 s: {big['export s']:.1f} s; peak RSS / weights (<= 1.2): "
              f"{big['peak RSS GiB'] / big['weights GiB']:.2f}")


if __name__ == "__main__":
    main()
