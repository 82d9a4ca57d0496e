"""Sweep PyTorch's OpInfo database through fx2nnef → tract and report the pass rate.

    python benchmarks/opinfo_coverage.py [--samples N] [--ops NAME ...] [--dtype complex64] [--json out.json]

Every float32 OpInfo entry is exported on its first N samples (default 3) with check_io at abs 1e-4 +
rel 1e-4 (or the looser tolerance the table documents for that op), run in tract and compared with
eager PyTorch. An entry passes when every sample torch.export can capture passes; entries with no
capturable sample are reported but excluded from the rate. `--dtype complex64` sweeps every entry that
supports complex64 instead, on complex samples (complex inputs and outputs are real pairs in the archive). The sweep runs in a child process that is
restarted when tract aborts it, so a crash counts as a failure of that entry only.

Timing on the 2-core dev machine: `--samples 1` over all 677 float32 entries takes ~10 minutes (each
sample is one torch.export capture + decomposition, ~1-2 s, plus a ~10 ms tract run); the default test
run (tests/ops/test_opinfo.py, the table's 117 entry/dtype cases on one sample each) takes ~2 minutes.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "ops"))
sys.path.insert(0, str(HERE.parent))

ENTRY_TIMEOUT = 180.0


def worker(names: list[str], samples: int, dtype_name: str = "float32") -> None:
    """Run each named entry and print one JSON line per entry (a 'begin' line first)."""
    import torch

    import opinfo_harness as h
    from opinfo_table import TABLE

    torch.set_num_threads(1)
    dtype = getattr(torch, dtype_name)
    db = h.op_db()
    for name in names:
        print(json.dumps({"begin": name}), flush=True)
        spec = TABLE.get(name)
        tolerance = spec.tolerance if spec else None
        try:
            results = h.run_entry(db[name], dtypes=(dtype,), limit=samples, tolerance=tolerance,
                                  statistical=bool(spec and spec.statistical))
        except Exception as e:  # noqa: BLE001 - e.g. sample generation failing: recorded, not fatal
            results = [(dtype_name, h.Outcome("other", f"{type(e).__name__}: {e}"[:300]))]
        outcomes = [o for _, o in results]
        status = h.entry_status(outcomes)
        print(json.dumps({"name": name, "category": status.category, "message": status.message,
                          "samples": len(outcomes), "seconds": sum(o.seconds for o in outcomes)}), flush=True)


def _spawn(names: list[str], samples: int, dtype_name: str) -> tuple[subprocess.Popen, queue.Queue]:
    child = subprocess.Popen([sys.executable, __file__, "--worker", "--samples", str(samples), "--dtype", dtype_name,
                              "--ops", *names],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=HERE.parent)
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in child.stdout:
            lines.put(line)
        lines.put(None)
    threading.Thread(target=pump, daemon=True).start()
    return child, lines


def sweep(names: list[str], samples: int, progress: bool, dtype_name: str = "float32") -> list[dict]:
    """Run the entries in a child process, restarting it after a crash or a timeout."""
    results: list[dict] = []
    todo = list(names)
    while todo:
        child, lines = _spawn(todo, samples, dtype_name)
        current = None
        while True:
            try:
                line = lines.get(timeout=ENTRY_TIMEOUT)
            except queue.Empty:
                child.kill()
                results.append({"name": current or todo[0], "category": "timeout",
                                "message": f"no result in {ENTRY_TIMEOUT:.0f} s", "samples": 0, "seconds": 0})
                break
            if line is None:
                child.wait()
                if current is not None:
                    results.append({"name": current, "category": "crash",
                                    "message": f"the process died (exit {child.returncode})", "samples": 0,
                                    "seconds": 0})
                break
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if "begin" in record:
                current = record["begin"]
                continue
            current = None
            results.append(record)
            if progress:
                print(f"[{len(results)}/{len(names)}] {record['name']}: {record['category']} {record['message'][:120]}",
                      file=sys.stderr, flush=True)
        done = {r["name"] for r in results}
        todo = [n for n in todo if n not in done]
    return results


def summarize(results: list[dict], dtype_name: str = "float32") -> str:
    """Return the summary table: considered, passed, rate, failures by category."""
    import opinfo_harness as h
    excluded = h.EXCLUDED
    considered = [r for r in results if r["category"] not in excluded]
    passed = [r for r in considered if r["category"] == "passed"]
    failures = collections.Counter(r["category"] for r in considered if r["category"] != "passed")
    skipped = collections.Counter(r["category"] for r in results if r["category"] in excluded)
    lines = [
        f"{dtype_name + ' OpInfo entries run:':<37}{len(results)}",
        f"excluded (not capturable etc.):      {sum(skipped.values())}  " + ", ".join(f"{k}: {v}" for k, v in skipped.items()),
        f"entries considered:                  {len(considered)}",
        f"entries passed:                      {len(passed)}",
        f"pass rate:                           {100 * len(passed) / max(len(considered), 1):.1f}%",
        "failures by category:",
    ] + [f"  {cat:<22} {n}" for cat, n in failures.most_common()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=3, help="samples per entry (default 3)")
    parser.add_argument("--ops", nargs="*", help="OpInfo full names to run (default: every entry of the dtype)")
    parser.add_argument("--dtype", default="float32", help="the dtype of the samples (default float32)")
    parser.add_argument("--json", help="write every entry's result to this file")
    parser.add_argument("--failures", action="store_true", help="list each failing entry with its message")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.ops, args.samples, args.dtype)
        return
    import torch

    import opinfo_harness as h
    dtype = getattr(torch, args.dtype)
    names = args.ops or [n for n, o in h.op_db().items() if dtype in o.supported_dtypes("cpu")]
    start = time.perf_counter()
    results = sweep(names, args.samples, progress=os.environ.get("OPINFO_PROGRESS") == "1", dtype_name=args.dtype)
    elapsed = time.perf_counter() - start
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.failures:
        for r in sorted(results, key=lambda r: (r["category"], r["name"])):
            if r["category"] != "passed":
                print(f"{r['category']:<18} {r['name']:<40} {r['message'][:200]}")
    print(summarize(results, args.dtype))
    print(f"wall time: {elapsed:.0f} s ({args.samples} samples per entry)")


if __name__ == "__main__":
    main()
