"""Models larger than RAM: export Llama-shaped random checkpoints (safetensors shards on disk) with
their weights left on disk, and report peak anonymous memory, export time and weight-streaming
speed next to the disk's own write speed, measured in the same run.

    python benchmarks/bench_big.py                    # 0.5 B, 1.1 B and 3 B parameters, f16
    python benchmarks/bench_big.py --sizes 0.5 --keep  # one size, keep the files

Each export runs in a child process (a model built under accelerate.init_empty_weights(),
`export_model_to_nnef(..., weights=checkpoint_dir)` to a .nnef.tar); the parent samples the
child's RssAnon (anonymous memory: mapped checkpoint pages are page cache and do not count) every
20 ms. The archive is then checked against the checkpoint byte for byte
(`fx2nnef.compare_with_checkpoint`), and a cut-down copy of the architecture (2 layers, same
widths, smaller vocabulary) is exported with check_io=True to run it in tract. The disk baseline
writes as many bytes as the archive holds with `dd bs=16M` (no sync, as the export), just before
and just after the export: the mean of the two. A second baseline, `cp` of the checkpoint's shards,
reads and writes as much as the export must.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# name -> Llama config (hidden, layers, heads, kv heads, intermediate, vocab)
SHAPES = {
    "0.5": dict(hidden_size=1536, num_hidden_layers=16, num_attention_heads=12, num_key_value_heads=4,
                intermediate_size=4096, vocab_size=32000),
    "1.1": dict(hidden_size=2048, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
                intermediate_size=5632, vocab_size=32000),
    "3": dict(hidden_size=3072, num_hidden_layers=28, num_attention_heads=24, num_key_value_heads=8,
              intermediate_size=8192, vocab_size=128256),
}
SHARD_BYTES = 2 << 30

CHILD = r'''
import sys, json, time, torch, transformers, accelerate
from fx2nnef import export_model_to_nnef, TractNNEF
config = transformers.LlamaConfig(**json.loads(sys.argv[1]), tie_word_embeddings=False)
q4_0 = sys.argv[4:] == ["q4_0"]  # Q4_0 weights decode to f32: the model computes in f32 (f16 read, converted)
with accelerate.init_empty_weights():
    model = transformers.LlamaForCausalLM._from_config(config, dtype=torch.float32 if q4_0 else torch.float16).eval()
start = time.perf_counter()
quant = {"weight_quant": "q4_0", "weight_quant_layers": ("linear", "embedding")} if q4_0 else {}
report = export_model_to_nnef(model, {"input_ids": torch.ones(1, 8, dtype=torch.long)}, sys.argv[3],
                              TractNNEF(check_io=False, **quant), weights=sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - start, "timings": report.timings}))
'''


def llama_tensors(shape: dict) -> list[tuple[str, tuple[int, ...]]]:
    """Return (name, shape) of every weight of a Llama of `shape`, in checkpoint order."""
    h, layers, inter, vocab = shape["hidden_size"], shape["num_hidden_layers"], shape["intermediate_size"], \
        shape["vocab_size"]
    kv = h // shape["num_attention_heads"] * shape["num_key_value_heads"]
    names = [("model.embed_tokens.weight", (vocab, h))]
    for i in range(layers):
        p = f"model.layers.{i}."
        names += [(p + "self_attn.q_proj.weight", (h, h)), (p + "self_attn.k_proj.weight", (kv, h)),
                  (p + "self_attn.v_proj.weight", (kv, h)), (p + "self_attn.o_proj.weight", (h, h)),
                  (p + "mlp.gate_proj.weight", (inter, h)), (p + "mlp.up_proj.weight", (inter, h)),
                  (p + "mlp.down_proj.weight", (h, inter)), (p + "input_layernorm.weight", (h,)),
                  (p + "post_attention_layernorm.weight", (h,))]
    return names + [("model.norm.weight", (h,)), ("lm_head.weight", (vocab, h))]


def write_checkpoint(directory: Path, shape: dict, seed: int = 0) -> int:
    """Write random f16 safetensors shards (+ index) for a Llama of `shape`, streaming; return the
    parameter count. Values are small random f16 numbers (|x| < 0.06), written 64 MiB at a time."""
    rng = np.random.default_rng(seed)
    shards, current, size = [], [], 0
    for name, dims in llama_tensors(shape):
        nbytes = math.prod(dims) * 2
        if current and size + nbytes > SHARD_BYTES:
            shards.append(current)
            current, size = [], 0
        current.append((name, dims))
        size += nbytes
    shards.append(current)
    weight_map, count = {}, 0
    for index, tensors in enumerate(shards):
        file = f"model-{index + 1:05d}-of-{len(shards):05d}.safetensors"
        header, offset = {}, 0
        for name, dims in tensors:
            header[name] = {"dtype": "F16", "shape": list(dims), "data_offsets": [offset, offset + math.prod(dims) * 2]}
            offset += math.prod(dims) * 2
            weight_map[name] = file
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        with open(directory / file, "wb") as f:
            f.write(len(text).to_bytes(8, "little") + text)
            for name, dims in tensors:
                left = math.prod(dims)
                count += left
                while left:
                    n = min(left, 32 << 20)
                    bits = rng.integers(0x1000, 0x2B00, n, dtype=np.uint16) | (rng.integers(0, 2, n, dtype=np.uint16) << 15)
                    f.write(bits.tobytes())
                    left -= n
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return count


def peak_anonymous(command: list[str]) -> tuple[subprocess.CompletedProcess, int]:
    """Run `command`, sampling its RssAnon every 20 ms; return the finished process and the peak (bytes)."""
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while child.poll() is None:
        try:
            for line in open(f"/proc/{child.pid}/status"):
                if line.startswith("RssAnon:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except OSError:
            pass
        time.sleep(0.02)
    out, err = child.communicate()
    return subprocess.CompletedProcess(command, child.returncode, out, err), peak


def disk_speed(directory: Path, nbytes: int) -> float:
    """Return dd's write speed (bytes/s) for `nbytes` into `directory` (16 MiB blocks, no sync)."""
    target = directory / "dd.bin"
    start = time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=16M", f"count={max(1, nbytes >> 24)}"],
                   check=True, capture_output=True)
    seconds = time.perf_counter() - start
    target.unlink()
    return (max(1, nbytes >> 24) << 24) / seconds


def copy_speed(directory: Path) -> float:
    """Return `cp`'s speed (bytes/s) copying the checkpoint's shards: reading them and writing as
    much, the work an export that streams the weights from that disk cannot avoid."""
    shards = sorted(directory.glob("*.safetensors"))
    target = directory / "cp"
    target.mkdir(exist_ok=True)
    start = time.perf_counter()
    subprocess.run(["cp", "--reflink=never", *map(str, shards), str(target)], check=True)
    seconds = time.perf_counter() - start
    shutil.rmtree(target)
    return sum(f.stat().st_size for f in shards) / seconds


def cut_down_check(shape: dict, directory: Path) -> str:
    """Export 2 layers of the architecture (vocabulary 1000) from a checkpoint on disk, run the
    archive in tract and compare with the same model loaded in PyTorch; return the result."""
    import accelerate
    import torch
    import transformers

    import fx2nnef
    from fx2nnef.backends.tract import run
    small = dict(shape, num_hidden_layers=2, vocab_size=1000)
    checkpoint = directory / "small"
    checkpoint.mkdir(parents=True, exist_ok=True)
    write_checkpoint(checkpoint, small, seed=1)
    config = transformers.LlamaConfig(**small, tie_word_embeddings=False)
    config.save_pretrained(checkpoint)
    with accelerate.init_empty_weights():
        empty = transformers.LlamaForCausalLM._from_config(config, dtype=torch.float16).eval()
    ids = torch.randint(0, 1000, (1, 8))
    report = fx2nnef.export_model_to_nnef(empty, {"input_ids": ids}, directory / "small.nnef.tar",
                                          fx2nnef.TractNNEF(check_io=False), weights=checkpoint)
    got = run(report.path, [ids.numpy()], report.graph.registries)[0].astype(np.float32)
    loaded = transformers.LlamaForCausalLM.from_pretrained(checkpoint, dtype=torch.float16).eval()
    with torch.no_grad():
        expected = loaded(input_ids=ids, use_cache=False).logits.float().numpy()
    error = float(np.abs(got - expected).max())
    return f"tract vs PyTorch max abs error {error:.2e} on logits of magnitude {np.abs(expected).max():.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoints and archives")
    parser.add_argument("--q4_0", action="store_true", help="also export with Q4_0 weights packed while written")
    args = parser.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="fx2nnef-big-"))
    import fx2nnef
    rows = []
    for size in args.sizes:
        work = root / size
        work.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        params = sum(math.prod(dims) for _, dims in llama_tensors(SHAPES[size]))
        if not (work / "model.safetensors.index.json").exists():  # kept by an earlier --keep run
            write_checkpoint(work, SHAPES[size])
        print(f"{size} B: {params / 1e9:.2f} G parameters ({params * 2 / 2**30:.2f} GiB) in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        archive = work / "model.nnef.tar"
        archive.unlink(missing_ok=True)
        dd_before = disk_speed(work, params * 2)
        done, peak = peak_anonymous([sys.executable, "-c", CHILD, json.dumps(SHAPES[size]), str(work), str(archive)])
        if done.returncode:
            raise SystemExit(done.stderr[-3000:])
        result = json.loads(done.stdout.strip().splitlines()[-1])
        written = archive.stat().st_size
        write_seconds = result["timings"]["serialize"]
        dd = (dd_before + disk_speed(work, written)) / 2
        cp = copy_speed(work)
        start = time.perf_counter()
        problems = fx2nnef.compare_with_checkpoint(archive, work)
        compared = time.perf_counter() - start
        rows.append((size, params, result["seconds"], peak, written, written / write_seconds, dd, cp, len(problems)))
        print(f"  export {result['seconds']:.1f} s (writing {write_seconds:.1f} s), peak RssAnon {peak / 2**30:.2f} GiB, "
              f"archive {written / 2**30:.2f} GiB at {written / write_seconds / 2**20:.0f} MiB/s vs dd "
              f"{dd / 2**20:.0f} MiB/s ({written / write_seconds / dd:.0%}), cp of the checkpoint {cp / 2**20:.0f} MiB/s "
              f"({written / write_seconds / cp:.0%}); {len(problems)} tensors differ from the checkpoint (compared in "
              f"{compared:.0f} s)", flush=True)
        if args.q4_0:  # the same export with Q4_0 linear and embedding weights, packed while written
            q4 = work / "model_q4_0.nnef.tar"
            q4.unlink(missing_ok=True)
            done, q4_peak = peak_anonymous([sys.executable, "-c", CHILD, json.dumps(SHAPES[size]), str(work), str(q4),
                                            "q4_0"])
            if done.returncode:
                raise SystemExit(done.stderr[-3000:])
            q4_result = json.loads(done.stdout.strip().splitlines()[-1])
            q4_problems = fx2nnef.compare_with_checkpoint(q4, work)
            print(f"  Q4_0: export {q4_result['seconds']:.1f} s, peak RssAnon {q4_peak / 2**30:.2f} GiB, archive "
                  f"{q4.stat().st_size / 2**30:.2f} GiB ({q4.stat().st_size / written:.3f}x the f16 archive), "
                  f"{len(q4_problems)} tensors differ from the checkpoint packed again", flush=True)
        if not args.keep:
            shutil.rmtree(work)
    print(f"cut-down copy of the {args.sizes[-1]} B architecture: "
          f"{cut_down_check(SHAPES[args.sizes[-1]], root / 'cut')}")
    print("\n| parameters | checkpoint GiB | export s | peak RssAnon GiB | archive MiB/s | dd MiB/s | vs dd "
          "| cp MiB/s | vs cp | differing tensors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size, params, seconds, peak, written, speed, dd, cp, bad in rows:
        print(f"| {params / 1e9:.2f} B | {params * 2 / 2**30:.2f} | {seconds:.1f} | {peak / 2**30:.2f} | "
              f"{speed / 2**20:.0f} | {dd / 2**20:.0f} | {speed / dd:.0%} | {cp / 2**20:.0f} | {speed / cp:.0%} | {bad} |")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
