"""User extension lines (torch_to_nnef's `custom_extensions`), checked and added to a graph.

Each line is what follows `extension` in graph.nnef, with or without that word:
`tract_assert S >= 1`, `tract_assert tg: S == 1` (a scenario), `tract_symbol P`,
`tract_registry tract_transformers`, or a Khronos `KHR_...` extension. An assertion may use only
declared symbols, integers, `+ - * / %`, parentheses and `min`/`max`, around one comparison.
No torch import.
"""
from __future__ import annotations

import re
from typing import Sequence

from fx2nnef.errors import ExportInputError

from .graph import IDENTIFIER, Graph

REGISTRIES = ("tract_nnef", "tract_core", "tract_transformers", "tract_extra", "tract_onnx", "tract_pulse", "pulse")
COMPARISON = re.compile(r"==|!=|<=|>=|<|>")
TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_]*)|(==|!=|<=|>=|[-+*/%(),<>]))")


def add_extensions(graph: Graph, lines: Sequence[str]) -> None:
    """Check each line and add it to `graph`; raise ExportInputError naming the first bad line."""
    if isinstance(lines, str) or not all(isinstance(line, str) for line in lines):
        raise ExportInputError(f"custom_extensions must be a list of strings, got {lines!r}")
    for line in lines:
        text = line.strip().rstrip(";").strip()
        text = text[len("extension"):].strip() if text.startswith("extension ") else text
        kind, _, rest = text.partition(" ")
        rest = rest.strip()
        if kind == "tract_symbol" and IDENTIFIER.fullmatch(rest):
            if rest not in graph.symbols:
                graph.symbols.append(rest)
        elif kind == "tract_registry" and rest in REGISTRIES:
            graph.registries.add(rest)
        elif kind == "tract_assert":
            _check_assertion(line, rest, graph.symbols)
            if rest not in graph.assertions:
                graph.assertions.append(rest)
        elif kind.startswith("KHR_") and not rest:
            if kind not in graph.extensions:
                graph.extensions.append(kind)
        else:
            raise ExportInputError(
                f"custom extension {line!r} is not one fx2nnef can write: use 'tract_assert <rule>', "
                f"'tract_assert <scenario>: <rule>', 'tract_symbol <name>', 'tract_registry <one of "
                f"{', '.join(REGISTRIES)}>' or a 'KHR_...' extension")


def _check_assertion(line: str, rule: str, symbols: Sequence[str]) -> None:
    """Raise ExportInputError unless `rule` is `[scenario:] expression comparison expression` over
    the declared `symbols`."""
    scenario, colon, body = rule.partition(":")
    if not colon:
        body, scenario = rule, ""
    elif not IDENTIFIER.fullmatch(scenario.strip()):
        raise ExportInputError(f"custom extension {line!r}: the scenario name {scenario.strip()!r} is not an identifier")
    tokens, position = [], 0
    while position < len(body.rstrip()):
        match = TOKEN.match(body, position)
        if not match:
            raise ExportInputError(f"custom extension {line!r}: cannot read {body[position:].strip()!r} "
                                   "(integers, symbols, + - * / %, parentheses, min/max and one comparison)")
        tokens.append(match.group(match.lastindex))
        position = match.end()
    names = [t for t in tokens if IDENTIFIER.fullmatch(t) and t not in ("min", "max")]
    unknown = sorted(set(names) - set(symbols))
    if unknown:
        declared = ", ".join(symbols) or "none"
        raise ExportInputError(f"custom extension {line!r} uses undeclared symbol(s) {', '.join(unknown)} (declared: "
                               f"{declared}; declare one with dynamic_axes or a 'tract_symbol <name>' line before it)")
    if tokens.count("(") != tokens.count(")"):
        raise ExportInputError(f"custom extension {line!r}: unbalanced parentheses")
    comparisons = [t for t in tokens if COMPARISON.fullmatch(t)]
    if len(comparisons) != 1 or tokens[0] in comparisons or tokens[-1] in comparisons:
        raise ExportInputError(f"custom extension {line!r}: an assertion compares two expressions with one of "
                               "== != < > <= >=")
