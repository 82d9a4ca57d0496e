"""The `fx2nnef` command line.

    fx2nnef demo                         export the built-in ALBERT example and check it in tract
    fx2nnef export <hf-model-dir> <out>  export a saved Hugging Face model (task and inputs from its config)
    fx2nnef inspect <archive>            signature, symbols, operations, weights and properties of an archive
    fx2nnef llm -d <hf-dir> -e <out-dir> a causal LM with its KV cache as IO, checked by generating tokens
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from .errors import CaptureError, FX2NNEFError


def demo(args: argparse.Namespace) -> int:
    """Export the random-weight ALBERT example, check it in tract, print the signature and result."""
    from . import TractNNEF, export_model_to_nnef
    from .backends.tract import format_report
    from .examples import albert

    model, inputs = albert(num_hidden_layers=args.layers)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    report = export_model_to_nnef(
        model=model, args=[inputs[k] for k in names], file_path_export=Path(args.output),
        inference_target=TractNNEF(version=TractNNEF.latest_version(), check_io=not args.no_check,
                                   dynamic_axes={n: {0: "B", 1: "S"} for n in names} if args.dynamic else None),
        input_names=names, output_names=["output"], debug_bundle_path=Path(args.debug_bundle))
    size = sum(f.stat().st_size for f in report.path.rglob("*") if f.is_file()) if report.path.is_dir() \
        else report.path.stat().st_size
    print(f"signature: {report.signature}")
    print("timings:   " + ", ".join(f"{k} {v:.2f}s" for k, v in report.timings.items())
          + f" (total {sum(report.timings.values()):.2f}s)")
    if report.checks:
        for label, reports in report.checks.items():
            print(f"tract check at {label}: passed\n" + format_report(reports))
    elif report.check is not None:
        print("tract check: passed\n" + format_report(report.check))
    else:
        print("tract check: skipped (--no-check)")
    print(f"archive:   {report.path.resolve()} ({size / 1e6:.1f} MB)")
    return 0


def export(args: argparse.Namespace) -> int:
    """Export a Hugging Face model directory to an NNEF archive and check it in tract (unless --no-check)."""
    from . import TractNNEF, export_model_to_nnef, hub
    from .backends.tract import format_report

    loaded = hub.load(args.model_dir, task=args.task, dtype=args.dtype, trust_remote_code=args.trust_remote_code,
                      batch=args.batch, sequence_length=args.sequence_length, dynamic=not args.static)
    target = TractNNEF(version=args.tract_version or TractNNEF.latest_version(), check_io=args.check,
                       dynamic_axes=loaded.dynamic_axes or None,
                       check_io_tolerance=args.tolerance or ("approximate" if args.dtype == "f32" else (1e-2, 1e-2)))
    try:
        report = export_model_to_nnef(loaded.model, loaded.inputs, args.output, target,
                                      debug_bundle_path=args.debug_bundle)
    except CaptureError as error:  # e.g. a ViT's position table fixes the image size: keep those axes static
        forced = {(name, int(axis)) for name, axis in re.findall(r"input '(\w+)' axis (\d+) \(\w+\) is forced",
                                                                 str(error))}
        if not forced:
            raise
        axes = {name: {a: s for a, s in dims.items() if (name, a) not in forced}
                for name, dims in loaded.dynamic_axes.items()}
        logging.getLogger("fx2nnef").warning("the model fixes %s: those axes stay static", ", ".join(
            f"{name} axis {axis}" for name, axis in sorted(forced)))
        report = export_model_to_nnef(loaded.model, loaded.inputs, args.output,
                                      target.with_dynamic_axes({k: v for k, v in axes.items() if v} or None),
                                      debug_bundle_path=args.debug_bundle)
    print(f"model:     {type(loaded.model).__name__} ({loaded.task})")
    print(f"signature: {report.signature}")
    for label, reports in report.checks.items():
        print(f"tract check at {label}: passed ({report.checked_with})\n" + format_report(reports))
    if not report.checks:
        print("tract check: skipped (--no-check)")
    print(f"archive:   {report.path.resolve()}")
    return 0


def inspect(args: argparse.Namespace) -> int:
    """Print what an NNEF archive holds (or, with --json, the same as JSON)."""
    import dataclasses
    import json

    from .backends.nnef.reader import read_archive

    summary = read_archive(args.archive)
    if args.json:
        data = {field.name: getattr(summary, field.name) for field in dataclasses.fields(summary)}
        data.update(operations=dict(summary.operations.most_common()), bytes_per_dtype=summary.bytes_per_dtype(),
                    tensors=[dataclasses.asdict(tensor) for tensor in summary.tensors])
        print(json.dumps(data, indent=2))
        return 0
    print(summary.signature or "(no graph signature)")
    for name, shape, dtype in summary.inputs:
        print(f"  input {name}: {shape} {dtype}")
    for title, items in (("registries", summary.registries), ("symbols", summary.symbols),
                         ("assertions", summary.assertions)):
        print(f"{title}: {', '.join(items) or '-'}")
    print(f"operations: {sum(summary.operations.values())}")
    for name, count in summary.operations.most_common():
        print(f"  {count:6d}  {name}")
    print(f"tensor files: {len(summary.tensors)}" + (f", {summary.quantized} graph.quant entries" if summary.quantized else ""))
    for dtype, size in summary.bytes_per_dtype().items():
        print(f"  {dtype:8s} {size / 2**20:10.2f} MiB")
    print("properties:")
    for key, value in summary.properties.items():
        print(f"  {key}: {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command; fx2nnef errors exit with status 1."""
    parser = argparse.ArgumentParser(prog="fx2nnef", description=__doc__)
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("demo", help="export the built-in random-weight ALBERT and check it in tract")
    p.add_argument("--output", default="albert_v2.nnef.tgz", help="archive path (.tgz, .tar or a directory)")
    p.add_argument("--debug-bundle", default="debug.tgz", help="where a failed check writes its debug bundle")
    p.add_argument("--layers", type=int, default=12, help="number of ALBERT layers (default: 12, albert-base)")
    p.add_argument("--no-check", action="store_true", help="skip running the archive in tract")
    p.add_argument("--dynamic", action="store_true",
                   help="dynamic batch (B) and sequence (S) axes; the check then runs three sizes")
    p.set_defaults(run=demo)

    from .hub import TASKS
    p = commands.add_parser("export", help="export a saved Hugging Face model directory (no download) to NNEF",
                            description="Export the model saved in MODEL_DIR (config.json + weights, e.g. from "
                            "save_pretrained) to an NNEF archive for tract, with example inputs built from its config "
                            "and dynamic batch/sequence (text, audio) or batch/height/width (images) axes, then "
                            "check it in tract.")
    p.add_argument("model_dir", help="directory with config.json and the weights")
    p.add_argument("output", help="archive path: .nnef.tgz, .nnef.tar or a directory")
    p.add_argument("--task", choices=sorted(TASKS), help="the model head to export (default: the architecture "
                   "named in config.json)")
    p.add_argument("--dtype", choices=("f32", "f16", "bf16"), default="f32", help="weights and compute dtype "
                   "(bf16 is computed as f32: docs/dtypes.md)")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="run the archive in tract and compare with PyTorch (default: on)")
    p.add_argument("--static", action="store_true", help="fix every axis to the example's size")
    p.add_argument("--batch", type=int, default=2, help="example batch size (default 2)")
    p.add_argument("--sequence-length", type=int, default=8, help="example token count (default 8)")
    p.add_argument("--tract-version", default=None, help="tract release the archive is for (default: the newest)")
    p.add_argument("--tolerance", default=None, help="check tolerance: exact, approximate, close, very, super, ultra")
    p.add_argument("--trust-remote-code", action="store_true", help="run the model directory's own Python code")
    p.add_argument("--debug-bundle", default=None, help="where a failed check writes its debug bundle")
    p.set_defaults(run=export)

    p = commands.add_parser("inspect", help="print what an NNEF archive holds",
                            description="Print an archive's signature and inputs, tract registries, symbols and "
                            "assertions, operation histogram, weight bytes per dtype and properties.")
    p.add_argument("archive", help=".nnef.tgz, .nnef.tar or directory")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(run=inspect)

    from .llm.cli import add_parser
    add_parser(commands)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="fx2nnef: %(message)s")
    try:
        return args.run(args)
    except FX2NNEFError as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
