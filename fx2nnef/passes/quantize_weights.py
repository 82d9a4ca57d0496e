"""QuantizeWeightsPass: parameter weights of linear, embedding and convolution ops become Q4_0."""
from __future__ import annotations

import logging
from typing import Iterable

import numpy as np
import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind

from ..backends.nnef.q4_0 import CALIBRATIONS, pack_q4_0, q4_0_unpackable
from ..compiler.pass_base import Pass, PassResult
from ..compiler.program import QUANTIZED, fake_mode, placeholders, renamed_outputs, replace
from ..compiler.weights import placeholder_like, source_of

aten = torch.ops.aten
log = logging.getLogger("fx2nnef")

LAYERS = ("linear", "embedding", "conv")
# a weight read transposed ([in, out]) by these products is the weight of a linear
TRANSPOSES = (aten.t.default, aten.transpose.int, aten.permute.default)
PRODUCTS = (aten.matmul.default, aten.mm.default, aten.addmm.default)


def _is_transpose(node: torch.fx.Node) -> bool:
    """Tell whether `node` swaps the two axes of a 2-D tensor."""
    if node.op != "call_function" or node.target not in TRANSPOSES:
        return False
    if node.target is aten.permute.default:
        return list(node.args[1]) == [1, 0]
    return node.target is aten.t.default or sorted(a % 2 for a in node.args[1:3]) == [0, 1]


def _rank(value: object) -> int:
    return value.meta["val"].dim() if isinstance(value, torch.fx.Node) else -1


def _linear_product(product: torch.fx.Node, transposed: torch.fx.Node) -> bool:
    """Tell whether `product` computes `x @ transposed` (+ bias, addmm with unit factors) for an
    activation `x` of rank >= 2, so that it can be written as linear(x, weight, bias)."""
    if product.target is aten.addmm.default:
        return (len(product.args) == 3 and product.args[2] is transposed and product.args[1] is not transposed
                and product.kwargs.get("beta", 1) == 1 and product.kwargs.get("alpha", 1) == 1)
    return len(product.args) == 2 and product.args[1] is transposed and _rank(product.args[0]) >= 2 \
        and product.args[0] is not transposed


def _layer(weight: torch.fx.Node, user: torch.fx.Node) -> str | None:
    """Return the kind of layer ("linear", "embedding", "conv") `user` reads `weight` as, else None."""
    if user.op != "call_function":
        return None
    if user.target is aten.linear.default and user.args[1] is weight and user.args[0] is not weight:
        return "linear" if _rank(user.args[0]) >= 2 else None
    if user.target is aten.embedding.default and user.args[0] is weight and weight.meta["val"].dim() == 2:
        return "embedding"
    if user.target is aten.convolution.default and user.args[1] is weight and user.args[0] is not weight \
            and not user.args[6] and weight.meta["val"].dim() in (3, 4):
        return "conv"
    if _is_transpose(user) and weight.meta["val"].dim() == 2 and user.users \
            and all(p.op == "call_function" and p.target in PRODUCTS and _linear_product(p, user) for p in user.users):
        return "linear"
    return None


def _as_linear(graph: torch.fx.Graph, transposed: torch.fx.Node, weight: torch.fx.Node) -> None:
    """Rewrite every `x @ t(weight)` (+ bias) that reads `transposed` as linear(x, weight, bias)."""
    for product in list(transposed.users):
        if product.target is aten.addmm.default:
            bias, x = product.args[0], product.args[1]
            args = (x, weight, bias)
        else:
            args = (product.args[0], weight)
        with graph.inserting_before(product):
            linear = graph.call_function(aten.linear.default, args)
        linear.meta = dict(product.meta)
        product.replace_all_uses_with(linear)
        graph.erase_node(product)
    graph.erase_node(transposed)


def relative_error(weight: np.ndarray, decoded: np.ndarray) -> float:
    """Return ||weight - decoded|| / ||weight|| (the error itself for an all-zero weight), from f32
    dot products (BLAS: 0.1 s for 66 M weights, where float64 norms took 3.6 s)."""
    flat = weight.reshape(-1)
    difference = (decoded.reshape(-1) - flat).astype(np.float32, copy=False)
    error = float(np.sqrt(np.dot(difference, difference)))
    norm = float(np.sqrt(np.dot(flat, flat)))
    return error / norm if norm else error


class QuantizeWeightsPass(Pass):
    """After it, every parameter that is only read as the weight of linear layers (`aten.linear`,
    or `x @ w.t()` forms, which become `aten.linear`), embeddings or (non-transposed, 1-D/2-D)
    convolutions of the requested `layers` carries its Q4_0 blocks in `meta[QUANTIZED]` (a
    `BlockQuantized`: the lowering writes them, and the check decodes them into the reference
    model). A shared weight is quantized once. A weight also read by another op or another layer
    kind, or whose rows are not a multiple of 32 values, or of a dtype the target does not compute
    in f32 or f16, stays float with its reason logged. The program computes what the archive does: the
    weight's entry in the program's state dict becomes its decoded values (f16 in an f16 graph, else f32) (what later passes
    fold, and the check's reference reads); the user's model and parameters are never touched.
    Each quantized weight's relative error (||w - q|| / ||w||) is logged at INFO and kept in `errors`.
    A weight that stays in its checkpoint file (compiler/weights.py) is packed while it is written:
    `meta[QUANTIZED]` is its source marked "q4_0", and its error is not computed."""

    def __init__(self, layers: Iterable[str] = ("linear",), calibration: str = "min_max",
                 dtypes: Iterable[torch.dtype] = (torch.float32,)):
        self.layers = tuple(layers)
        unknown = sorted(set(self.layers) - set(LAYERS))
        if unknown:
            raise ValueError(f"unknown Q4_0 layer kinds {unknown}: choose among {', '.join(LAYERS)}")
        if calibration not in CALIBRATIONS:
            raise ValueError(f"unknown Q4_0 calibration {calibration!r}: choose one of {', '.join(CALIBRATIONS)}")
        self.calibration = calibration
        self.dtypes = tuple(dtypes)
        self.errors: dict[str, float] = {}

    def call(self, program: ExportedProgram) -> PassResult:
        state = dict(program.state_dict)
        mode = fake_mode(program)
        modified = False
        for node, spec in placeholders(program):
            if spec.kind != InputKind.PARAMETER or not node.users or QUANTIZED in node.meta:
                continue
            kinds = {_layer(node, user) for user in node.users}
            if kinds & set(self.layers) == set():
                continue
            value = state[spec.target]
            reason = self._reason(kinds, value)
            if reason is not None:
                log.info("Q4_0: %s %s stays float: %s", spec.target, list(value.shape), reason)
                continue
            for user in list(node.users):
                if _is_transpose(user):
                    _as_linear(program.graph, user, node)
            source = source_of(value)
            if source is not None:  # a weight on disk: packed while it is written, its error unknown
                node.meta[QUANTIZED] = source.quantized("q4_0", self.calibration)
                state[spec.target] = placeholder_like(source, torch.float32, parameter=True)
                log.info("Q4_0: %-40s %-16s %-9s packed while written (the weight stays on disk)", spec.target,
                         "x".join(map(str, value.shape)), "/".join(sorted(kinds)))
            else:
                weight = value.detach().float().numpy()
                node.meta[QUANTIZED] = blocks = pack_q4_0(weight, self.calibration)
                decoded = blocks.decode()
                self.errors[spec.target] = error = relative_error(weight, decoded)
                kept = value.dtype if value.dtype == torch.float16 else torch.float32   # an f16 graph stays f16
                state[spec.target] = torch.nn.Parameter(torch.from_numpy(decoded).to(kept), requires_grad=False)
                log.info("Q4_0: %-40s %-16s %-9s weight error %.3e (||w - q|| / ||w||, %s)", spec.target,
                         "x".join(map(str, value.shape)), "/".join(sorted(kinds)), error, self.calibration)
            if value.dtype not in (torch.float32, torch.float16):   # a bf16/f64 weight the target computes in f32
                with mode:
                    node.meta["val"] = node.meta["val"].to(torch.float32)
            modified = True
        if not modified:
            return PassResult(program, False)
        return PassResult(replace(program, graph_signature=renamed_outputs(program), state_dict=state), True)

    def _reason(self, kinds: set[str | None], value: torch.Tensor) -> str | None:
        """Return why a weight read as `kinds` layers stays float, or None when it is quantized."""
        if None in kinds:
            return "it is also read by an operation that cannot take a Q4_0 weight"
        if not kinds <= set(self.layers):
            return f"it is shared with a {'/'.join(sorted(kinds - set(self.layers)))} layer, not asked for"
        if value.dtype not in self.dtypes:
            return f"its dtype {value.dtype} is not computed in f32 or f16 by this target"
        return q4_0_unpackable(tuple(value.shape))
