"""Tensor naming schemes of the NNEF document (torch_to_nnef's `nnef_variable_naming_scheme`).

- "raw": the names of the captured graph's nodes (`p_encoder_layer_0_weight`, `linear_3`);
- "natural_verbose" (default): weights named after their module path (`encoder_layer_0_weight`),
  operation results after their module path and op (`encoder_layer_0_linear`);
- "natural_verbose_camel": the same in camelCase (`encoderLayer0Weight`);
- "numeric": the shortest names (`v0`, `v1`, ...).

Graph inputs and outputs keep the names the user gave; weight files keep their module-path
labels. `base_name` gives the name a node's tensors start from; `rename` applies the camel and
numeric schemes to a finished graph. No torch import.
"""
from __future__ import annotations

import re

from .graph import LITERAL_PREFIX, Graph
from .standard import KEYWORDS

SCHEMES = ("raw", "natural_verbose", "natural_verbose_camel", "numeric")


def base_name(scheme: str, node_name: str, scope: str = "", label: str | None = None) -> str:
    """Return the identifier base for a tensor of the fx node `node_name` inside module `scope`
    (a dotted path), or for the weight stored under `label`."""
    if scheme == "raw":
        return node_name
    if label is not None:
        return re.sub(r"\W", "_", label)
    return re.sub(r"\W", "_", scope) + "_" + node_name if scope else node_name


def rename(graph: Graph, scheme: str) -> None:
    """Rename the graph's inner tensors (not its inputs and outputs) by the camel or numeric scheme."""
    if scheme not in ("natural_verbose_camel", "numeric"):
        return
    fixed = {t.name for t in graph.inputs} | {t.name for t in graph.outputs}
    taken, count = set(fixed), 0
    for op in graph.operations:
        for tensor in op.outputs:
            if tensor.name in fixed:
                continue
            if scheme == "numeric":
                name = f"v{count}"
                count += 1
            else:
                name = _camel(tensor.name)
            if LITERAL_PREFIX.match(name) or name in KEYWORDS:  # tract reads `inf_x` as a literal
                name = "_" + name
            while name in taken:
                name += "_"
            taken.add(name)
            tensor.name = name


def _camel(name: str) -> str:
    """Return `encoder_layer_0_weight` as `encoderLayer0Weight` (leading underscores kept)."""
    lead = name[:len(name) - len(name.lstrip("_"))]
    first, *rest = name.lstrip("_").split("_") or [""]
    return lead + first + "".join(part[:1].upper() + part[1:] for part in rest)
