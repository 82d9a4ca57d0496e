"""`fx2nnef llm`: the LLM export on the command line, with the flag names of torch_to_nnef's
`t2n_export_llm_to_tract`, so its scripts switch by renaming the command."""
from __future__ import annotations

import argparse

from ..errors import ExportInputError
from .export import COMPRESSIONS, DTYPES


def add_parser(commands) -> None:
    """Add the `llm` command to the `fx2nnef` sub-command parser."""
    p = commands.add_parser("llm", help="export a Hugging Face causal LM directory with its KV cache as IO and check "
                            "it by generating tokens in tract", description=__doc__)
    p.add_argument("-d", "--local-dir", required=True, help="Hugging Face model directory (config.json + weights)")
    p.add_argument("-e", "--export-dirpath", required=True, help="directory to create with the archive and companions")
    p.add_argument("-dt", "--force-module-dtype", choices=sorted(DTYPES), default="f32",
                   help="weights, compute and cache dtype (bf16 is computed as f32)")
    p.add_argument("-c", "--compression-method", choices=sorted(COMPRESSIONS), default=None,
                   help="Q4_0 weights for every Linear (q4_0, min_max_q4_0), and the embedding too (*_with_embeddings)")
    p.add_argument("--num-logits-to-keep", default="1",
                   help="logits of the last N positions (0: all), or 'dynamic' (an input says how many)")
    p.add_argument("--batch", action="store_true", help="symbolic batch B with an attention mask (left padding)")
    p.add_argument("-nv", "--no-verify", action="store_true", help="skip the generation check in tract")
    p.add_argument("-dwtac", "--dump-with-tokenizer-and-conf", action="store_true",
                   help="also write the tokenizer (an error when it cannot load) and the config")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export directory")
    p.add_argument("--trust-remote-code", action="store_true", help="run the model directory's own Python code")
    p.add_argument("--tract-version", default=None, help="tract release the archive is for (default: the newest)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Export the model directory and print what was written."""
    from .export import export_llm

    keep = args.num_logits_to_keep if args.num_logits_to_keep == "dynamic" else _integer(args.num_logits_to_keep)
    report = export_llm(args.local_dir, args.export_dirpath, dtype=args.force_module_dtype,
                        compression=args.compression_method, num_logits_to_keep=keep, batch=args.batch,
                        verify=not args.no_verify, dump_with_tokenizer_and_conf=args.dump_with_tokenizer_and_conf,
                        overwrite=args.overwrite, trust_remote_code=args.trust_remote_code,
                        tract_version=args.tract_version)
    print(f"signature: {report.signature}")
    if report.generation is not None:
        g = report.generation
        print(f"generation check: {len(g.tokens)} tokens equal to transformers' greedy generation "
              f"(prompt logits within {g.prompt_max_abs:.2g}{f', {len(g.ties)} ties' if g.ties else ''})")
    else:
        print("generation check: skipped (--no-verify)")
    print(f"archive:   {report.path.resolve()}")
    return 0


def _integer(text: str) -> int:
    """Parse --num-logits-to-keep's integer form."""
    try:
        return int(text)
    except ValueError:
        raise ExportInputError(f"--num-logits-to-keep: give an integer or 'dynamic', not {text!r}") from None
