"""Run an archive with a tract command-line binary (`TractNNEF(specific_tract_binary_path=...)`).

The binary reads the inputs from an .npz bundle keyed by input name and saves the outputs to an
.npz keyed by output name, as `tract <archive> --nnef-tract-core ... -O run --input-from-bundle
in.npz --save-outputs-npz out.npz` does; the comparison with PyTorch stays fx2nnef's.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from fx2nnef.errors import TractCheckError

# registry id -> the command-line switch that enables it
CLI_SWITCHES = {"tract_core": "--nnef-tract-core", "tract_transformers": "--nnef-tract-transformers",
                "tract_extra": "--nnef-tract-extra", "tract_pulse": "--nnef-tract-pulse",
                "pulse": "--nnef-tract-pulse", "tract_onnx": "--nnef-tract-onnx"}


def cli_version(binary: str | os.PathLike) -> str:
    """Return the version the binary reports (`tract --version` prints "tract 0.21.13")."""
    try:
        text = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60).stdout
    except OSError as exc:
        raise TractCheckError(f"cannot run the tract binary {binary}: {exc}") from None
    match = re.search(r"(\d+\.\d+\.\d+)", text)
    if not match:
        raise TractCheckError(f"{binary} --version printed {text.strip()!r}, not a tract version")
    return match.group(1)


def run_cli(binary: str | os.PathLike, archive: str | os.PathLike, inputs: Mapping[str, np.ndarray],
            output_names: Iterable[str], registries: Iterable[str] = (), timeout: float = 600.0) -> list[np.ndarray]:
    """Run `archive` with the tract binary on `inputs` (by input name); return the outputs, in graph
    order (`output_names` says how many). Any failure is a TractCheckError quoting tract's stderr."""
    switches = sorted({CLI_SWITCHES[r] for r in registries if r in CLI_SWITCHES} | {"--nnef-tract-core"})
    with tempfile.TemporaryDirectory(prefix="fx2nnef-tract-cli-") as tmp:
        given, saved = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        np.savez(given, **inputs)
        command = [str(binary), str(archive), *switches, "-O", "run", "--input-from-bundle", str(given),
                   "--save-outputs-npz", str(saved), "--allow-float-casts"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TractCheckError(f"cannot run {' '.join(command)}: {exc}") from None
        if done.returncode != 0 or not saved.exists():
            raise TractCheckError(f"{' '.join(command)} failed (exit code {done.returncode}): "
                                  f"{done.stderr.strip()[-2000:] or '(nothing on stderr)'}")
        with np.load(saved) as outputs:  # keyed by tract's output node names, which may differ: use the order
            names = list(output_names)
            if len(outputs.files) != len(names):
                raise TractCheckError(f"the tract binary saved {len(outputs.files)} outputs ({outputs.files}), "
                                      f"the graph has {len(names)} ({names})")
            return [outputs[key] for key in outputs.files]
