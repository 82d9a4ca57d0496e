"""Which tract release first reads each operator fx2nnef emits, and the older forms used before it.

Measured, not guessed: every operator name fx2nnef can emit was loaded in a one-op graph by the
`tract` wheels 0.21.13, 0.21.14, 0.21.15, 0.21.19, 0.22.1, 0.22.4, 0.23.0, 0.23.2, 0.23.3, 0.23.5,
0.23.6, 0.23.8 and 0.23.9 (the error "No definition for operator" marks an unknown name). An
operator missing from this table is read by every supported release. No torch import.
"""
from __future__ import annotations

import re

OLDEST_TRACT = "0.21.13"

# operator -> the first tract release whose NNEF reader defines it
OPERATOR_SINCE: dict[str, str] = {
    "tract_core_log_softmax": "0.21.15",
    "tract_transformers_sdpa": "0.22.0",
    "tract_core_silu": "0.23.0",
    "tract_core_gelu_approx": "0.23.0",
    "tract_core_rms_norm": "0.23.0",
    "tract_core_is_nan": "0.23.0",
    "tract_core_is_inf": "0.23.0",
    "tract_onnx_resize": "0.23.0",
    "tract_onnx_grid_sample": "0.23.0",
    "any_reduce": "0.23.0",
    "all_reduce": "0.23.0",
    "copy": "0.23.0",
    "debox": "0.23.0",
    "tract_core_resize": "0.23.3",
    "tract_core_grid_sample": "0.23.3",
    "multilinear_upsample": "0.23.3",
    "tract_onnx_non_zero": "0.23.5",
    "tract_core_gru_epilogue": "0.23.6",
    "tract_core_lstm_epilogue": "0.23.2",   # absent from 0.23.0 (measured); the v0.23.2 tag's sources register it
    "tract_core_gru_seq": "0.23.9",         # present in 0.23.9, absent from 0.23.0 (measured; releases between unknown)
}


# forms of existing operators that older releases refuse -> the first release that reads them
FORM_SINCE: dict[str, str] = {
    # `lt(i, 0.0)` with an integer tensor i: "no supertype found" before 0.23 (`lt(i, 0)` works)
    "float literal in an integer comparison": "0.23.0",
}


def parse_version(text: str) -> tuple[int, ...]:
    """Return "0.23.9" (or "v0.23.9", "0.23.9-dev.1") as (0, 23, 9)."""
    match = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a tract version like '0.23.9'")
    return tuple(int(part) for part in match.groups())


def supports(version: str, operator: str) -> bool:
    """Tell whether tract `version` reads `operator` (or the form named in FORM_SINCE)."""
    since = OPERATOR_SINCE.get(operator, FORM_SINCE.get(operator))
    return since is None or parse_version(version) >= parse_version(since)
