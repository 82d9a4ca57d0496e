"""DedupeConstantsPass: weights that hold the same bytes become one graph input."""
from __future__ import annotations

import torch
from torch.export import ExportedProgram

from ..compiler.pass_base import Pass, PassResult
from ..compiler.program import QUANTIZED, known_value, placeholders, renamed_outputs, replace

SAMPLES = 64  # elements compared first: copies agree on them, distinct weights almost never do


def _bytes(value: torch.Tensor) -> torch.Tensor:
    """Return the tensor's data as a flat uint8 tensor (a view when it is contiguous)."""
    flat = value.detach().reshape(-1)
    if flat.numel() and flat.stride(0) != 1:  # one element may carry any stride
        flat = flat.clone(memory_format=torch.contiguous_format)
    return flat.view(torch.uint8)


def _fingerprint(value: torch.Tensor) -> bytes:
    """Return the bytes of up to SAMPLES elements spread over the tensor."""
    flat = value.detach().reshape(-1)
    if flat.numel() > SAMPLES:
        flat = flat[torch.arange(SAMPLES) * (flat.numel() - 1) // (SAMPLES - 1)]  # exact in int64
    return _bytes(flat).numpy().tobytes()


class DedupeConstantsPass(Pass):
    """After it, no two parameters, unmutated buffers or constants that the graph reads have the
    same dtype, shape and bytes: the users of each later copy read the first one.

    Copies are common: per-layer constants folded to the same values (rotary tables), and the
    norm weights and biases of a model at its initialization. Merged, they let
    CommonSubexpressionPass merge the ops that read them, and the archive stores them once.
    Bytes, not values, are compared, so 0.0 and -0.0 stay apart."""

    def call(self, program: ExportedProgram) -> PassResult:
        kept: dict[tuple, list[tuple[torch.fx.Node, torch.Tensor]]] = {}
        modified = False
        for node, spec in placeholders(program):
            value = known_value(program, spec)
            if value is None or not node.users or value.layout != torch.strided or value.is_complex() \
                    or QUANTIZED in node.meta:  # the archive stores its blocks, not these bytes
                continue
            candidates = kept.setdefault((value.dtype, tuple(value.shape), _fingerprint(value)), [])
            same = next((first for first, data in candidates if torch.equal(_bytes(data), _bytes(value))), None)
            if same is None:
                candidates.append((node, value))
                continue
            node.replace_all_uses_with(same)
            modified = True
        if not modified:
            return PassResult(program, False)
        signature = renamed_outputs(program)
        return PassResult(replace(program, graph_signature=signature), True)
