"""Random small PyTorch programs for the fuzzer, as hypothesis strategies.

A `Program` is a straight-line list of `Step`s over a pool of values: its 1-3 inputs, then one
value per step. Each step applies one op of `OPS` (about 70 common ATen-level ops: element-wise,
broadcasting binaries, reductions, shape ops, indexing, normalizations, pooling, convolution,
matmul/linear/einsum, resampling, casts) to values of the pool, with parameters drawn for the
operands' shapes. Shapes have size-1 and size-0 dims, dtypes are f32, f16, i64 and bool. A step whose
result holds a NaN is left out (tract's max/min and pools ignore NaN where torch propagates it:
a documented difference, not a fuzzing target); infinities stay.

`programs()` builds a program step by step, running every step eagerly on the program's own
inputs: a step PyTorch refuses is left out, so every program it yields runs in eager PyTorch.
Everything is a function of hypothesis' draws (tensor data and weights come from the program's
`seed`), so a failing program shrinks to a minimal one, printed by `Program.source()`.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

F32, F16, I64, BOOL = torch.float32, torch.float16, torch.int64, torch.bool
FLOATS = (F32, F16)
MAX_ELEMENTS = 4096          # a step whose result is larger is left out (keeps each case fast)
# ops that round or compare floats read float operands only from the program's inputs: two correct
# float implementations may round a computed value to either side of an integer, and tract's f32
# division is not correctly rounded (floor(x / x) is 0 for ~14 % of x; benchmarks/README.md)
ROUNDING = {"floor", "ceil", "round", "sign", "eq", "ne", "lt", "gt", "ge", "to"}


@dataclasses.dataclass(frozen=True)
class Step:
    """One op applied to values of the pool (by index), with its drawn parameters."""

    op: str
    operands: tuple[int, ...]
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)


@dataclasses.dataclass(frozen=True)
class Program:
    """Inputs (shape, dtype), steps, and the values (pool indices) the program returns."""

    inputs: tuple[tuple[tuple[int, ...], torch.dtype], ...]
    steps: tuple[Step, ...]
    outputs: tuple[int, ...]
    seed: int = 0

    def example_inputs(self) -> list[torch.Tensor]:
        """Return the program's input tensors (a function of `seed`)."""
        return [make_tensor(shape, dtype, self.seed * 7919 + i) for i, (shape, dtype) in enumerate(self.inputs)]

    def module(self) -> "ProgramModule":
        return ProgramModule(self)

    def has_dtype(self, dtype: torch.dtype) -> bool:
        """Tell whether any value of the program (with its example inputs) has `dtype`."""
        return any(v.dtype == dtype for v in evaluate(self, self.example_inputs(), all_values=True))

    def source(self) -> str:
        """Return the program as readable Python (how a failure is reported)."""
        names = [f"x{i}" for i in range(len(self.inputs))]
        lines = [f"# seed={self.seed}; inputs: " + ", ".join(
            f"{n}: {list(shape)} {str(dtype).replace('torch.', '')}" for n, (shape, dtype) in zip(names, self.inputs))]
        for k, step in enumerate(self.steps):
            args = ", ".join(names[i] for i in step.operands)
            params = ", ".join(f"{key}={value!r}" for key, value in step.params)
            name = f"v{k}"
            lines.append(f"{name} = {step.op}({args}{', ' if args and params else ''}{params})")
            names.append(name)
        lines.append("return " + ", ".join(names[i] for i in self.outputs))
        return "\n".join(lines)


def make_tensor(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Return a deterministic tensor: normal floats, small integers in [-5, 5], random bools."""
    generator = torch.Generator().manual_seed(seed)
    if dtype == BOOL:
        return torch.randint(0, 2, shape, generator=generator).bool()
    if dtype == I64:
        return torch.randint(-5, 6, shape, generator=generator)
    return torch.randn(shape, generator=generator).to(dtype)


class ProgramModule(torch.nn.Module):
    """Runs a Program: its weights are parameters, created from the program's seed."""

    def __init__(self, program: Program):
        super().__init__()
        self.program = program
        self.weights = torch.nn.ParameterList()
        self.slots: list[list[int]] = []
        for k, step in enumerate(program.steps):
            shapes = OPS[step.op].weights(step.kwargs)
            first = len(self.weights)
            for j, (shape, dtype) in enumerate(shapes):
                tensor = make_tensor(shape, dtype, program.seed * 104729 + k * 31 + j)
                self.weights.append(torch.nn.Parameter(tensor * 0.5, requires_grad=False))
            self.slots.append(list(range(first, first + len(shapes))))

    def forward(self, *inputs: torch.Tensor):
        values = run_steps(self.program, list(inputs), [[self.weights[i] for i in s] for s in self.slots])
        return tuple(values[i] for i in self.program.outputs)


def run_steps(program: Program, values: list[torch.Tensor], weights: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """Apply the program's steps to the pool `values` (extended in place) and return it."""
    for step, step_weights in zip(program.steps, weights):
        values.append(OPS[step.op].fn([values[i] for i in step.operands], step.kwargs, step_weights))
    return values


def evaluate(program: Program, inputs: list[torch.Tensor], all_values: bool = False) -> list[torch.Tensor]:
    """Run the program eagerly (no grad); return its outputs, or every value of the pool."""
    module = program.module().eval()
    with torch.no_grad():
        if not all_values:
            return list(module(*inputs))
        weights = [[module.weights[i] for i in s] for s in module.slots]
        return run_steps(program, list(inputs), weights)


# ------------------------------------------------------------------------------------------
# The op vocabulary


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """An op of the vocabulary: which values it takes, how its parameters are drawn, how it runs.

    `accepts(value)` filters the first operand; `draw(draw, first, pool)` returns the other operand
    indices and the parameters (or None when the op does not fit); `fn(operands, params, weights)`
    runs it; `weights(params)` gives the (shape, dtype) of the parameters it needs.
    """

    name: str
    accepts: Callable[[torch.Tensor], bool]
    draw: Callable[..., tuple[tuple[int, ...], dict] | None]
    fn: Callable[[list[torch.Tensor], dict, list[torch.Tensor]], torch.Tensor]
    weights: Callable[[dict], list[tuple[tuple[int, ...], torch.dtype]]] = lambda p: []


OPS: dict[str, OpSpec] = {}


def _register(spec: OpSpec) -> None:
    OPS[spec.name] = spec


def is_float(v: torch.Tensor) -> bool:
    return v.dtype in FLOATS


def is_number(v: torch.Tensor) -> bool:
    return v.dtype in FLOATS or v.dtype == I64


def ranked(low: int, high: int = 8, check: Callable[[torch.Tensor], bool] = is_float):
    """Accept values of `check` whose rank is in [low, high]."""
    return lambda v: check(v) and low <= v.dim() <= high


def no_params(draw, first, pool):
    return (), {}


def _dim(draw, v: torch.Tensor) -> int:
    """Draw an axis of `v` (negative half of the time, as users write it)."""
    axis = draw(st.integers(0, v.dim() - 1))
    return axis - v.dim() if draw(st.booleans()) else axis


# element-wise unary ops: name -> function of the tensor
UNARY = {
    "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "exp": torch.exp,
    "log": torch.log, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt, "sin": torch.sin, "cos": torch.cos,
    "erf": torch.erf, "floor": torch.floor, "ceil": torch.ceil, "round": torch.round,
    "reciprocal": torch.reciprocal, "gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu, "softplus": F.softplus, "elu": F.elu, "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid, "mish": F.mish, "logsigmoid": F.logsigmoid,
    "sign": torch.sign, "atan": torch.atan,
}
for _name, _fn in UNARY.items():
    _register(OpSpec(_name, is_float, no_params, lambda xs, p, w, f=_fn: f(xs[0])))
_register(OpSpec("neg", is_number, no_params, lambda xs, p, w: torch.neg(xs[0])))
_register(OpSpec("abs", is_number, no_params, lambda xs, p, w: torch.abs(xs[0])))
_register(OpSpec("logical_not", lambda v: v.dtype == BOOL, no_params, lambda xs, p, w: torch.logical_not(xs[0])))


def _clamp_params(draw, first, pool):
    low = draw(st.sampled_from([-1.0, -0.5, 0.0]))
    high = draw(st.sampled_from([0.5, 1.0, 2.0, None]))
    return (), {"min": low if first.dtype != I64 else int(low), "max": high if high is None or first.dtype != I64 else int(high)}


_register(OpSpec("clamp", is_number, _clamp_params, lambda xs, p, w: torch.clamp(xs[0], p["min"], p["max"])))


def _partner(draw, first: torch.Tensor, pool: list[torch.Tensor], check: Callable[[torch.Tensor], bool]) -> int | None:
    """Draw the index of a pool value that broadcasts with `first` and passes `check`, or None."""
    fits = []
    for i, v in enumerate(pool):
        try:
            torch.broadcast_shapes(first.shape, v.shape)
        except RuntimeError:
            continue
        if check(v):
            fits.append(i)
    return draw(st.sampled_from(fits)) if fits else None


def _binary(check_first, check_other, scalar=None):
    """Parameters of a broadcasting binary op: another pool value, or (half the time) a scalar."""
    def draw_params(draw, first, pool):
        if scalar is not None and draw(st.booleans()):
            return (), {"scalar": draw(st.sampled_from(scalar(first)))}
        other = _partner(draw, first, pool, check_other)
        return None if other is None else ((other,), {})
    return check_first, draw_params


def _scalars(v: torch.Tensor) -> list:
    return [2, -1, 3] if v.dtype == I64 else [0.5, -1.5, 2.0]


BINARY = {
    "add": (torch.add, is_number, is_number, _scalars),
    "sub": (torch.sub, is_number, is_number, _scalars),
    "mul": (torch.mul, is_number, is_number, _scalars),
    "div": (torch.div, is_float, is_number, _scalars),
    "maximum": (torch.maximum, is_number, is_number, None),
    "minimum": (torch.minimum, is_number, is_number, None),
    "pow": (torch.pow, is_float, is_float, lambda v: [2.0, 0.5, 3.0]),
    "remainder": (torch.remainder, is_number, is_number, lambda v: [3, 2] if v.dtype == I64 else [1.5, 2.0]),
    "floor_divide": (torch.floor_divide, lambda v: v.dtype == I64, lambda v: v.dtype == I64, lambda v: [2, 3]),
    "eq": (torch.eq, is_number, is_number, _scalars),
    "lt": (torch.lt, is_number, is_number, _scalars),
    "gt": (torch.gt, is_number, is_number, _scalars),
    "ge": (torch.ge, is_number, is_number, None),
    "ne": (torch.ne, is_number, is_number, None),
    "logical_and": (torch.logical_and, lambda v: v.dtype == BOOL, lambda v: v.dtype == BOOL, None),
    "logical_or": (torch.logical_or, lambda v: v.dtype == BOOL, lambda v: v.dtype == BOOL, None),
    "logical_xor": (torch.logical_xor, lambda v: v.dtype == BOOL, lambda v: v.dtype == BOOL, None),
    "atan2": (torch.atan2, is_float, is_float, None),
}


def _apply_binary(f):
    return lambda xs, p, w: f(xs[0], xs[1] if len(xs) > 1 else p["scalar"])


for _name, (_fn, _first, _other, _scalar) in BINARY.items():
    _accepts, _draw = _binary(_first, _other, _scalar)
    _register(OpSpec(_name, _accepts, _draw, _apply_binary(_fn)))


def _where_params(draw, first, pool):
    a = _partner(draw, first, pool, is_number)
    b = _partner(draw, first, pool, is_number) if a is not None else None
    return None if b is None else ((a, b), {})


_register(OpSpec("where", lambda v: v.dtype == BOOL, _where_params, lambda xs, p, w: torch.where(*xs)))


def _masked_fill_params(draw, first, pool):
    mask = _partner(draw, first, pool, lambda v: v.dtype == BOOL)
    return None if mask is None else ((mask,), {"value": draw(st.sampled_from([0.0, -1.0, float("-inf")]))})


_register(OpSpec("masked_fill", is_float, _masked_fill_params,
                 lambda xs, p, w: xs[0].masked_fill(xs[1], p["value"])))


def _cast_params(draw, first, pool):
    return (), {"dtype": draw(st.sampled_from([F32, F16, I64, BOOL]))}


_register(OpSpec("to", lambda v: True, _cast_params, lambda xs, p, w: xs[0].to(p["dtype"])))

# ------------------------------------------------------------------------------ reductions


def _reduce_params(draw, first, pool):
    if first.dim() == 0:
        return (), {"dim": None, "keepdim": False}
    return (), {"dim": _dim(draw, first), "keepdim": draw(st.booleans())}


REDUCTIONS = {
    "sum": (lambda x, d, k: x.sum() if d is None else x.sum(d, keepdim=k), is_number),
    "mean": (lambda x, d, k: x.mean() if d is None else x.mean(d, keepdim=k), is_float),
    "amax": (lambda x, d, k: x.amax() if d is None else x.amax(d, keepdim=k), is_number),
    "amin": (lambda x, d, k: x.amin() if d is None else x.amin(d, keepdim=k), is_number),
    "prod": (lambda x, d, k: x.prod() if d is None else x.prod(d, keepdim=k), is_number),
    "argmax": (lambda x, d, k: x.argmax() if d is None else x.argmax(d, keepdim=k), is_number),
    "argmin": (lambda x, d, k: x.argmin() if d is None else x.argmin(d, keepdim=k), is_number),
    "var": (lambda x, d, k: x.var() if d is None else x.var(d, keepdim=k), is_float),
    "std": (lambda x, d, k: x.std() if d is None else x.std(d, keepdim=k), is_float),
    "logsumexp": (lambda x, d, k: torch.logsumexp(x, () if d is None else d, keepdim=k), is_float),
    "any": (lambda x, d, k: x.any() if d is None else x.any(d, keepdim=k), lambda v: v.dtype == BOOL),
    "all": (lambda x, d, k: x.all() if d is None else x.all(d, keepdim=k), lambda v: v.dtype == BOOL),
    "norm": (lambda x, d, k: torch.linalg.vector_norm(x, dim=d, keepdim=k), is_float),
    "max_values": (lambda x, d, k: x.max() if d is None else x.max(d, keepdim=k).values, is_number),
}
for _name, (_fn, _check) in REDUCTIONS.items():
    _register(OpSpec(_name, _check, _reduce_params, lambda xs, p, w, f=_fn: f(xs[0], p["dim"], p["keepdim"])))


def _axis_params(draw, first, pool):
    return (), {"dim": _dim(draw, first)}


_register(OpSpec("softmax", ranked(1), _axis_params, lambda xs, p, w: torch.softmax(xs[0], p["dim"])))
_register(OpSpec("log_softmax", ranked(1), _axis_params, lambda xs, p, w: torch.log_softmax(xs[0], p["dim"])))
_register(OpSpec("cumsum", ranked(1, check=is_number), _axis_params, lambda xs, p, w: torch.cumsum(xs[0], p["dim"])))


def _topk_params(draw, first, pool):
    dim = _dim(draw, first)
    if first.shape[dim] == 0:
        return None
    return (), {"k": draw(st.integers(1, first.shape[dim])), "dim": dim, "largest": draw(st.booleans())}


_register(OpSpec("topk_values", ranked(1, check=is_number), _topk_params,
                 lambda xs, p, w: torch.topk(xs[0], p["k"], p["dim"], p["largest"]).values))
_register(OpSpec("sort_values", ranked(1, check=is_number), _axis_params,
                 lambda xs, p, w: torch.sort(xs[0], p["dim"]).values))

# ------------------------------------------------------------------------------ shape ops


def _factorizations(n: int) -> list[tuple[int, ...]]:
    """Return a few shapes with n elements (n > 0): 1-D, 2-D splits, with leading/trailing 1s."""
    shapes = [(n,), (1, n), (n, 1)]
    shapes += [(a, n // a) for a in range(2, n) if n % a == 0][:3]
    shapes += [(a, b, n // (a * b)) for a in range(2, n) for b in range(2, n) if n % (a * b) == 0][:2]
    return shapes


def _reshape_params(draw, first, pool):
    n = first.numel()
    if n == 0:
        choices = [(0,), (0, 3), (2, 0), (-1, 0) if 0 in first.shape else (0,)]
        return (), {"shape": draw(st.sampled_from(choices))}
    shape = list(draw(st.sampled_from(_factorizations(n))))
    if draw(st.booleans()) and len(shape) > 0:
        shape[draw(st.integers(0, len(shape) - 1))] = -1
    return (), {"shape": tuple(shape)}


_register(OpSpec("reshape", lambda v: True, _reshape_params, lambda xs, p, w: xs[0].reshape(p["shape"])))


def _flatten_params(draw, first, pool):
    start = draw(st.integers(0, max(first.dim() - 1, 0)))
    return (), {"start": start, "end": draw(st.integers(start, max(first.dim() - 1, 0)))}


_register(OpSpec("flatten", lambda v: True, _flatten_params, lambda xs, p, w: torch.flatten(xs[0], p["start"], p["end"])))


def _permute_params(draw, first, pool):
    return (), {"dims": tuple(draw(st.permutations(range(first.dim()))))}


_register(OpSpec("permute", ranked(2, check=lambda v: True), _permute_params, lambda xs, p, w: xs[0].permute(p["dims"])))


def _transpose_params(draw, first, pool):
    return (), {"a": _dim(draw, first), "b": _dim(draw, first)}


_register(OpSpec("transpose", ranked(2, check=lambda v: True), _transpose_params,
                 lambda xs, p, w: xs[0].transpose(p["a"], p["b"])))


def _unsqueeze_params(draw, first, pool):
    return (), {"dim": draw(st.integers(-first.dim() - 1, first.dim()))}


_register(OpSpec("unsqueeze", ranked(0, 5, lambda v: True), _unsqueeze_params, lambda xs, p, w: xs[0].unsqueeze(p["dim"])))


def _squeeze_params(draw, first, pool):
    ones = [i for i, d in enumerate(first.shape) if d == 1]
    return None if not ones else ((), {"dim": draw(st.sampled_from(ones + [None]))})


_register(OpSpec("squeeze", ranked(1, check=lambda v: True), _squeeze_params,
                 lambda xs, p, w: xs[0].squeeze() if p["dim"] is None else xs[0].squeeze(p["dim"])))


def _expand_params(draw, first, pool):
    shape = [d if d != 1 else draw(st.sampled_from([1, 3, 4])) for d in first.shape]
    if draw(st.booleans()):
        shape = [draw(st.sampled_from([1, 2]))] + shape
    return (), {"shape": tuple(shape)}


_register(OpSpec("expand", ranked(0, 5, lambda v: True), _expand_params, lambda xs, p, w: xs[0].expand(p["shape"])))


def _cat_params(draw, first, pool):
    dim = _dim(draw, first)
    fits = [i for i, v in enumerate(pool) if v.dim() == first.dim() and v.dtype == first.dtype and all(
        a == b for k, (a, b) in enumerate(zip(v.shape, first.shape)) if k != dim % first.dim())]
    return (tuple(draw(st.lists(st.sampled_from(fits), min_size=1, max_size=2))), {"dim": dim})


_register(OpSpec("cat", ranked(1, check=lambda v: True), _cat_params, lambda xs, p, w: torch.cat(xs, p["dim"])))


def _stack_params(draw, first, pool):
    fits = [i for i, v in enumerate(pool) if v.shape == first.shape and v.dtype == first.dtype]
    return (draw(st.sampled_from(fits)),), {"dim": draw(st.integers(-first.dim() - 1, first.dim()))}


_register(OpSpec("stack", ranked(0, 4, lambda v: True), _stack_params, lambda xs, p, w: torch.stack(xs, p["dim"])))


def _slice_params(draw, first, pool):
    dim = _dim(draw, first)
    size = first.shape[dim]
    start = draw(st.integers(-size - 1, size + 1))
    stop = draw(st.one_of(st.none(), st.integers(-size - 1, size + 2)))
    return (), {"dim": dim, "start": start, "stop": stop, "step": draw(st.sampled_from([1, 1, 2, 3]))}


def _slice(xs, p, w):
    index = [slice(None)] * xs[0].dim()
    index[p["dim"]] = slice(p["start"], p["stop"], p["step"])
    return xs[0][tuple(index)]


_register(OpSpec("slice", ranked(1, check=lambda v: True), _slice_params, _slice))


def _select_params(draw, first, pool):
    dim = _dim(draw, first)
    size = first.shape[dim]
    return None if size == 0 else ((), {"dim": dim, "index": draw(st.integers(-size, size - 1))})


_register(OpSpec("select", ranked(1, check=lambda v: True), _select_params, lambda xs, p, w: xs[0].select(p["dim"], p["index"])))


def _dims_params(draw, first, pool):
    return (), {"dims": tuple(draw(st.lists(st.integers(0, first.dim() - 1), min_size=1, max_size=2, unique=True)))}


_register(OpSpec("flip", ranked(1, check=lambda v: True), _dims_params, lambda xs, p, w: torch.flip(xs[0], p["dims"])))


def _repeat_params(draw, first, pool):
    extra = draw(st.integers(0, 1))
    return (), {"repeats": tuple(draw(st.integers(1, 2)) for _ in range(first.dim() + extra))}


_register(OpSpec("repeat", ranked(0, 4, lambda v: True), _repeat_params, lambda xs, p, w: xs[0].repeat(p["repeats"])))


def _roll_params(draw, first, pool):
    return (), {"shifts": draw(st.integers(-3, 3)), "dim": _dim(draw, first)}


_register(OpSpec("roll", ranked(1, check=lambda v: True), _roll_params, lambda xs, p, w: torch.roll(xs[0], p["shifts"], p["dim"])))


def _index_select_params(draw, first, pool):
    dim = _dim(draw, first)
    size = first.shape[dim]
    if size == 0:
        return None
    return (), {"dim": dim, "index": tuple(draw(st.lists(st.integers(0, size - 1), min_size=0, max_size=4)))}


_register(OpSpec("index_select", ranked(1, check=lambda v: True), _index_select_params,
                 lambda xs, p, w: torch.index_select(xs[0], p["dim"], torch.tensor(p["index"], dtype=I64))))


def _gather_params(draw, first, pool):
    dim = _dim(draw, first)
    size = first.shape[dim]
    indices = [i for i, v in enumerate(pool) if v.dtype == I64 and v.dim() == first.dim() and all(
        a <= b for k, (a, b) in enumerate(zip(v.shape, first.shape)) if k != dim % first.dim())]
    return None if not indices or size == 0 else ((draw(st.sampled_from(indices)),), {"dim": dim})


def _gather(xs, p, w):
    size = xs[0].shape[p["dim"]]
    return torch.gather(xs[0], p["dim"], torch.remainder(xs[1], size))


_register(OpSpec("gather", ranked(1, check=lambda v: True), _gather_params, _gather))


def _trilu_params(draw, first, pool):
    return (), {"diagonal": draw(st.integers(-2, 2)), "upper": draw(st.booleans())}


_register(OpSpec("tril_triu", ranked(2, check=lambda v: True), _trilu_params,
                 lambda xs, p, w: (torch.triu if p["upper"] else torch.tril)(xs[0], p["diagonal"])))


def _pad_params(draw, first, pool):
    axes = draw(st.integers(1, min(2, first.dim())))
    mode = draw(st.sampled_from(["constant", "constant", "reflect", "replicate"]))
    pads = tuple(draw(st.integers(0 if mode != "constant" else -1, 2)) for _ in range(2 * axes))
    return (), {"pad": pads, "mode": mode}


def _pad(xs, p, w):
    return F.pad(xs[0], p["pad"], mode=p["mode"]) if p["mode"] != "constant" else F.pad(xs[0], p["pad"], value=0.5)


_register(OpSpec("pad", ranked(1, 4), _pad_params, _pad))


def _chunk_params(draw, first, pool):
    dim = _dim(draw, first)
    chunks = draw(st.integers(1, 3))
    return (), {"chunks": chunks, "dim": dim, "piece": draw(st.integers(0, chunks - 1))}


def _chunk(xs, p, w):
    pieces = torch.chunk(xs[0], p["chunks"], p["dim"])
    return pieces[min(p["piece"], len(pieces) - 1)]


_register(OpSpec("chunk", ranked(1, check=lambda v: True), _chunk_params, _chunk))


def _one_hot_params(draw, first, pool):
    return (), {"classes": draw(st.integers(1, 4))}


_register(OpSpec("one_hot", lambda v: v.dtype == I64 and v.dim() <= 3, _one_hot_params,
                 lambda xs, p, w: F.one_hot(torch.remainder(xs[0], p["classes"]), p["classes"])))

# ------------------------------------------------------------------------------ linear algebra


def _linear_params(draw, first, pool):
    return (), {"in": first.shape[-1], "out": draw(st.integers(1, 5)), "bias": draw(st.booleans())}


_register(OpSpec(
    "linear", ranked(1, 4), _linear_params,
    lambda xs, p, w: F.linear(xs[0], w[0].to(xs[0].dtype), w[1].to(xs[0].dtype) if p["bias"] else None),
    lambda p: [((p["out"], p["in"]), F32)] + ([((p["out"],), F32)] if p["bias"] else [])))


def _matmul_params(draw, first, pool):
    k = first.shape[-1] if first.dim() else None
    fits = [i for i, v in enumerate(pool) if v.dtype == first.dtype and v.dim() >= 1 and first.dim() >= 1 and (
        v.shape[-2] if v.dim() >= 2 else v.shape[0]) == k]
    return None if not fits else ((draw(st.sampled_from(fits)),), {})


_register(OpSpec("matmul", ranked(1, 4), _matmul_params, lambda xs, p, w: torch.matmul(xs[0], xs[1])))


def _einsum_params(draw, first, pool):
    fits = [i for i, v in enumerate(pool) if v.dtype == first.dtype and v.dim() == 2 and v.shape[0] == first.shape[-1]]
    return None if not fits else ((draw(st.sampled_from(fits)),), {"equation": "...ij,jk->...ik"})


_register(OpSpec("einsum", ranked(2, 4), _einsum_params, lambda xs, p, w: torch.einsum(p["equation"], xs[0], xs[1])))


def _bmm_params(draw, first, pool):
    fits = [i for i, v in enumerate(pool) if v.dtype == first.dtype and v.dim() == 3 and v.shape[0] == first.shape[0]
            and v.shape[1] == first.shape[2]]
    return None if not fits else ((draw(st.sampled_from(fits)),), {})


_register(OpSpec("bmm", ranked(3, 3), _bmm_params, lambda xs, p, w: torch.bmm(xs[0], xs[1])))

# ------------------------------------------------------------------------------ normalizations


def _layer_norm_params(draw, first, pool):
    return (), {"shape": tuple(first.shape[-draw(st.integers(1, min(2, first.dim()))):]), "affine": draw(st.booleans())}


_register(OpSpec(
    "layer_norm", ranked(1, 4), _layer_norm_params,
    lambda xs, p, w: F.layer_norm(xs[0], p["shape"], *([t.to(xs[0].dtype) for t in w] if p["affine"] else [])),
    lambda p: [(p["shape"], F32), (p["shape"], F32)] if p["affine"] else []))


def _group_norm_params(draw, first, pool):
    channels = first.shape[1]
    groups = [g for g in (1, 2, 3) if channels and channels % g == 0]
    return None if not groups else ((), {"groups": draw(st.sampled_from(groups)), "channels": channels})


_register(OpSpec(
    "group_norm", ranked(2, 4), _group_norm_params,
    lambda xs, p, w: F.group_norm(xs[0], p["groups"], w[0].to(xs[0].dtype), w[1].to(xs[0].dtype)),
    lambda p: [((p["channels"],), F32), ((p["channels"],), F32)]))


def _batch_norm_params(draw, first, pool):
    return (), {"channels": first.shape[1]}


def _batch_norm(xs, p, w):
    x = xs[0]
    mean, var, weight, bias = (t.to(x.dtype) for t in w)
    return F.batch_norm(x, mean, var.abs() + 0.5, weight, bias, training=False)


_register(OpSpec("batch_norm", ranked(2, 4), _batch_norm_params, _batch_norm,
                 lambda p: [((p["channels"],), F32)] * 4))

# ------------------------------------------------------------------------------ convolution, pooling, resampling


def _conv_params(draw, first, pool):
    spatial = draw(st.integers(1, min(2, first.dim() - 1)))
    batched = first.dim() == spatial + 2
    channels = first.shape[-spatial - 1]
    if first.dim() not in (spatial + 1, spatial + 2) or channels == 0:
        return None
    groups = draw(st.sampled_from([g for g in (1, 2) if channels % g == 0]))
    return (), {"spatial": spatial, "in": channels, "out": draw(st.sampled_from([1, 2, 4])) * groups,
                "kernel": draw(st.integers(1, 3)), "stride": draw(st.integers(1, 2)),
                "padding": draw(st.integers(0, 1)), "dilation": draw(st.integers(1, 2)), "groups": groups,
                "batched": batched}


def _conv(xs, p, w):
    conv = F.conv1d if p["spatial"] == 1 else F.conv2d
    return conv(xs[0], w[0].to(xs[0].dtype), w[1].to(xs[0].dtype), p["stride"], p["padding"], p["dilation"], p["groups"])


_register(OpSpec("conv", ranked(2, 4), _conv_params, _conv, lambda p: [
    ((p["out"], p["in"] // p["groups"]) + (p["kernel"],) * p["spatial"], F32), ((p["out"],), F32)]))


def _pool_params(draw, first, pool):
    spatial = draw(st.integers(1, min(2, first.dim() - 1)))
    kernel = draw(st.integers(1, 3))
    return (), {"spatial": spatial, "kernel": kernel, "stride": draw(st.sampled_from([None, 1, 2])),
                "padding": draw(st.integers(0, kernel // 2)), "ceil_mode": draw(st.booleans())}


def _max_pool(xs, p, w):
    pool = F.max_pool1d if p["spatial"] == 1 else F.max_pool2d
    return pool(xs[0], p["kernel"], p["stride"], p["padding"], ceil_mode=p["ceil_mode"])


def _avg_pool(xs, p, w):
    pool = F.avg_pool1d if p["spatial"] == 1 else F.avg_pool2d
    return pool(xs[0], p["kernel"], p["stride"], p["padding"], ceil_mode=p["ceil_mode"])


_register(OpSpec("max_pool", ranked(2, 4), _pool_params, _max_pool))
_register(OpSpec("avg_pool", ranked(2, 4), _pool_params, _avg_pool))


def _adaptive_params(draw, first, pool):
    spatial = draw(st.integers(1, min(2, first.dim() - 1)))
    return (), {"spatial": spatial, "size": draw(st.integers(1, 3))}


def _adaptive_avg(xs, p, w):
    pool = F.adaptive_avg_pool1d if p["spatial"] == 1 else F.adaptive_avg_pool2d
    return pool(xs[0], p["size"])


def _adaptive_max(xs, p, w):
    pool = F.adaptive_max_pool1d if p["spatial"] == 1 else F.adaptive_max_pool2d
    return pool(xs[0], p["size"])


_register(OpSpec("adaptive_avg_pool", ranked(2, 4), _adaptive_params, _adaptive_avg))
_register(OpSpec("adaptive_max_pool", ranked(2, 4), _adaptive_params, _adaptive_max))


def _interpolate_params(draw, first, pool):
    spatial = first.dim() - 2
    mode = draw(st.sampled_from(["nearest", "linear", "bilinear"][:1] + (["linear"] if spatial == 1 else ["bilinear"])))
    return (), {"size": tuple(draw(st.integers(1, 5)) for _ in range(spatial)), "mode": mode,
                "align_corners": None if mode == "nearest" else draw(st.booleans())}


_register(OpSpec("interpolate", ranked(3, 4), _interpolate_params,
                 lambda xs, p, w: F.interpolate(xs[0], size=p["size"], mode=p["mode"], align_corners=p["align_corners"])))


def _sdpa_params(draw, first, pool):
    fits = [i for i, v in enumerate(pool) if v.dtype == first.dtype and v.dim() == first.dim()
            and v.shape[-1] == first.shape[-1] and v.shape[:-2] == first.shape[:-2]]
    return None if not fits else ((draw(st.sampled_from(fits)),), {"causal": draw(st.booleans())})


_register(OpSpec("sdpa", ranked(2, 4), _sdpa_params,
                 lambda xs, p, w: F.scaled_dot_product_attention(xs[0], xs[1], xs[1], is_causal=p["causal"])))


def _embedding_params(draw, first, pool):
    return (), {"rows": draw(st.integers(1, 6)), "width": draw(st.integers(1, 4))}


_register(OpSpec("embedding", lambda v: v.dtype == I64 and v.dim() <= 3, _embedding_params,
                 lambda xs, p, w: F.embedding(torch.remainder(xs[0], p["rows"]), w[0]),
                 lambda p: [((p["rows"], p["width"]), F32)]))

# ------------------------------------------------------------------------------ programs


DIMS = st.sampled_from([1, 2, 3, 4, 5, 1, 2, 3, 0])
DTYPES = st.sampled_from([F32, F32, F32, F32, F16, I64, BOOL])


@st.composite
def shapes(draw, base: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """Draw a shape of rank 0-4; with `base`, one that broadcasts with it (leading dims dropped,
    some set to 1)."""
    if base is None:
        return tuple(draw(DIMS) for _ in range(draw(st.sampled_from([2, 3, 1, 4, 0, 2, 3]))))
    keep = draw(st.integers(0, len(base)))
    return tuple(1 if draw(st.integers(0, 3)) == 0 else d for d in base[len(base) - keep:])


@st.composite
def programs(draw, min_steps: int = 3, max_steps: int = 12) -> Program:
    """Draw a program of 1-3 inputs, `min_steps` to `max_steps` steps (each one runs in eager
    PyTorch; a step that does not fit is drawn again, a few times) and 1-3 outputs, at least one of
    them a step's result."""
    base = draw(shapes())
    inputs = [(base, draw(DTYPES))]
    for _ in range(draw(st.integers(0, 2))):
        inputs.append((draw(shapes(base)), draw(DTYPES)))
    seed = draw(st.integers(0, 2**16))
    program = Program(tuple(inputs), (), (0,), seed)
    pool = program.example_inputs()
    steps: list[Step] = []
    wanted = draw(st.integers(min_steps, max_steps))
    for _ in range(3 * wanted):
        if len(steps) == wanted:
            break
        spec = OPS[draw(st.sampled_from(sorted(OPS)))]
        firsts = [i for i, v in enumerate(pool) if spec.accepts(v)]
        if not firsts:
            continue
        first = draw(st.sampled_from(firsts[::-1]))  # recent values first; shrinks toward them
        drawn = spec.draw(draw, pool[first], pool)
        if drawn is None:
            continue
        others, params = drawn
        if spec.name in ROUNDING and any(i >= len(inputs) and is_float(pool[i]) for i in (first, *others)):
            continue
        step = Step(spec.name, (first, *others), tuple(params.items()))
        value = _try_step(program, steps, step, pool)
        if value is None:
            continue
        steps.append(step)
        pool.append(value)
    results = list(range(len(inputs), len(pool))) or [0]
    outputs = draw(st.lists(st.sampled_from(results[::-1] + list(range(len(inputs)))), min_size=1, max_size=3,
                            unique=True))
    if not any(i >= len(inputs) for i in outputs):
        outputs[0] = results[-1]
    return Program(tuple(inputs), tuple(steps), tuple(dict.fromkeys(outputs)), seed)


def _try_step(program: Program, steps: list[Step], step: Step, pool: list[torch.Tensor]) -> torch.Tensor | None:
    """Run `step` eagerly on the pool with the weights its module would get; return its value, or
    None when PyTorch refuses it or its result is too large, not a plain tensor, or complex."""
    candidate = dataclasses.replace(program, steps=(*steps, step))
    module = ProgramModule(candidate)
    weights = [module.weights[i] for i in module.slots[-1]]
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # var/std of one element, deprecated overloads
            value = OPS[step.op].fn([pool[i] for i in step.operands], step.kwargs, weights)
    except (RuntimeError, ValueError, IndexError, TypeError, NotImplementedError):
        return None
    if not isinstance(value, torch.Tensor) or value.numel() > MAX_ELEMENTS or value.dtype not in (F32, F16, I64, BOOL):
        return None
    if value.dtype in FLOATS and value.isnan().any():
        return None  # NaN propagation is out of scope: tract's max/min ignore NaN, torch's propagate it
    return value
