"""Lowering plugins: modules that register lowerings (`fx2nnef.lower("mylib::op")`) when imported.

They are named by `export_model_to_nnef(load_extra_op_modules=[...])`, by the FX2NNEF_EXTRA_MODULES
environment variable (comma-separated), or, with `discover_extra_entrypoints=True`, by installed
packages that declare an entry point in the `fx2nnef.lowerings` group (the value is the module):

    [project.entry-points."fx2nnef.lowerings"]
    my_ops = "my_package.nnef_lowerings"
"""
from __future__ import annotations

import importlib
import logging
import os
from importlib.metadata import entry_points
from typing import Sequence

from .errors import ExportInputError

log = logging.getLogger("fx2nnef")

ENTRY_POINT_GROUP = "fx2nnef.lowerings"
ENVIRONMENT_VARIABLE = "FX2NNEF_EXTRA_MODULES"


def plugin_modules(modules: Sequence[str] | None, discover: bool) -> list[str]:
    """Return the plugin module names to import, in order (given, environment, entry points), once each."""
    found = list(modules or [])
    found += [name.strip() for name in os.environ.get(ENVIRONMENT_VARIABLE, "").split(",") if name.strip()]
    if discover:
        found += [point.value for point in entry_points(group=ENTRY_POINT_GROUP)]
    return list(dict.fromkeys(found))


def load_plugins(modules: Sequence[str] | None = None, discover: bool = False, strict: bool = False) -> list[str]:
    """Import the plugin modules and return the names imported. A module that fails to import is an
    ExportInputError with `strict`, else a logged warning."""
    if modules is not None and (isinstance(modules, str) or not all(isinstance(m, str) for m in modules)):
        raise ExportInputError(f"load_extra_op_modules must be a list of module names, got {modules!r}")
    loaded = []
    for name in plugin_modules(modules, discover):
        try:
            importlib.import_module(name)
        except Exception as exc:  # a plugin's own error: report it, never let it pass silently
            if strict:
                raise ExportInputError(f"cannot import the lowering module {name!r}: {type(exc).__name__}: {exc}") from exc
            log.warning("cannot import the lowering module %r (skipped): %s: %s", name, type(exc).__name__, exc)
            continue
        loaded.append(name)
        log.info("loaded the lowering module %s", name)
    return loaded
