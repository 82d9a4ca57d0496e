"""The tract backend: run an exported NNEF archive in tract and compare its outputs with PyTorch's."""
from __future__ import annotations

from fx2nnef.backends.tract.bundle import reproduce_command, write_debug_bundle
from fx2nnef.backends.tract.compare import (
    TOLERANCES,
    OutputReport,
    Tolerance,
    check_close,
    compare_outputs,
    format_report,
    resolve_tolerance,
)
from fx2nnef.backends.tract.runner import (
    REGISTRY_SWITCHES,
    InputFact,
    check_inputs,
    input_facts,
    load,
    run,
    run_isolated,
    tract_version,
)

__all__ = [
    "REGISTRY_SWITCHES",
    "TOLERANCES",
    "InputFact",
    "OutputReport",
    "Tolerance",
    "check_close",
    "check_inputs",
    "compare_outputs",
    "format_report",
    "input_facts",
    "load",
    "reproduce_command",
    "resolve_tolerance",
    "run",
    "run_isolated",
    "tract_version",
    "write_debug_bundle",
]
