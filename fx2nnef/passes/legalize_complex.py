"""LegalizeComplexPass: no value is complex; each is a real tensor whose trailing axis of 2 holds its
(real, imaginary) parts, and every complex op is written as real ops on that layout."""
from __future__ import annotations

import logging

import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind

from ..backends.nnef.unsupported import reason as not_expressible
from ..compiler.pass_base import Pass, PassResult
from ..compiler.program import (OUTPUT_NAMES, input_name, output_node, placeholders, renamed_outputs, replace,
                                source_line)
from ..errors import UnsupportedOpError
from .complex_pairs import REAL, PairWriter, complex_node, is_complex
from .complex_rules import RULES

aten = torch.ops.aten
log = logging.getLogger("fx2nnef")
# meta key: on a user-input placeholder, the complex dtype it had; on the output node, the positions of the
# outputs that were complex
COMPLEX_IO = "fx2nnef.complex_io"


def _op_name(node: torch.fx.Node) -> str:
    t = node.target
    return t.name() if isinstance(t, torch._ops.OpOverload) else getattr(t, "__name__", str(t))


class LegalizeComplexPass(Pass):
    """After it, no tensor is complex: a complex64 (complex128, complex32) value is a float32 (float64,
    float16) tensor with a trailing axis of 2 holding (real, imaginary), the torch.view_as_real layout.
    FFTs become `fx2nnef::fft` (and a windowed framing followed by an FFT `fx2nnef::stft`), the other
    complex ops real ATen ops on the pairs. Complex user inputs and outputs are such pairs, under their
    own names (marked in meta[COMPLEX_IO]); complex weights are stored as pairs (on copies)."""

    def call(self, program: ExportedProgram) -> PassResult:
        if not any(is_complex(n.meta.get("val")) for n in program.graph.nodes):
            return PassResult(program, False)
        r = PairWriter(program)
        state_dict, constants = self._placeholders(r)
        missing: dict[str, list[torch.fx.Node]] = {}
        for node in list(program.graph.nodes):
            if node.op != "call_function" or not (is_complex(node.meta.get("val")) or any(
                    r.is_complex(a) for a in node.all_input_nodes)):
                continue
            rule = RULES.get(node.target)
            if rule is None or any(complex_node(a) and a not in r.pairs for a in node.all_input_nodes):
                if rule is None:   # else a complex input has no pair form: its maker is reported
                    missing.setdefault(_op_name(node), []).append(node)
                continue
            r.node = node
            new = rule(r, node)
            if is_complex(node.meta.get("val")):
                r.pairs[node] = new
            else:   # a complex input read as real (view_as_real) is a node of its own
                node.replace_all_uses_with(r.emit(aten.alias.default, new) if new in r.inputs else new)
        if missing:
            raise UnsupportedOpError(self._message(missing))
        self._outputs(r)
        program.graph.eliminate_dead_code()
        return PassResult(replace(program, graph_signature=renamed_outputs(program), state_dict=state_dict,
                                  constants=constants), True)

    @staticmethod
    def _placeholders(r: PairWriter) -> tuple[dict, dict]:
        """Make complex placeholders pairs: user inputs in meta, weights and constants on copies."""
        program = r.program
        state_dict, constants = dict(program.state_dict), dict(program.constants)
        for node, spec in placeholders(program):
            val = node.meta.get("val")
            if not is_complex(val):
                continue
            if spec.kind == InputKind.USER_INPUT:
                node.meta[COMPLEX_IO] = str(val.dtype).replace("torch.", "")
                log.warning("input %s is %s: the NNEF graph takes it as %s (real, imaginary) pairs on a trailing "
                            "axis of 2 (torch.view_as_real(%s))", input_name(node), node.meta[COMPLEX_IO],
                            str(REAL[val.dtype]).replace("torch.", ""), input_name(node))
            else:
                store = state_dict if spec.target in state_dict else constants
                pairs = torch.view_as_real(store[spec.target].detach().resolve_conj()).clone()
                is_param = isinstance(store[spec.target], torch.nn.Parameter)
                store[spec.target] = torch.nn.Parameter(pairs, requires_grad=False) if is_param else pairs
            with r.mode:
                node.meta["val"] = torch.empty([*val.shape, 2], dtype=REAL[val.dtype])
            r.pairs[node], r.inputs[node] = node, val
        return state_dict, constants

    @staticmethod
    def _outputs(r: PairWriter) -> None:
        """Make the graph return pairs for its complex outputs, and mark their positions."""
        out = output_node(r.program)
        values = list(out.args[0])
        complex_positions = [i for i, v in enumerate(values) if r.is_complex(v)]
        if not complex_positions:
            return
        out.update_arg(0, type(out.args[0])(r.pairs[v] if i in complex_positions else v for i, v in enumerate(values)))
        out.meta[COMPLEX_IO] = complex_positions
        names = out.meta.get(OUTPUT_NAMES) or [f"output_{i}" for i in range(len(values))]
        for i in complex_positions:
            log.warning("output %s is %s: the NNEF graph returns it as (real, imaginary) pairs on a trailing axis "
                        "of 2 (torch.view_as_complex turns them back)", names[i],
                        str(r.val(values[i]).dtype).replace("torch.", ""))

    @staticmethod
    def _message(missing: dict[str, list[torch.fx.Node]]) -> str:
        """Return the error naming every op on complex values that has no real-pair form."""
        lines = [f"{sum(len(v) for v in missing.values())} node(s) use {len(missing)} op(s) on complex values "
                 "that have no real-pair form (passes/legalize_complex.py):"]
        for name, nodes in sorted(missing.items()):
            why = not_expressible(name if "::" in name else f"aten::{name}")
            lines.append(f"  {name}  x{len(nodes)}" + (f"  (not expressible: {why})" if why else ""))
            for where in dict.fromkeys(source_line(n) or n.format_node() for n in nodes):
                lines.append(f"      at {where}")
        return "\n".join(lines)


def complex_io(program: ExportedProgram) -> dict[str, list[str]]:
    """Return the names of the user inputs and outputs that were complex (now real pairs), by kind."""
    out = output_node(program)
    names = out.meta.get(OUTPUT_NAMES) or [f"output_{i}" for i in range(len(out.args[0]))]
    return {"inputs": [input_name(n) for n, spec in placeholders(program)
                       if spec.kind == InputKind.USER_INPUT and COMPLEX_IO in n.meta],
            "outputs": [names[i] for i in out.meta.get(COMPLEX_IO, [])]}
