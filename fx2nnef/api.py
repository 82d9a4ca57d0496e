"""`export_model_to_nnef`: the one call a user makes, with torch_to_nnef's parameters in its order."""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator, Sequence

import torch

from .backends.nnef.registry import LoweringRegistry
from .compiler.pass_base import PassLike
from .errors import ExportInputError
from .plugins import load_plugins
from .stages import NOT_GIVEN, Export, ExportReport
from .targets import KhronosNNEF, TractNNEF

__all__ = ["export_model_to_nnef", "ExportReport"]

log = logging.getLogger("fx2nnef")


def export_model_to_nnef(
    model: torch.nn.Module,
    args: Any,
    file_path_export: str | os.PathLike,
    inference_target: TractNNEF | KhronosNNEF | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    compression_level: int | None = NOT_GIVEN,
    log_level: int | str | None = None,
    nnef_variable_naming_scheme: str = "natural_verbose",
    check_io_names_qte_match: bool = True,
    debug_bundle_path: str | os.PathLike | None = None,
    custom_extensions: Sequence[str] | None = None,
    allow_same_io_names: bool = False,
    auto_harden_jit: bool = NOT_GIVEN,
    load_extra_op_modules: Sequence[str] | None = None,
    discover_extra_entrypoints: bool = False,
    strict_extra_imports: bool = False,
    skip_eager_forward: bool = False,
    *,
    kwargs: dict | None = None,
    registry: LoweringRegistry | None = None,
    passes: Sequence[PassLike] | None = None,
    dump_ir_dir: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
) -> ExportReport:
    """Export `model` called on `args` to an NNEF archive for tract, and check it if asked.

    The archive is a directory, a `.tar` or a `.tgz` by the suffix of `file_path_export`, or by
    `compression_level` (None: directory, 0: .tar, 1-9: .tgz at that zlib level). It appears only
    when the export (and the check, with check_io) succeeds; on failure nothing is left there, and
    with `debug_bundle_path` a bundle for reproducing the failure is written. Every parameter of
    torch_to_nnef's call is accepted with its meaning (docs/torch_to_nnef.md); `kwargs`, `registry`,
    `passes`, `dump_ir_dir` and `weights` (a checkpoint the weights are streamed from, for a model
    built on the meta device: docs/big_models.md) are fx2nnef's.
    """
    with _log_level(log_level):
        if auto_harden_jit is not NOT_GIVEN:
            log.warning("auto_harden_jit has no effect: fx2nnef captures nn.Modules with torch.export, "
                        "not TorchScript")
        if isinstance(model, torch.jit.ScriptModule):
            raise ExportInputError("model is a torch.jit.ScriptModule, which torch.export cannot capture: "
                                   "export the Python nn.Module it was scripted from")
        if not isinstance(check_io_names_qte_match, bool) or not isinstance(skip_eager_forward, bool):
            raise ExportInputError("check_io_names_qte_match and skip_eager_forward take True or False")
        load_plugins(load_extra_op_modules, discover_extra_entrypoints, strict_extra_imports)
        export = Export.begin(model, args, file_path_export, inference_target, input_names, output_names,
                              debug_bundle_path, kwargs=kwargs, registry=registry, passes=passes,
                              dump_ir_dir=dump_ir_dir, compression_level=compression_level,
                              naming_scheme=nnef_variable_naming_scheme, custom_extensions=custom_extensions,
                              allow_same_io_names=allow_same_io_names, weights=weights)
        with export.guard():
            export.build()
            export.write()
            export.check()
            return export.commit()


@contextlib.contextmanager
def _log_level(level: int | str | None) -> Iterator[None]:
    """Set the `fx2nnef` logger's level (a logging level or its name) for the export, then restore it."""
    if level is None:
        yield
        return
    resolved = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(resolved, int):
        raise ExportInputError(f"log_level must be a logging level (logging.INFO, 'DEBUG', ...), got {level!r}")
    previous = log.level
    log.setLevel(resolved)
    try:
        yield
    finally:
        log.setLevel(previous)
