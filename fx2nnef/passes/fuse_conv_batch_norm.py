"""FuseConvBatchNormPass: fold inference batch norms into the convolution that feeds them."""
from __future__ import annotations

import operator

import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind

from ..compiler.pass_base import Pass, PassResult
from ..compiler.program import FOLDED_SCALE, known_value, placeholders, renamed_outputs, replace

aten = torch.ops.aten


def _batch_norm(node: torch.fx.Node) -> tuple[torch.fx.Node, list, float] | None:
    """Return (the node whose users read the normalized tensor, [input, weight, bias, mean, var], eps)
    when `node` is an inference batch norm, else None."""
    if node.target is aten.batch_norm.default and not node.args[5]:
        return node, list(node.args[:5]), node.args[7]
    if node.target is aten._native_batch_norm_legit_no_training.default and len(node.users) == 1:
        (read,) = node.users
        if read.target is operator.getitem and read.args[1] == 0:
            return read, list(node.args[:5]), node.args[6]
    return None


class FuseConvBatchNormPass(Pass):
    """After it, no inference batch norm reads a convolution it could be folded into: the
    convolution's weight and bias absorb the norm's scale and shift, and the norm is gone.

    It applies where the convolution (not transposed) feeds only the norm, its weight and the
    norm's bias parameters feed nothing else, and every norm statistic is a parameter or buffer.
    The fused values replace the weight's and the norm bias's entries in the program's state dict
    (the user's module is untouched), so the archive keeps their module-path labels; the weight's
    placeholder records the per-output-channel factor in `meta[FOLDED_SCALE]` (the model's weight is
    the program's divided by it)."""

    def call(self, program: ExportedProgram) -> PassResult:
        kinds = {n: spec for n, spec in placeholders(program)}

        def value(n):
            return known_value(program, kinds[n]) if n in kinds else None

        state = dict(program.state_dict)
        modified = False
        for node in list(program.graph.nodes):
            match = _batch_norm(node) if node.op == "call_function" else None
            if match is None:
                continue
            output, (conv, gamma, beta, mean, var), eps = match
            if not isinstance(conv, torch.fx.Node) or conv.target is not aten.convolution.default \
                    or conv.args[6] or len(conv.users) != 1:
                continue
            weight, bias = conv.args[1], conv.args[2]
            params = [value(n) if isinstance(n, torch.fx.Node) else None for n in (weight, gamma, beta, mean, var)]
            if any(p is None for p in params) or len(weight.users) != 1 or len(beta.users) != 1 \
                    or kinds[weight].kind != InputKind.PARAMETER or kinds[beta].kind != InputKind.PARAMETER:
                continue
            conv_bias = value(bias) if isinstance(bias, torch.fx.Node) else None
            if bias is not None and conv_bias is None:
                continue
            w, g, b, m, v = (p.detach().double() for p in params)
            scale = g / torch.sqrt(v + eps)
            shift = b - m * scale + (0 if conv_bias is None else conv_bias.detach().double() * scale)
            dtype = params[0].dtype
            weight.meta[FOLDED_SCALE] = scale.to(dtype) * weight.meta.get(FOLDED_SCALE, 1)
            state[kinds[weight].target] = torch.nn.Parameter(
                (w * scale.reshape(-1, *[1] * (w.dim() - 1))).to(dtype), requires_grad=False)
            state[kinds[beta].target] = torch.nn.Parameter(shift.to(dtype), requires_grad=False)
            conv.update_arg(2, beta)
            output.replace_all_uses_with(conv)
            modified = True
        if not modified:
            return PassResult(program, False)
        program.graph.eliminate_dead_code()
        signature = renamed_outputs(program)
        return PassResult(replace(program, graph_signature=signature, state_dict=state), True)
