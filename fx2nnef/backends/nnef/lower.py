"""Lower an ExportedProgram (after the passes) to an NNEF Graph, one fx node at a time."""
from __future__ import annotations

import collections
import logging
import math
import operator
import re
from typing import Any

import numpy as np
import sympy
import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind

from ...compiler.dynamic import tract_expr
from ...compiler.program import OUTPUT_NAMES, QUANTIZED, input_name, output_node, placeholders, source_line
from ...compiler.weights import source_of
from ...errors import FX2NNEFError, LoweringError, UnsupportedOpError
from .graph import DTYPES as NUMPY_DTYPE_NAMES
from .graph import LITERAL_PREFIX, NUMPY_DTYPES, Expr, Graph, Operation, Tensor
from . import naming, versions
from .constants import share_expressions, store_variables_at_use_rank
from .pads import fold_zero_pads_into_convs
from .lowerings.common import static
from .older_forms import OLDER_FORMS
from .registry import LoweringRegistry
from .unsupported import reason as not_expressible
from .standard import GENERIC_OPS, KEYWORDS, LOGICAL_OPS, STANDARD_OPS, khronos_type

log = logging.getLogger("fx2nnef")
from ...compiler.weights import source_of

DTYPES = {
    torch.float16: "f16", torch.float32: "f32", torch.float64: "f64",
    torch.int8: "i8", torch.int16: "i16", torch.int32: "i32", torch.int64: "i64",
    torch.uint8: "u8", torch.uint16: "u16", torch.uint32: "u32", torch.uint64: "u64", torch.bool: "bool",
}


def nnef_dtype(dtype: torch.dtype) -> str:
    """Return tract's datum type string for a torch dtype."""
    if dtype not in DTYPES:
        raise LoweringError(f"dtype {dtype} has no tract equivalent (the legalize_dtypes pass should have replaced it)")
    return DTYPES[dtype]


class Builder:
    """What a lowering receives as `b`: emits NNEF operations for the current fx node.

    `dialect` is "tract" (standard NNEF + tract extensions) or "khronos" (standard NNEF only:
    `b.khronos` is true, and emitting a non-standard op raises UnsupportedOpError naming the ATen op).
    `b.fused_attention` tells attention lowerings to emit tract's fused sdpa operator.
    `b.streaming` says the graph must stream along a time axis: lowerings then avoid operators tract
    cannot pulse.
    `b.seed()` gives random operators their seeds.
    `tract_version` is the tract release the graph is for: an operator it cannot read is replaced by
    its older form (older_forms.py) or raises LoweringError naming the first release that reads it;
    lowerings that have a better older form of their own ask `b.supports(operator)`.

    Sizes torch.export reads from tensor data (its unbacked symbols u0, u1...) are bound by the
    lowering that computes them: `b.bind_size(dim)` declares a fresh tract symbol, which tract binds
    at run time from the output that carries it, or `b.bind_size(dim, n)` fixes a size known now.
    """

    def __init__(self, graph: Graph, symbols: dict[str, str] | None = None, dialect: str = "tract",
                 fused_attention: bool = False, tract_version: str | None = None, naming: str = "natural_verbose",
                 streaming: bool = False, random_seed: int | None = 0):
        self.graph = graph
        self.node: torch.fx.Node | None = None
        self.symbols = dict(symbols or {})
        self.names: set[str] = set(self.symbols.values())  # fresh data-dependent symbols must differ
        self.constants = 0
        self.khronos = dialect == "khronos"
        self.fused_attention = fused_attention
        self.streaming = streaming
        self.tract_version = None if self.khronos else tract_version
        self.naming = naming
        self._origin: tuple = (None, "")
        self.known_sizes: dict[sympy.Symbol, sympy.Integer] = {}   # data-dependent sizes known now
        self.random_seed = random_seed
        self.random_ops = 0

    # -- naming --------------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        """Return an unused identifier derived from `base`."""
        base = re.sub(r"\W", "_", base) or "t"
        if not re.match(r"[A-Za-z_]", base) or LITERAL_PREFIX.match(base):
            base = "_" + base
        if base in KEYWORDS:
            base += "_"
        name, i = base, 0
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        self.names.add(name)
        return name

    # -- emitting ------------------------------------------------------------------------
    def op(self, name: str, *args: Any, out_dtype: str | None = None, out_shape: tuple | None = None,
           outputs: int = 1, generic: str | None = None, **attribs: Any) -> Tensor | tuple[Tensor, ...]:
        """Append `name(args, attribs)` to the graph and return its output tensor(s).

        Operands of broadcasting ops get leading unit axes up to a common rank (tract pads
        the lower rank at the end, unlike numpy); the result's dtype and shape are inferred
        for element-wise and shape ops when not given.
        """
        if not self.supports(name):
            return self._older_form(name, args, attribs, out_dtype, out_shape)
        if name in COMPARISONS and not self.supports("float literal in an integer comparison"):
            args = _integer_literals(args)
        if name in BROADCASTING:
            args = self._equal_ranks(args)
        if name == "reshape" and not list(attribs["shape"]) and isinstance(args[0], Tensor) and args[0].shape:
            # tract refuses reshape(shape = []) (its shape concat has no input): squeeze the unit axes
            name, attribs = "squeeze", {"axes": list(range(args[0].rank))}
        if self.khronos:
            self._check_standard(name, args)
        if outputs == 1:
            out_shape = out_shape if out_shape is not None else _infer_shape(name, args, attribs)
            out_dtype = out_dtype or _infer_dtype(name, args, attribs)
        base = naming.base_name(self.naming, self.node.name, _scope(self.node)) if self.node is not None else name
        outs = tuple(Tensor(self.fresh(base), out_dtype, out_shape) for _ in range(outputs))
        self.graph.operations.append(Operation(name, args, attribs, outs, generic, self.origin))
        return outs[0] if outputs == 1 else outs

    @property
    def origin(self) -> str:
        """Say which ATen op emits the current operations, and where: "aten::mean.dim at model.py:9 ..."."""
        if self.node is None:
            return ""
        if self._origin[0] is not self.node:
            where = source_line(self.node)
            where = where if not where or where.startswith("in module") else f"at {where}"
            self._origin = (self.node, f"{op_name(self.node)} {where}".strip())
        return self._origin[1]

    def body(self, name: str) -> "Builder":
        """Return a builder for a new loop body named `name`: an NNEF fragment defined by operations
        (graph.bodies[name]), which a `tract_core_scan` names. Add its parameters with `param`, emit
        its operations with `op` and set its `graph.outputs`; it shares this graph's registries."""
        body = Graph(name=name, registries=self.graph.registries)
        child = Builder(body, self.symbols, "khronos" if self.khronos else "tract", self.fused_attention,
                        self.tract_version, self.naming, self.streaming)
        child.node = self.node
        self.graph.bodies[name] = body
        return child

    def param(self, name: str, dtype: str, shape: tuple) -> Tensor:
        """Add a parameter to the loop body this builder emits (see `body`) and return it."""
        t = Tensor(self.fresh(name), dtype, shape)
        self.graph.inputs.append(t)
        return t

    def supports(self, operator: str) -> bool:
        """Tell whether the targeted tract release reads `operator` (always true without a target)."""
        return self.tract_version is None or versions.supports(self.tract_version, operator)

    def _older_form(self, name: str, args: tuple, attribs: dict, out_dtype: str | None,
                    out_shape: tuple | None) -> Tensor:
        """Emit the older form of `name`, which the targeted tract release cannot read."""
        form = OLDER_FORMS.get(name)
        if form is None:
            what = f"{op_name(self.node)} needs" if self.node is not None else "the graph needs"
            where = f"\n  at {source_line(self.node)}" if self.node is not None and source_line(self.node) else ""
            raise LoweringError(
                f"{what} the tract operator {name}, which tract reads from release "
                f"{versions.OPERATOR_SINCE[name]} on; the target is tract {self.tract_version}. Target "
                f"TractNNEF(version='{versions.OPERATOR_SINCE[name]}') or newer.{where}")
        out = form(self, *args, **attribs)
        out.dtype = out_dtype or out.dtype
        out.shape = out_shape if out_shape is not None else out.shape
        return out

    def not_standard(self, reason: str) -> UnsupportedOpError:
        """Return the error for the current node when standard Khronos NNEF cannot express it."""
        what = op_name(self.node) if self.node is not None else "the graph"
        where = source_line(self.node) if self.node is not None else ""
        return UnsupportedOpError(
            f"{what} cannot be exported to standard Khronos NNEF: {reason}. Export it with "
            f"TractNNEF(...), whose tract extensions cover it." + (f"\n  at {where}" if where else ""))

    def _check_standard(self, name: str, args: tuple) -> None:
        """Raise unless `name(args)` is a standard NNEF op (or a declared fragment) on operands of its types."""
        if name not in STANDARD_OPS and name not in self.graph.fragments:
            raise self.not_standard(f"it needs the operation {name}, which is not in standard NNEF")
        if name in GENERIC_OPS:
            return
        wanted = "logical" if name in LOGICAL_OPS else "scalar"
        for a in args:
            for t in a if isinstance(a, (list, tuple)) else (a,):
                if isinstance(t, Tensor) and t.dtype is not None and khronos_type(t.dtype) != wanted:
                    raise self.not_standard(f"standard {name} takes tensor<{wanted}> operands, not "
                                            f"tensor<{khronos_type(t.dtype)}> ({t.dtype} data)")

    def _equal_ranks(self, args: tuple) -> tuple:
        """Unsqueeze lower-rank tensor operands at the front to the highest operand rank."""
        if any(isinstance(a, Tensor) and a.shape is None for a in args):
            raise LoweringError(f"internal: an operand of a broadcasting op has no known shape ({args})")
        top = max((a.rank for a in args if isinstance(a, Tensor)), default=0)
        fixed = []
        for a in args:
            if isinstance(a, Tensor) and a.shape is not None and 0 < a.rank < top:
                a = self.op("unsqueeze", a, axes=list(range(top - a.rank)))
            fixed.append(a)
        return tuple(fixed)

    def require(self, registry: str) -> None:
        """Declare that the graph uses a tract registry (emits `extension tract_registry ...;`);
        on the Khronos target, raise the error that names the op and suggests TractNNEF."""
        if self.khronos:
            raise self.not_standard(f"it needs tract's {registry} operators")
        self.graph.registries.add(registry)

    def seed(self) -> int | None:
        """Return the seed of the next random operator: the target's seed plus the count of random
        operators so far (each draws its own stream), or None when the target asks tract to seed
        every run from the system."""
        self.random_ops += 1
        return None if self.random_seed is None else self.random_seed + self.random_ops - 1

    def fragment(self, name: str, text: str) -> None:
        """Declare a fragment definition the graph uses (emitted once)."""
        self.graph.fragments.setdefault(name, text)

    def const(self, value: Any, dtype: str, name: str = "const") -> Tensor:
        """Return a variable holding a small constant array of the given tract dtype."""
        array = np.asarray(value, dtype=NUMPY_DTYPES[dtype])
        self.constants += 1
        return self.variable(array, self.fresh(name), f"constants/{name}_{self.constants}")

    def variable(self, array: np.ndarray, name: str, label: str) -> Tensor:
        """Append a `variable` reading `array` from `<label>.dat` and return its tensor. Khronos:
        typed `variable<integer>`; a bool array is stored as scalar and compared with 0 (the
        Khronos reader wants 1-bit bools). An empty bool array is stored as u8 and cast: tract
        0.23.9 refuses to load an empty bool .dat ("Shape and len mismatch ... bytes:0")."""
        dtype = NUMPY_DTYPE_NAMES[array.dtype.name]
        if self.khronos and dtype == "bool":
            stored = self.variable(array.astype(np.float32), name, label)
            return self.op("ne", stored, 0.0, out_dtype="bool")
        if dtype == "bool" and array.size == 0:
            return self.cast(self.variable(array.astype(np.uint8), name, label), "bool")
        generic = khronos_type(dtype) if self.khronos and khronos_type(dtype) != "scalar" else None
        t = Tensor(name, dtype, tuple(array.shape), data=array, label=label)
        self.graph.operations.append(Operation("variable", (), {"shape": list(array.shape), "label": label},
                                               (t,), generic))
        return t

    def cast(self, x: Tensor, dtype: str) -> Tensor:
        """Return x converted to `dtype` (x itself when it already has it; on the Khronos target,
        when it has the same standard type)."""
        if x.dtype == dtype:
            return x
        if self.khronos:
            target = khronos_type(dtype)
            if khronos_type(x.dtype) == target:
                return x
            if target == "logical":  # `x != 0`, as tract's cast does (nnef_tools cannot cast<logical>)
                return self.op("ne", self.cast(x, "f32"), 0.0)
            return self.op("cast", x, out_dtype=dtype, generic=target)
        self.require("tract_core")
        return self.op("tract_core_cast", x, to=dtype)

    # -- facts about the current node ----------------------------------------------------
    @property
    def out(self) -> torch.Tensor:
        """The fake tensor the current node produces (its dtype/shape as PyTorch computed them)."""
        return self.node.meta["val"]

    @property
    def out_dtype(self) -> str:
        return nnef_dtype(self.out.dtype)

    def dim(self, d: Any) -> int | Expr:
        """Return a dimension as an int, or as a tract expression when symbolic."""
        if isinstance(d, torch.SymInt):
            expr = d.node.expr.xreplace(self.known_sizes) if self.known_sizes else d.node.expr
            if expr.is_number:
                return int(expr)
            return Expr(tract_expr(expr, self.symbols))
        return int(d)

    def bind_size(self, d: Any, value: int | None = None) -> int | Expr:
        """Bind a size torch.export read from tensor data (an unbacked symbol, e.g. the row count of
        nonzero's output) and return it as a dim: to `value` when known at export time, else to a
        fresh tract symbol, declared in the graph, that tract binds at run time from the first output
        whose shape holds it (a lowering must emit that output with the returned dim in its shape)."""
        if not isinstance(d, torch.SymInt) or d.node.expr.is_number:
            return self.dim(d)
        expr = d.node.expr
        if not isinstance(expr, sympy.Symbol):
            raise LoweringError(f"internal: the data-dependent size {expr} is not a plain symbol")
        if str(expr) in self.symbols or expr in self.known_sizes:
            return self.dim(d)
        if value is not None:
            self.known_sizes[expr] = sympy.Integer(value)
            return int(value)
        size = self.new_size(f"n_{expr}")
        self.symbols[str(expr)] = size.text
        return size

    def new_size(self, base: str = "n") -> Expr:
        """Declare a fresh tract symbol for a size known only at run time that no PyTorch size names
        (tract binds it from the first output whose shape holds it)."""
        name = self.fresh(base)
        self.graph.symbols.append(name)
        return Expr(name)

    def shape_of(self, value: torch.Tensor) -> tuple:
        return tuple(self.dim(d) for d in value.shape)


UNARY_OPS = {
    "abs", "neg", "exp", "log", "sqrt", "rsqrt", "sigmoid", "tanh", "relu", "sin", "cos", "tan", "asin", "acos",
    "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "floor", "ceil", "sign", "recip", "not", "sqr", "copy",
    "leaky_relu", "tract_core_erf", "tract_core_round_even", "tract_core_silu", "tract_core_gelu_approx",
    "tract_core_bitnot", "softmax", "tract_core_log_softmax", "tract_core_cast", "tract_core_is_nan",
    "tract_core_is_inf", "tract_core_trilu", "cast", "round", "silu", "erf",
}
COMPARISONS = {"lt", "gt", "le", "ge", "eq", "ne", "and", "or", "tract_core_is_nan"}
BROADCASTING = {"add", "sub", "mul", "div", "pow", "min", "max", "select", "tract_core_xor", "tract_core_bitand",
                "tract_core_bitor", "tract_core_bitxor", "tract_shl", "tract_shr"} | COMPARISONS - {"tract_core_is_nan"}
REDUCTIONS = {"sum_reduce", "mean_reduce", "max_reduce", "min_reduce", "any_reduce", "all_reduce",
              "argmax_reduce", "argmin_reduce", "tract_core_product_reduce"}


def _broadcast(shapes: list[tuple]) -> tuple:
    """Return the numpy-style broadcast of shapes (symbolic dims win over 1)."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = [s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0]
        out.append(next((d for d in dims if d != 1), 1))
    return tuple(out)


def _reshaped(shape: tuple, target: list) -> tuple | None:
    """Return the shape `reshape(shape=target)` gives: 0 copies a dim, one -1 is inferred."""
    out = [shape[i] if d == 0 else d for i, d in enumerate(target)]
    if -1 in out:
        known = [d for d in out if d != -1]
        if not (static(shape) and static(known)):
            return None
        out[out.index(-1)] = math.prod(shape) // max(math.prod(known), 1)
    return tuple(out)


def _infer_shape(name: str, args: tuple, attribs: dict) -> tuple | None:
    """Return the output shape of common NNEF ops from their operands, or None if unknown."""
    tensors = [a for a in args if isinstance(a, Tensor)]
    if any(t.shape is None for t in tensors):
        return None
    if name in UNARY_OPS and tensors:
        return tensors[0].shape
    if name in BROADCASTING and tensors:
        return _broadcast([t.shape for t in tensors])
    if name in REDUCTIONS and tensors:
        return tuple(1 if i in attribs["axes"] else d for i, d in enumerate(tensors[0].shape))
    if name == "unsqueeze":
        shape = list(tensors[0].shape)
        for a in sorted(attribs["axes"]):
            shape.insert(a, 1)
        return tuple(shape)
    if name == "squeeze":
        return tuple(d for i, d in enumerate(tensors[0].shape) if i not in attribs["axes"])
    if name == "transpose":
        perm = list(attribs["axes"]) + list(range(len(attribs["axes"]), tensors[0].rank))
        return tuple(tensors[0].shape[p] for p in perm)
    if name == "reshape":
        return _reshaped(tensors[0].shape, list(attribs["shape"]))
    if name == "tract_core_broadcast":
        return _broadcast([tensors[0].shape, tuple(attribs["shape"])])
    if name == "matmul":
        a, w = tensors[0].shape, tensors[1].shape
        m = a[-1] if attribs.get("transposeA") else a[-2]
        n = w[-2] if attribs.get("transposeB") else w[-1]
        return _broadcast([a[:-2], w[:-2]]) + (m, n)
    if name in ("tract_core_gather", "tract_core_gather_elements") and len(tensors) == 2:
        x, idx, ax = tensors[0].shape, tensors[1].shape, attribs["axis"]
        return idx if name == "tract_core_gather_elements" else x[:ax] + idx + x[ax + 1:]
    if name == "slice" and all(isinstance(v, int) for v in attribs["begin"] + attribs["end"]):
        shape = list(tensors[0].shape)
        for a, lo, hi, st in zip(attribs["axes"], attribs["begin"], attribs["end"],
                                 attribs.get("stride") or [1] * len(attribs["axes"])):
            shape[a] = max(0, -(-(hi - lo) // st))
        return tuple(shape)
    if name == "concat" and all(isinstance(t, Tensor) and t.shape is not None for t in args[0]):
        shape = list(args[0][0].shape)
        dims = [t.shape[attribs["axis"]] for t in args[0]]
        shape[attribs["axis"]] = sum(dims) if all(isinstance(d, int) for d in dims) else None
        return tuple(shape) if shape[attribs["axis"]] is not None else None
    if name == "tract_transformers_sdpa":
        return tensors[0].shape[:-1] + tensors[2].shape[-1:]
    return None


def _integer_literals(args: tuple) -> tuple:
    """Write integral float literals as integers when a comparison's tensor operand is an integer
    tensor (tract < 0.23 finds no common type for an integer tensor and a float literal)."""
    if not any(isinstance(a, Tensor) and a.dtype and a.dtype[0] in "iu" for a in args):
        return args
    return tuple(int(a) if isinstance(a, float) and a.is_integer() else a for a in args)


def _infer_dtype(name: str, args: tuple, attribs: dict) -> str | None:
    """Return the output dtype of common NNEF ops from their operands, or None if unknown."""
    if name in COMPARISONS:
        return "bool"
    if name == "tract_core_cast":
        return attribs["to"]
    if name == "cast":
        return None
    if name in ("argmax_reduce", "argmin_reduce"):
        return "i64"
    operands = [a for a in (args[1:] if name == "select" else args) if isinstance(a, Tensor)]
    if operands and (name in UNARY_OPS | BROADCASTING | REDUCTIONS or name in (
            "unsqueeze", "squeeze", "transpose", "reshape", "tract_core_broadcast", "slice", "matmul",
            "tract_core_gather", "tract_core_gather_elements", "tract_core_gather_nd", "tract_transformers_sdpa")):
        return operands[0].dtype
    if name == "concat" and args[0]:
        return args[0][0].dtype
    return None


def _bind(node: torch.fx.Node) -> dict[str, Any]:
    """Return the node's arguments keyed by the names in the op's ATen schema."""
    schema = node.target._schema
    bound = {}
    for i, arg in enumerate(schema.arguments):
        if i < len(node.args):
            bound[arg.name] = node.args[i]
        elif arg.name in node.kwargs:
            bound[arg.name] = node.kwargs[arg.name]
    return bound


def _symbolic_tensor_arguments(node: torch.fx.Node, kwargs: dict[str, Any]) -> list[str]:
    """Return the names of the arguments that received a symbolic size (an Expr) where the op reads a
    tensor: Tensor-typed ones, and Scalar-typed ones of ops on tensors (`rsub(x, S)`, not `arange(S)`)."""
    arguments = node.target._schema.arguments
    on_tensors = any(isinstance(arg.type, torch.TensorType) for arg in arguments)
    kinds = (torch.TensorType, torch.NumberType) if on_tensors else (torch.TensorType,)
    return [arg.name for arg in arguments if isinstance(kwargs.get(arg.name), Expr) and isinstance(arg.type, kinds)]


def _scope(node: torch.fx.Node) -> str:
    """Return the dotted path of the innermost module that created `node` ('' at the root)."""
    stack = node.meta.get("nn_module_stack")
    return list(stack.values())[-1][0] if stack else ""


def op_name(node: torch.fx.Node) -> str:
    """Return the qualified name of a call_function node's target ('aten::add.Tensor')."""
    t = node.target
    if isinstance(t, torch._ops.OpOverload):
        return t.name()
    return f"{getattr(t, '__module__', '')}.{getattr(t, '__name__', repr(t))}".lstrip(".")


def _is_symbolic(node: torch.fx.Node) -> bool:
    return isinstance(node.meta.get("val"), (torch.SymInt, torch.SymFloat, torch.SymBool, int, float, bool))


def _reads_data(node: torch.fx.Node, registry: LoweringRegistry) -> bool:
    """Tell whether a node giving a Python scalar reads it from tensor data with a lowered op
    (`aten::_local_scalar_dense`, i.e. `.item()`): it is lowered to a rank-0 tensor."""
    return isinstance(node.target, torch._ops.OpOverload) and op_name(node) in registry


def unsupported_ops(program: ExportedProgram, registry: LoweringRegistry) -> dict[str, list[torch.fx.Node]]:
    """Return every op of the graph that has no lowering, with the nodes that use it."""
    missing: dict[str, list[torch.fx.Node]] = collections.defaultdict(list)
    for node in program.graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem or _is_symbolic(node):
            continue
        if not isinstance(node.target, torch._ops.OpOverload) or op_name(node) not in registry:
            missing[op_name(node)].append(node)
    return dict(missing)


def format_unsupported(missing: dict[str, list[torch.fx.Node]]) -> str:
    """Return the error text that lists every unsupported op with its count and source lines."""
    total = sum(len(v) for v in missing.values())
    lines = [f"{total} node(s) use {len(missing)} op(s) that fx2nnef cannot lower to NNEF (step 3/5: lowering):"]
    for name, nodes in sorted(missing.items(), key=lambda kv: -len(kv[1])):
        why = not_expressible(name)
        lines.append(f"  {name}  x{len(nodes)}" + (f"  (not expressible: {why})" if why else ""))
        for where in dict.fromkeys(source_line(n) or n.format_node() for n in nodes):
            lines.append(f"      at {where}")
    lines.append("Register a lowering (see README: 'Register a lowering') or rewrite these ops in the model.")
    return "\n".join(lines)


def lower_program(program: ExportedProgram, registry: LoweringRegistry,
                  symbols: dict[str, str] | None = None, dialect: str = "tract",
                  fused_attention: bool = False, tract_version: str | None = None,
                  naming_scheme: str = "natural_verbose", streaming: bool = False,
                  random_seed: int | None = 0) -> Graph:
    """Translate the program into an NNEF Graph of the dialect ("tract" or "khronos") for the given
    tract release (the newest when None), its tensors named by `naming_scheme` (naming.py), using
    only operators tract can pulse when `streaming`, random operators seeded from `random_seed`
    (None: by tract on every run); raise UnsupportedOpError listing all missing ops."""
    missing = unsupported_ops(program, registry)
    if missing:
        raise UnsupportedOpError(format_unsupported(missing))
    graph = Graph()
    b = Builder(graph, symbols, dialect, fused_attention, tract_version, naming_scheme, streaming, random_seed)
    out = output_node(program)
    out_names = out.meta.get(OUTPUT_NAMES) or [f"output_{i}" for i in range(len(out.args[0]))]
    user = [n for n, s in placeholders(program) if s.kind == InputKind.USER_INPUT]
    b.names.update(out_names)
    b.names.update(input_name(n) for n in user)

    env: dict[torch.fx.Node, Any] = {}
    storages: dict[tuple, Tensor] = {}
    specs = dict(placeholders(program))
    for node in program.graph.nodes:
        b.node = node
        if node.op == "placeholder":
            if not node.users and specs[node].kind != InputKind.USER_INPUT:
                continue
            env[node] = _placeholder(b, program, node, specs[node], storages)
        elif node.op == "call_function":
            env[node] = _call(b, node, env, registry)
    b.node = None

    used: set[int] = set()
    for name, value in zip(out_names, out.args[0]):
        t = env[value]
        if t in graph.inputs and t.name == name:  # an input returned as is, under its own name
            graph.outputs.append(t)
            used.add(name)
            continue
        if t.name in used or any(op.name in ("variable", "external", "tract_core_external") and op.outputs[0] is t
                                 for op in graph.operations) or t in graph.inputs:
            t = b.op("copy", t)
        t.name = name
        used.add(name)
        graph.outputs.append(t)
    if not b.khronos:
        _materialize_contracted_broadcasts(b, graph)
    share_expressions(graph)
    store_variables_at_use_rank(graph)
    fold_zero_pads_into_convs(graph)
    naming.rename(graph, naming_scheme)
    return graph


# ops that tract 0.23.9 moves a broadcast through (element-wise and layout ops)
BROADCAST_TRANSPARENT = UNARY_OPS | BROADCASTING | {"transpose", "reshape", "squeeze", "unsqueeze", "slice",
                                                    "tract_core_broadcast", "tile"}


def _materialize_contracted_broadcasts(b: Builder, graph: Graph) -> None:
    """Rewrite each static `tract_core_broadcast`, and each `tile` that only repeats size-1 axes (a
    broadcast too: `x.repeat(2)` of a 0-d x), whose broadcast axes reach a matmul's matrix axes
    through element-wise and layout ops as `add(x, zeros)` (`or(x, false)` for bools): tract 0.23.9
    folds a broadcast into the einsum it feeds, and when the broadcast axis is the contraction axis
    it computes as if K were 1 (or aborts) - `x.expand(3, 4) @ w` silently gives `x * w[0]`. A
    broadcast onto the matmul's batch axes (grouped-query attention repeating its key/value heads)
    stays one: tract computes it right, without a copy."""
    producers = {t.name: op for op in graph.operations for t in op.outputs}
    found: dict[int, Operation] = {}
    for op in graph.operations:
        if op.name != "matmul":
            continue
        stack = [(a, _matrix_axes(a)) for a in op.args if isinstance(a, Tensor)]
        seen: set[tuple] = set()
        while stack:
            tensor, axes = stack.pop()
            producer = producers.get(tensor.name)
            key = (id(producer), None if axes is None else frozenset(axes))
            if producer is None or key in seen or producer.name not in BROADCAST_TRANSPARENT:
                continue
            seen.add(key)
            if producer.name in ("tract_core_broadcast", "tile") and _broadcasts_onto(producer, axes):
                found[id(producer)] = producer
            stack.extend((arg, _input_axes(producer, arg, axes)) for arg in producer.args if isinstance(arg, Tensor))
    for op in found.values():
        x = op.args[0]
        if x.shape is None or not static(x.shape):
            continue
        if op.name == "tile":
            repeats = list(op.attribs["repeats"])
            if not static(repeats) or any(r != 1 and d != 1 for d, r in zip(x.shape, repeats)):
                continue  # a true tile (of axes longer than 1): no broadcast to fold
            shape = [d * r for d, r in zip(x.shape, repeats)]
        else:
            shape = list(op.attribs["shape"])
            if not static(shape):
                continue
        start = len(graph.operations)
        if x.rank < len(shape):
            x = b.op("unsqueeze", x, axes=list(range(len(shape) - x.rank)))
        dtype = op.outputs[0].dtype or x.dtype
        zeros = b.const(np.zeros([n if d == 1 else 1 for n, d in zip(shape, x.shape)]), dtype, "broadcast")
        new = graph.operations[start:]
        del graph.operations[start:]
        at = graph.operations.index(op)
        graph.operations[at:at] = new
        op.name, op.args, op.attribs = ("or" if dtype == "bool" else "add"), (x, zeros), {}


def _matrix_axes(tensor: Tensor) -> set[int] | None:
    """Return the matrix (last two) axes of a matmul operand, or None when its rank is unknown."""
    return None if tensor.shape is None else set(range(max(len(tensor.shape) - 2, 0), len(tensor.shape)))


def _broadcasts_onto(op: Operation, axes: set[int] | None) -> bool:
    """Tell whether broadcast (or tile) `op` stretches a size-1 axis onto one of `axes` of its
    output (all axes when None), or adds axes (tract 0.23.9 folds a rank-raising broadcast into an
    einsum with the wrong rank and fails to load)."""
    x, out = op.args[0], op.outputs[0]
    if x.shape is None or out.shape is None or len(x.shape) != len(out.shape):
        return True
    return any(d == 1 and n != 1 for i, (d, n) in enumerate(zip(x.shape, out.shape)) if axes is None or i in axes)


def _input_axes(op: Operation, arg: Tensor, axes: set[int] | None) -> set[int] | None:
    """Map `axes` of `op`'s output back to the axes of its operand `arg` they come from (None: any)."""
    out = op.outputs[0]
    if axes is None or arg.shape is None or out.shape is None:
        return None
    rank, out_rank = len(arg.shape), len(out.shape)
    if op.name == "transpose":
        perm = list(op.attribs["axes"]) + list(range(len(op.attribs["axes"]), rank))
        return {perm[a] for a in axes}
    if op.name == "unsqueeze":
        kept = [a for a in range(out_rank) if a not in set(op.attribs["axes"])]
        return {kept.index(a) for a in axes if a in kept}
    if op.name == "squeeze":
        kept = [a for a in range(rank) if a not in set(op.attribs["axes"])]
        return {kept[a] for a in axes}
    if op.name == "reshape":
        groups = _reshape_groups(arg.shape, out.shape)
        return None if groups is None else {i for ins, outs in groups if axes & set(outs) for i in ins}
    return {a - (out_rank - rank) for a in axes if a >= out_rank - rank}  # element-wise, slice, broadcast


def _reshape_groups(source: tuple, target: tuple) -> list[tuple[list[int], list[int]]] | None:
    """Pair the axes of a reshape from `source` to `target` shape into (input axes, output axes)
    groups of equal size, or return None when a size is symbolic or the sizes do not pair up."""
    if not (static(source) and static(target)):
        return None
    groups, i, j = [], 0, 0
    while i < len(source) or j < len(target):
        ins, outs, p, q = [], [], 1, 1
        if i < len(source):
            ins, p, i = [i], source[i], i + 1
        if j < len(target):
            outs, q, j = [j], target[j], j + 1
        while p != q:
            if p < q and i < len(source):
                ins.append(i)
                p, i = p * source[i], i + 1
            elif q < p and j < len(target):
                outs.append(j)
                q, j = q * target[j], j + 1
            else:
                return None
        groups.append((ins, outs))
    return groups


def _placeholder(b: Builder, program: ExportedProgram, node: torch.fx.Node, spec, storages) -> Tensor:
    """Lower an input placeholder to `tract_core_external` (Khronos: `external<type>`), or a lifted
    tensor to a `variable` (of its Q4_0 blocks when the node carries them)."""
    val = node.meta["val"]
    if spec.kind == InputKind.USER_INPUT:
        t = Tensor(input_name(node), nnef_dtype(val.dtype), b.shape_of(val))
        b.graph.inputs.append(t)
        if b.khronos:
            b.graph.operations.append(Operation("external", (), {"shape": list(t.shape)}, (t,),
                                                khronos_type(t.dtype)))
            return t
        b.require("tract_core")
        b.graph.operations.append(Operation(
            "tract_core_external", (), {"shape": list(t.shape), "datum_type": t.dtype}, (t,)))
        return t
    store = program.constants if spec.kind == InputKind.CONSTANT_TENSOR or spec.target not in program.state_dict \
        else program.state_dict
    real = store[spec.target].detach()
    key = (real.untyped_storage().data_ptr(), real.storage_offset(), tuple(real.shape), real.stride(), real.dtype)
    if key in storages:
        return storages[key]
    data = node.meta.get(QUANTIZED)  # Q4_0 blocks
    if data is None:
        nnef_dtype(real.dtype)  # raises a LoweringError for a dtype the target lacks
        data = source_of(real)  # a weight in its checkpoint file: streamed when written
    if data is None:
        data = real.contiguous().numpy()
    t = b.variable(data, b.fresh(naming.base_name(b.naming, node.name, label=spec.target)), spec.target)
    storages[key] = t
    return t


def _convert(b: Builder, value: Any, env: dict) -> Any:
    """Map an fx argument to a lowering argument: Tensor, int/Expr dims, lists, literals."""
    if isinstance(value, torch.fx.Node):
        val = value.meta.get("val")
        if isinstance(env.get(value), Tensor) and not _bound(b, val):  # a scalar read from tensor data
            return env[value]
        if isinstance(val, torch.Tensor) or value in env and not isinstance(val, (torch.SymInt, int)):
            return env[value]
        return b.dim(val)
    if isinstance(value, (list, tuple)):
        return type(value)(_convert(b, v, env) for v in value)
    return value


def _bound(b: Builder, val: Any) -> bool:
    """Tell whether a SymInt is a size the builder can write (static, a dynamic axis or a bound size)."""
    if not isinstance(val, torch.SymInt):
        return False
    expr = val.node.expr.xreplace(b.known_sizes)
    return all(str(s) in b.symbols for s in expr.free_symbols)


def _call(b: Builder, node: torch.fx.Node, env: dict, registry: LoweringRegistry) -> Any:
    """Lower one call_function node and name its result after the node."""
    if node.target is operator.getitem:
        return env[node.args[0]][node.args[1]]
    if _is_symbolic(node) and not _reads_data(node, registry):
        return None
    lowering = registry.get(op_name(node))
    kwargs = {k: _convert(b, v, env) for k, v in _bind(node).items()}
    for name in _symbolic_tensor_arguments(node, kwargs):
        b.require("tract_core")   # a size used as a tensor (`arange(n) + P`): a 0-d i64 tensor of its value
        kwargs[name] = b.op("tract_core_cast", kwargs[name], to="i64", out_dtype="i64", out_shape=())
    for r in lowering.registries:
        b.require(r)
    before = len(b.graph.operations)
    try:
        result = lowering.fn(b, **kwargs)
    except UnsupportedOpError as e:
        where = source_line(node)
        raise UnsupportedOpError(f"{op_name(node)}: {e}" + (f"\n  at {where}" if where else "")) from e
    except FX2NNEFError:
        raise
    except Exception as e:
        where = source_line(node)
        raise LoweringError(f"lowering {lowering.fn.__name__} failed on {node.format_node()}: "
                            f"{type(e).__name__}: {e}" + (f"\n  at {where}" if where else "")) from e
    created = {t for op in b.graph.operations[before:] for t in op.outputs}
    _annotate(b, result, node.meta.get("val"), created)
    return result


def _annotate(b: Builder, result: Any, val: Any, created: set) -> None:
    """Give the tensors a lowering created the dtype and shape PyTorch computed for the node."""
    if isinstance(result, Tensor) and isinstance(val, torch.Tensor) and result in created:
        result.dtype = nnef_dtype(val.dtype)
        result.shape = b.shape_of(val)
    elif isinstance(result, (tuple, list)) and isinstance(val, (tuple, list)):
        for r, v in zip(result, val):
            _annotate(b, r, v, created)
