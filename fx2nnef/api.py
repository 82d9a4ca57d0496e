"""`export_model_to_nnef`: the one call a user makes (compatible with torch_to_nnef's)."""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch

from .backends.nnef.registry import LoweringRegistry
from .compiler.pass_base import PassLike
from .stages import Export, ExportReport
from .targets import KhronosNNEF, TractNNEF

__all__ = ["export_model_to_nnef", "ExportReport"]


def export_model_to_nnef(
    model: torch.nn.Module,
    args: Any,
    file_path_export: str | os.PathLike,
    inference_target: TractNNEF | KhronosNNEF | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    debug_bundle_path: str | os.PathLike | None = None,
    *,
    kwargs: dict | None = None,
    registry: LoweringRegistry | None = None,
    passes: Sequence[PassLike] | None = None,
    dump_ir_dir: str | os.PathLike | None = None,
) -> ExportReport:
    """Export `model` called on `args` to an NNEF archive for tract, and check it if asked.

    The archive is a directory, a `.tar` or a `.tgz` by the suffix of `file_path_export`. It
    appears only when the export (and the check, with check_io) succeeds; on failure nothing is
    left there, and with `debug_bundle_path` a bundle for reproducing the failure is written.
    """
    export = Export.begin(model, args, file_path_export, inference_target, input_names, output_names,
                          debug_bundle_path, kwargs=kwargs, registry=registry, passes=passes, dump_ir_dir=dump_ir_dir)
    with export.guard():
        export.build()
        export.write()
        export.check()
        return export.commit()
