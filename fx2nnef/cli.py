"""The `fx2nnef` command line: `fx2nnef demo` exports the built-in ALBERT example and checks it in tract."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .errors import FX2NNEFError


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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="fx2nnef: %(message)s")
    try:
        return args.run(args)
    except FX2NNEFError as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
