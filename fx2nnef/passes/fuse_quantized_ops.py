"""FuseQuantizedOpsPass: PT2E convolutions and linears with per-tensor int8 weights become integer products."""
from __future__ import annotations

import logging

import torch
from torch.export import ExportedProgram

from ..compiler.pass_base import Pass, PassResult
from ..compiler.program import renamed_outputs, replace

aten = torch.ops.aten
log = logging.getLogger("fx2nnef")
QD = "quantized_decomposed"
FULL_RANGES = {torch.uint8: (0, 255), torch.int8: (-128, 127)}


def _dequantize(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    return (x.to(torch.float32) - zero_point) * scale


@torch.library.custom_op("fx2nnef::quantized_convolution", mutates_args=())
def quantized_convolution(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: list[int],
                          padding: list[int], dilation: list[int], groups: int, input_scale: float,
                          input_zero_point: int, weight_scale: float, weight_zero_point: int) -> torch.Tensor:
    """The float result of a convolution of a quantized input by a quantized weight: what tract
    computes with its integer kernels (u8/i8 operands, i32 accumulator and bias)."""
    return torch.ops.aten.convolution(_dequantize(input, input_scale, input_zero_point),
                                      _dequantize(weight, weight_scale, weight_zero_point), bias, stride, padding,
                                      dilation, False, [0] * len(stride), groups)


@quantized_convolution.register_fake
def _(input, weight, bias, stride, padding, dilation, groups, input_scale, input_zero_point, weight_scale,
      weight_zero_point):
    return torch.ops.aten.convolution(input.to(torch.float32), weight.to(torch.float32), bias, stride, padding,
                                      dilation, False, [0] * len(stride), groups)


@torch.library.custom_op("fx2nnef::quantized_linear", mutates_args=())
def quantized_linear(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, input_scale: float,
                     input_zero_point: int, weight_scale: float, weight_zero_point: int) -> torch.Tensor:
    """The float result of a linear layer of a quantized input by a quantized weight (tract's integer kernels)."""
    return torch.nn.functional.linear(_dequantize(input, input_scale, input_zero_point),
                                      _dequantize(weight, weight_scale, weight_zero_point), bias)


@quantized_linear.register_fake
def _(input, weight, bias, input_scale, input_zero_point, weight_scale, weight_zero_point):
    return torch.nn.functional.linear(input.to(torch.float32), weight.to(torch.float32), bias)


def _is(node, name: str) -> bool:
    """Tell whether `node` calls quantized_decomposed::<name> (default overload)."""
    target = getattr(node, "target", None)
    return isinstance(target, torch._ops.OpOverload) and target.namespace == QD \
        and target.name() == f"{QD}::{name}"


def _q_params(node: torch.fx.Node) -> tuple:
    """Return (scale, zero_point, quant_min, quant_max, dtype) of a per-tensor Q or DQ node."""
    return tuple(node.args[1:6])


def _weight_quantization(op: torch.fx.Node) -> str | None:
    """Return "per_tensor" or "per_channel" for a conv/linear whose weight is a dequantized int8
    constant, else None."""
    weight = op.args[1]
    if _is(weight, "dequantize_per_channel"):
        return "per_channel"
    if _is(weight, "dequantize_per_tensor") and weight.args[0].op == "placeholder" \
            and weight.args[5] is torch.int8 and weight.args[0].meta["val"].dtype is torch.int8:
        return "per_tensor"
    return None


def _quantized_input(op: torch.fx.Node) -> torch.fx.Node | None:
    """Return the quantized tensor a conv/linear reads dequantized (per tensor, full 8-bit range,
    the parameters it was quantized with), else None."""
    dq = op.args[0]
    if not _is(dq, "dequantize_per_tensor"):
        return None
    q = dq.args[0]
    if _is(q, "quantize_per_tensor") and _q_params(q) == _q_params(dq) \
            and FULL_RANGES.get(dq.args[5]) == tuple(dq.args[3:5]):
        return q
    return None


class FuseQuantizedOpsPass(Pass):
    """After it, every PT2E convolution (not transposed) and linear that reads a per-tensor quantized
    input, dequantized, and an int8 constant weight quantized per tensor, dequantized, is an
    `fx2nnef::quantized_convolution` / `quantized_linear` node reading the quantized input and the
    int8 weight: tract runs it with its integer kernels (i32 accumulator and bias, converted back
    to float). Layers with per-channel weights stay float between casts (the simulated form):
    tract's per-channel integer convolution fails in its code generator."""

    def call(self, program: ExportedProgram) -> PassResult:
        graph = program.graph
        fused = per_channel = 0
        for op in list(graph.nodes):
            if op.op != "call_function" or op.target not in (aten.convolution.default, aten.linear.default):
                continue
            if op.target is aten.convolution.default and op.args[6]:
                continue
            weights, source = _weight_quantization(op), _quantized_input(op)
            bias = op.args[2] if len(op.args) > 2 else None
            if weights == "per_channel":
                per_channel += 1
            if weights != "per_tensor" or source is None or not (
                    bias is None or isinstance(bias, torch.fx.Node) and bias.op == "placeholder"):
                continue
            x_scale, x_zero, *_ = _q_params(op.args[0])
            w_dq = op.args[1]
            common = dict(bias=bias, input_scale=x_scale, input_zero_point=x_zero, weight_scale=w_dq.args[1],
                          weight_zero_point=w_dq.args[2])
            with graph.inserting_before(op):
                if op.target is aten.convolution.default:
                    stride, padding, dilation, _, _, groups = op.args[3:9]
                    node = graph.call_function(torch.ops.fx2nnef.quantized_convolution.default,
                                               (source, w_dq.args[0]),
                                               dict(common, stride=stride, padding=padding, dilation=dilation,
                                                    groups=groups))
                else:
                    node = graph.call_function(torch.ops.fx2nnef.quantized_linear.default,
                                               (source, w_dq.args[0]), common)
            node.meta = dict(op.meta)
            op.replace_all_uses_with(node)
            graph.erase_node(op)
            fused += 1
        if per_channel:
            log.info("int8 kernels: %d layers with per-channel weights stay float between casts", per_channel)
        if not fused:
            return PassResult(program, False)
        graph.eliminate_dead_code()
        log.info("int8 kernels: %d convolutions/linears run on tract's integer kernels", fused)
        return PassResult(replace(program, graph_signature=renamed_outputs(program)), True)
