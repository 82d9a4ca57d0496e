"""The fuzz table: N distinct random programs (tests/fuzz/programs.py) through fx2nnef and, in the
same run, through torch.onnx.export -> tract's ONNX loader; one outcome per program and route.

    python benchmarks/fuzz.py --cases 2000              # both routes
    python benchmarks/fuzz.py --cases 2000 --onnx-cases 300   # the ONNX route on the first 300 only
    python benchmarks/fuzz.py --cases 300 --no-onnx     # fx2nnef only
    python benchmarks/fuzz.py --cases 2000 --details failures.txt --json rows.json

Each archive runs in a child process (an abort in tract is an outcome, not the end of the run).
Outcomes: pass / clear export error / raw error (not the exporter's own type) / internal crash
wrapped as a clean error / tract load or run error after a successful export / process abort /
silent wrong numbers (beyond "approx", or the f16 whole-model level of docs/dtypes.md when the
program has an f16 value).
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

import harness  # noqa: E402
from programs import programs  # noqa: E402


class Enough(Exception):
    """Raised inside the hypothesis loop once N distinct programs ran."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300, help="distinct programs to run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-onnx", action="store_true", help="fx2nnef only")
    parser.add_argument("--onnx-cases", type=int, help="run the torch.onnx route on the first N programs only "
                        "(torch.onnx.export takes ~4 s a program on 2 cores)")
    parser.add_argument("--details", type=Path, help="write every program that did not pass, with its error")
    parser.add_argument("--json", type=Path, help="write one row per program")
    options = parser.parse_args()

    routes = {"fx2nnef": harness.run_fx2nnef}
    if not options.no_onnx:
        routes["torch.onnx -> tract"] = harness.run_onnx_route
    counts = {route: collections.Counter() for route in routes}
    seconds = collections.Counter()
    rows, seen = [], set()
    details = options.details.open("w") if options.details else None
    start = time.perf_counter()

    @seed(options.seed)
    @settings(max_examples=50 * options.cases, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(programs())
    def run(program):
        source = program.source()
        if source in seen:
            return
        seen.add(source)
        row = {"program": source}
        for route, fn in routes.items():
            if route != "fx2nnef" and options.onnx_cases is not None and len(seen) > options.onnx_cases:
                continue
            began = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                outcome = fn(program)
            seconds[route] += time.perf_counter() - began
            counts[route][outcome.kind] += 1
            row[route] = outcome.kind
            if details and outcome.kind != harness.PASS:
                details.write(f"{'=' * 70}\n{route}: {outcome.kind}\n{source}\n{outcome.detail[:3000]}\n")
                details.flush()
        rows.append(row)
        if len(seen) % 100 == 0:
            print(f"{len(seen)} programs, {time.perf_counter() - start:.0f} s: "
                  + "; ".join(f"{r}: {dict(c)}" for r, c in counts.items()), file=sys.stderr, flush=True)
        if len(seen) >= options.cases:
            raise Enough

    try:
        run()
    except* Enough:  # hypothesis may report it as a group (it replays the example that raised it)
        pass
    ran = {route: max(sum(c.values()), 1) for route, c in counts.items()}
    print(f"\n{len(seen)} distinct programs, seed {options.seed}, {time.perf_counter() - start:.0f} s "
          f"({', '.join(f'{r}: {seconds[r] / ran[r]:.2f} s/program' for r in routes)})\n")
    print("| outcome | " + " | ".join(f"{r} ({ran[r]} programs)" for r in routes) + " |")
    print("|---|" + "---|" * len(routes))
    for kind in harness.KINDS:
        cells = [f"{counts[r][kind]} ({100 * counts[r][kind] / ran[r]:.1f} %)" for r in routes]
        print(f"| {kind} | " + " | ".join(cells) + " |")
    if options.json:
        options.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
