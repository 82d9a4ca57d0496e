"""Dynamic axes: from the user's ONNX-style `dynamic_axes` to torch.export dynamic shapes and tract symbols.

    TractNNEF(dynamic_axes={"input_ids": {0: "B", 1: "S"}, "attention_mask": {0: "B", 1: "S"}})

Keys are NNEF input names (the `input_names` given, else the names torch.export derives from
forward()'s parameters). A value maps axes to symbol names, a symbol name with a range
(`("S", 1, 512)` or `DynamicDim("S", min=1, max=512)`; min 0 allows an empty axis, such as a
KV cache before the first token), or is a list of axes (names are then
generated). One name on several inputs means one dimension.

Each axis is captured as `torch.export.Dim.DYNAMIC`, so a model that only bounds a dim (a
position table of 512 rows bounds S) still exports, while a model that forces it to a constant
fails with an error naming the input, the axis and the source line that forced it. An example
of size 1 on a dynamic axis would make torch.export specialize it; the capture uses the example
repeated to size 2 along that axis instead (the check still runs the original example).
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import math
import re
import traceback
from typing import Any, Iterator, Mapping, Sequence
from unittest import mock

import sympy
import torch
import torch.utils._pytree as pytree
from torch.export import Dim, ExportedProgram
from torch.fx.experimental.symbolic_shapes import ShapeEnv
from torch.utils._sympy.functions import CleanDiv, FloorDiv

from ..errors import CaptureError, ExportInputError, LoweringError, UnsupportedOpError
from .program import user_inputs

log = logging.getLogger("fx2nnef")

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class DynamicDim:
    """A named dynamic dimension, optionally bounded: `DynamicDim("S", min=1, max=512)`."""

    name: str
    min: int | None = None
    max: int | None = None


@dataclasses.dataclass
class Leaf:
    """One tensor among the example inputs: where it sits, its NNEF name and its dynamic axes."""

    index: int                  # position among all leaves of (args, kwargs), in pytree order
    path: tuple                 # (forward() parameter, rest of the pytree key path)
    name: str                   # NNEF input name
    axes: dict[int, str]        # axis -> symbol name


def _dim(spec: Any, where: str) -> DynamicDim:
    """Turn one axis spec (a name, a (name, min, max) tuple or a DynamicDim) into a DynamicDim."""
    if isinstance(spec, DynamicDim):
        dim = spec
    elif isinstance(spec, str):
        dim = DynamicDim(spec)
    elif isinstance(spec, (tuple, list)) and len(spec) == 3 and isinstance(spec[0], str):
        dim = DynamicDim(*spec)
    else:
        raise ExportInputError(f"dynamic_axes{where}: give a symbol name, a (name, min, max) tuple or a "
                               f"DynamicDim, not {spec!r}")
    if not IDENTIFIER.fullmatch(dim.name):
        raise ExportInputError(f"dynamic_axes{where}: symbol name {dim.name!r} is not an identifier")
    for bound, least in ((dim.min, 0), (dim.max, 1)):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int) or bound < least):
            raise ExportInputError(f"dynamic_axes{where}: the min of {dim.name} must be an integer >= 0 and its max "
                                   f"one >= 1, got {bound!r}")
    if dim.min is not None and dim.max is not None and dim.min > dim.max:
        raise ExportInputError(f"dynamic_axes{where}: {dim.name} has min {dim.min} > max {dim.max}")
    return dim


def _merge(a: DynamicDim, b: DynamicDim) -> DynamicDim:
    """Return one symbol's dim from two declarations of it; bounds given twice must agree."""
    bounds = []
    for x, y, what in ((a.min, b.min, "min"), (a.max, b.max, "max")):
        if x is not None and y is not None and x != y:
            raise ExportInputError(f"dynamic_axes: symbol {a.name} is declared with {what} {x} and {what} {y}")
        bounds.append(x if x is not None else y)
    return DynamicDim(a.name, *bounds)


def _parameters(model: torch.nn.Module) -> list[inspect.Parameter]:
    """Return forward()'s parameters (empty when it has no inspectable signature)."""
    try:
        return list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return []


def _root_name(model: torch.nn.Module, path: tuple) -> tuple[str, tuple]:
    """Return the forward() parameter a leaf of (args, kwargs) belongs to, and the rest of its path."""
    params = [p for p in _parameters(model) if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    group, first, rest = path[0].idx, path[1], path[2:]
    if group == 0:
        return (params[first.idx].name if first.idx < len(params) else f"args_{first.idx}"), rest
    return str(first.key), rest


def _key_name(root: str, rest: tuple) -> str:
    """Return the input name torch.export derives from a key path: ('x', 0) -> 'x_0'."""
    parts = [root] + [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in rest]
    return re.sub(r"\W", "_", "_".join(parts))


class DynamicAxes:
    """The user's dynamic axes resolved against a model's example inputs."""

    def __init__(self, model: torch.nn.Module, args: tuple, kwargs: dict,
                 dynamic_axes: Mapping[str, Any], input_names: Sequence[str] | None = None):
        if not isinstance(dynamic_axes, Mapping):
            raise ExportInputError(f"dynamic_axes must be a dict {{input name: {{axis: symbol}}}}, "
                                   f"not {type(dynamic_axes).__name__}")
        leaves = [(i, _root_name(model, path), value)
                  for i, (path, value) in enumerate(pytree.tree_flatten_with_path((args, kwargs))[0])
                  if isinstance(value, torch.Tensor)]
        names = list(input_names) if input_names and len(input_names) == len(leaves) \
            else [_key_name(*path) for _, path, _ in leaves]
        self.leaves = [Leaf(i, path, name, {}) for (i, path, _), name in zip(leaves, names)]
        self.dims: dict[str, DynamicDim] = {}
        by_name = {leaf.name: (leaf, value) for leaf, (_, _, value) in zip(self.leaves, leaves)}
        sizes: dict[str, tuple[int, str]] = {}
        for key, spec in dynamic_axes.items():
            if key not in by_name:
                raise ExportInputError(f"dynamic_axes names {key!r}, which is not an input; the inputs are "
                                       f"{', '.join(by_name) or '(none)'}")
            leaf, value = by_name[key]
            if isinstance(spec, Mapping):
                items = list(spec.items())
            elif isinstance(spec, (list, tuple)) and all(isinstance(a, int) for a in spec):
                items = [(a, f"{key}_{a % max(value.dim(), 1)}") for a in spec]
            else:
                raise ExportInputError(f"dynamic_axes[{key!r}] must map axes to symbol names or list axes, "
                                       f"not {spec!r}")
            for axis, dim_spec in items:
                where = f"[{key!r}][{axis!r}]"
                if isinstance(axis, bool) or not isinstance(axis, int) or not -value.dim() <= axis < value.dim():
                    raise ExportInputError(f"dynamic_axes{where}: {key} has rank {value.dim()}, so axis {axis!r} "
                                           "does not exist")
                axis %= value.dim()
                dim = _dim(dim_spec, where)
                self.dims[dim.name] = _merge(self.dims[dim.name], dim) if dim.name in self.dims else dim
                leaf.axes[axis] = dim.name
                size = int(value.shape[axis])
                seen = sizes.setdefault(dim.name, (size, f"{key} axis {axis}"))
                if seen[0] != size:
                    raise ExportInputError(f"dynamic_axes: {key} axis {axis} and {seen[1]} are both {dim.name}, "
                                           f"but the example sizes differ ({size} vs {seen[0]})")
                if size == 0:
                    raise ExportInputError(f"dynamic_axes: {key} axis {axis} ({dim.name}) has size 0 in the "
                                           "example: give an example of size 2 or more")
                least = 1 if dim.min is None else dim.min
                if not least <= size <= (dim.max or size):
                    raise ExportInputError(f"dynamic_axes: the example size {size} of {key} axis {axis} is outside "
                                           f"the range [{least}, {dim.max or 'inf'}] given for {dim.name}")
        self.example_sizes = {name: size for name, (size, _) in sizes.items()}
        self.widened = sorted(name for name, size in self.example_sizes.items() if size == 1)
        for name in self.widened:
            log.info("dynamic axis %s has size 1 in the example, which torch.export would specialize: "
                     "capturing with the example repeated to size 2 along it", name)

    @property
    def symbols(self) -> list[str]:
        """The tract symbol names, in declaration order."""
        return list(self.dims)

    # -- capture ---------------------------------------------------------------------------
    def capture_inputs(self, model: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """Return the inputs to capture with: the example, repeated to size 2 on size-1 dynamic axes."""
        if not self.widened:
            return args, kwargs
        return self.resize(model, args, kwargs, {name: 2 for name in self.widened}, repeat=True)

    def dynamic_shapes(self, model: torch.nn.Module, args: tuple, kwargs: dict) -> dict[str, Any]:
        """Return torch.export's `dynamic_shapes` for these inputs (Dim.DYNAMIC per axis, bounded if asked),
        keyed by forward()'s parameter names as torch.export binds them."""
        flat = pytree.tree_leaves((args, kwargs))
        specs = {id(flat[leaf.index]): {axis: self._hint(name) for axis, name in leaf.axes.items()} or None
                 for leaf in self.leaves}
        try:
            combined = dict(inspect.signature(model.forward).bind(*args, **kwargs).arguments)
        except (TypeError, ValueError):
            return [specs.get(id(v)) if isinstance(v, torch.Tensor) else None for v in (*args, *kwargs.values())]
        return pytree.tree_map(lambda v: specs.get(id(v)) if isinstance(v, torch.Tensor) else None, combined)

    def _hint(self, name: str):
        dim = self.dims[name]
        bounds = {k: v for k, v in (("min", dim.min), ("max", dim.max)) if v is not None}
        if bounds.get("min") in (0, 1):  # torch.export assumes sizes >= 2 anyway; 0 and 1 are checked after
            bounds.pop("min")
        return Dim.DYNAMIC(**bounds) if bounds else Dim.DYNAMIC

    @contextlib.contextmanager
    def watch_capture(self, model: torch.nn.Module, args: tuple, kwargs: dict) -> Iterator[None]:
        """Record, during capture, where the model's code fixes, ties or bounds a symbolic dim (with the
        line of code); turn torch's constraint error into a CaptureError naming input, axis and line."""
        self.events = []
        set_replacement, update_range = ShapeEnv._set_replacement, ShapeEnv._update_var_to_range

        def on_replacement(shape_env, a, tgt, msg):
            if getattr(tgt, "is_number", False) or isinstance(tgt, sympy.Symbol):
                self.events.append(("constant" if tgt.is_number else "equal", shape_env, a, tgt,
                                    _user_frame(traceback.extract_stack()[:-1])))
            return set_replacement(shape_env, a, tgt, msg)

        def on_range(shape_env, symbol, vr, *rest, **options):
            before = shape_env.var_to_range.get(symbol)
            update_range(shape_env, symbol, vr, *rest, **options)
            after = shape_env.var_to_range.get(symbol)
            if before is not None and after is not None and after.upper.is_Integer and after.upper != before.upper:
                self.events.append(("upper", shape_env, symbol, after.upper,
                                    _user_frame(traceback.extract_stack()[:-1])))

        patches = contextlib.ExitStack()
        if hasattr(ShapeEnv, "_set_replacement") and hasattr(ShapeEnv, "_update_var_to_range"):
            patches.enter_context(mock.patch.object(ShapeEnv, "_set_replacement", on_replacement))
            patches.enter_context(mock.patch.object(ShapeEnv, "_update_var_to_range", on_range))
        with patches:
            try:
                yield
            except CaptureError as error:
                if "specialized" not in str(error) and "Constraints violated" not in str(error):
                    raise
                raise CaptureError(self._specialization_message(model, args, kwargs, error)) from error

    def _where(self, kind: str, symbol: str, value: Any = None) -> str:
        """Return the line of code of the last recorded event of `kind` on a torch symbol (or to `value`)."""
        for event, _, a, tgt, where in reversed(getattr(self, "events", [])):
            if event == kind and where and (str(a) == symbol or str(tgt) == symbol) and \
                    (value is None or str(tgt) == str(value)):
                return where
        return ""

    def _specialization_message(self, model, args, kwargs, error) -> str:
        """Say which declared axes the model forced to a constant, and where."""
        sources = self._source_names(model, args, kwargs)
        flat = pytree.tree_leaves((args, kwargs))
        lines, forced, loop = [], set(), False
        for kind, shape_env, symbol, value, where in self.events:
            names = [s.name if isinstance(s.name, str) else s.name() for s in shape_env.var_to_sources.get(symbol, [])]
            hit = next((sources[n] for n in names if n in sources), None)
            if kind != "constant" or hit is None:
                continue
            leaf, axis = hit
            forced.add(int(value))
            loop = loop or f" {where.split(': ', 1)[-1]}".startswith(" for ")  # `for t in range(x.shape[0])`
            lines.append(f"  input '{leaf.name}' axis {axis} ({leaf.axes[axis]}) is forced to {value} by the model"
                         + (f"\n    at {where}" if where else ""))
        if not lines:
            return str(error)
        static = [f"{leaf.name} axis {a}" for leaf in self.leaves for a, size in enumerate(flat[leaf.index].shape)
                  if a not in leaf.axes and size in forced]
        return ("the model's code forces dynamic axes to constants, so they cannot vary at run time "
                "(step 1/5: capture):\n" + "\n".join(dict.fromkeys(lines)) +
                "\nRemove these axes from dynamic_axes, or change the code so it does not fix their size "
                "(e.g. use x.shape[i] or -1 instead of a literal size)." +
                ("\nA Python loop over a dynamic axis is unrolled at its example length by torch.export: "
                 "loop with nn.LSTM / nn.GRU / nn.RNN instead, which export as tract loops at any length "
                 "(docs/speech.md)." if loop else "") +
                (f"\nIf another input shares the dimension, declare it too; static axes of that size: "
                 f"{', '.join(static)}." if static else ""))

    def _source_names(self, model, args, kwargs) -> dict[str, tuple[Leaf, int]]:
        """Map torch's source names ("L['input_ids'].size()[1]") of the declared axes to (leaf, axis)."""
        out = {}
        for leaf in self.leaves:
            root, rest = leaf.path
            text = f"L[{root!r}]" + "".join(f"[{getattr(k, 'key', getattr(k, 'idx', None))!r}]" for k in rest)
            for axis in leaf.axes:
                out[f"{text}.size()[{axis}]"] = (leaf, axis)
        return out

    # -- after capture ---------------------------------------------------------------------
    def _placeholder_dims(self, program: ExportedProgram, example: Sequence[torch.Tensor],
                          captured: tuple[tuple, dict]) -> Iterator[tuple[Leaf, int, Any]]:
        """Yield (leaf, axis, dim of the captured input) for every declared dynamic axis; `example` holds
        the program's flat inputs, `captured` the (args, kwargs) they come from."""
        position = {id(value): i for i, value in enumerate(pytree.tree_leaves(captured))}
        by_index = {leaf.index: leaf for leaf in self.leaves}
        for node, tensor in zip(user_inputs(program), example):
            leaf = by_index.get(position.get(id(tensor)))
            if leaf is None:
                continue
            for axis in leaf.axes:
                yield leaf, axis, node.meta["val"].shape[axis]

    def symbol_map(self, program: ExportedProgram, example: Sequence[torch.Tensor],
                   captured: tuple[tuple, dict]) -> dict[str, str]:
        """Return {torch symbol: tract symbol} from the captured inputs' shapes."""
        mapping: dict[str, str] = {}
        for leaf, axis, dim in self._placeholder_dims(program, example, captured):
            name = leaf.axes[axis]
            expr = dim.node.expr if isinstance(dim, torch.SymInt) else sympy.Integer(dim)
            if not isinstance(expr, sympy.Symbol):
                raise CaptureError(f"input '{leaf.name}' axis {axis} ({name}) was captured as {expr}, not as a "
                                   "free dimension: the model constrains it (step 1/5: capture)")
            other = mapping.setdefault(str(expr), name)
            if other != name:
                where = self._where("equal", str(expr))
                raise CaptureError(f"the model forces {name} (input '{leaf.name}' axis {axis}) to equal {other}"
                                   + (f"\n  at {where}" if where else "") +
                                   "\nUse one symbol name for both in dynamic_axes (step 1/5: capture)")
        return mapping

    def ranges(self, program: ExportedProgram, mapping: dict[str, str]) -> dict[str, tuple[int, int | None]]:
        """Return each symbol's valid range: the user's bounds within what the model allows."""
        out = {}
        for name, dim in self.dims.items():
            lo, hi, bound_by = 0, None, ""
            for symbol, vr in program.range_constraints.items():
                if mapping.get(str(symbol)) != name:
                    continue
                if vr.lower.is_Integer and int(vr.lower) > 2:  # torch's own floor is 2; above it the model speaks
                    lo = max(lo, int(vr.lower))
                if vr.upper.is_Integer and (hi is None or int(vr.upper) < hi):
                    hi, bound_by = int(vr.upper), self._where("upper", str(symbol), vr.upper)
            if dim.max is not None and hi is not None and hi < dim.max:
                leaf, axis = next((leaf, a) for leaf in self.leaves for a, n in leaf.axes.items() if n == name)
                raise CaptureError(f"input '{leaf.name}' axis {axis} ({name}): dynamic_axes asks for sizes up to "
                                   f"{dim.max}, but the model only supports up to {hi}"
                                   + (f"\n  at {bound_by}" if bound_by else "") +
                                   f"\nGive {name} a max of at most {hi}, or none (step 1/5: capture)")
            if hi is not None and dim.max is None:
                log.info("dynamic axis %s: the model supports sizes up to %d%s", name, hi,
                         f" (bounded at {bound_by})" if bound_by else "")
            lo = max(lo, 1 if dim.min is None else dim.min)   # 0 only when asked for (an empty cache)
            hi = dim.max if hi is None else min(hi, dim.max or hi)
            out[name] = (lo, hi)
        return out

    @staticmethod
    def assertions(ranges: dict[str, tuple[int, int | None]]) -> list[str]:
        """Return the tract_assert rules (shape hints) for the symbols' ranges."""
        rules = []
        for name, (lo, hi) in ranges.items():
            rules.append(f"{name} >= {lo}")
            if hi is not None:
                rules.append(f"{name} <= {hi}")
        return rules

    def check_sizes(self, ranges: dict[str, tuple[int, int | None]]) -> list[dict[str, int]]:
        """Return the symbol sizes to check: the example, then two other sizes per symbol within range."""
        small, large = {}, {}
        for name, example in self.example_sizes.items():
            lo, hi = ranges[name]
            hi = hi if hi is not None else math.inf
            picks = [v for v in dict.fromkeys((lo, 2 * example + 1, example + 1, example - 1, hi))
                     if v != example and lo <= v <= hi and v != math.inf]
            picks += [example] * (2 - len(picks))
            small[name], large[name] = min(picks[:2]), max(picks[:2])
        return [dict(self.example_sizes), small, large]

    # -- inputs at other sizes ---------------------------------------------------------------
    def resize(self, model: torch.nn.Module, args: tuple, kwargs: dict, sizes: Mapping[str, int],
               repeat: bool = False, seed: int = 0) -> tuple[tuple, dict]:
        """Return new example inputs with the dynamic axes at `sizes`.

        `repeat` tiles the example along the axes. Otherwise: tensors with at most two distinct
        values (masks, type ids) are tiled too, so their pattern is kept; other integer tensors get
        random values within the example's range, float tensors random values with its mean and std.
        """
        generator = torch.Generator().manual_seed(seed)
        flat, spec = pytree.tree_flatten((args, kwargs))
        for leaf in self.leaves:
            if not leaf.axes:
                continue
            value = flat[leaf.index]
            shape = list(value.shape)
            for axis, name in leaf.axes.items():
                shape[axis] = sizes.get(name, shape[axis])
            flat[leaf.index] = _resized(value, shape, repeat, generator)
        return pytree.tree_unflatten(flat, spec)


def _resized(value: torch.Tensor, shape: list[int], repeat: bool, generator: torch.Generator) -> torch.Tensor:
    """Return a tensor of `shape` like `value` (see DynamicAxes.resize; a complex one by its real pairs)."""
    if value.dtype.is_complex:
        pairs = _resized(torch.view_as_real(value.resolve_conj()), [*shape, 2], repeat, generator)
        return torch.view_as_complex(pairs.contiguous())
    if repeat or value.numel() == 0 or torch.unique(value).numel() <= 2:
        out = value
        for axis, size in enumerate(shape):
            if size != out.shape[axis]:
                out = out.index_select(axis, torch.arange(size) % out.shape[axis])
        return out.clone()
    if value.dtype.is_floating_point:
        mean, std = value.double().mean().item(), value.double().std().item()
        return (torch.randn(shape, generator=generator, dtype=torch.float64) * std + mean).to(value.dtype)
    lo, hi = int(value.min()), int(value.max())
    return torch.randint(lo, hi + 1, shape, generator=generator, dtype=torch.int64).to(value.dtype)


def _user_frame(stack: list) -> str:
    """Return the innermost frame outside torch, fx2nnef and the standard library as 'file:line in fn: code'."""
    skip = ("/torch/", "/fx2nnef/", "<frozen", "/contextlib.py", "/unittest/", "/functools.py")
    mine = [f for f in stack if not any(s in f.filename for s in skip)]
    if not mine:
        return ""
    f = mine[-1]
    return f"{f.filename}:{f.lineno} in {f.name}: {f.line}"


# -- torch symbolic sizes -> tract expressions ------------------------------------------------
def tract_expr(expr: sympy.Expr, symbols: Mapping[str, str]) -> str:
    """Return a sympy size expression as tract text (`S - 1`, `2 * B * S`); raise UnsupportedOpError for a
    size read from tensor data, LoweringError for a symbol that is not a declared dynamic axis."""
    if expr.is_Integer:
        return str(int(expr))
    if isinstance(expr, sympy.Symbol):
        if str(expr).startswith("u") and str(expr) not in symbols:  # unbacked: a size read from tensor data
            raise UnsupportedOpError(f"its output size {expr} is computed from tensor data (not expressible: "
                                     "data-dependent output shape, NNEF shapes are known before the data)")
        if str(expr) not in symbols:
            raise LoweringError(f"size {expr} is not a declared dynamic axis (a data-dependent size, or a "
                                "dimension that was not made dynamic): tract cannot express it")
        return symbols[str(expr)]
    if isinstance(expr, sympy.Add):
        terms = sorted(expr.args, key=lambda t: (t.could_extract_minus_sign(), t.is_number))
        text = ""
        for term in terms:
            negative = term.could_extract_minus_sign()
            body = _factor(-term if negative else term, symbols)
            text = body if not text and not negative else f"{text} {'-' if negative else '+'} {body}" if text \
                else f"0 - {body}"
        return text
    return _factor(expr, symbols)


def _factor(expr: sympy.Expr, symbols: Mapping[str, str]) -> str:
    """Return a product, power or division as tract text, parenthesizing sums."""
    if isinstance(expr, sympy.Mul):
        return " * ".join(_atom(a, symbols) for a in expr.args)
    if isinstance(expr, sympy.Pow) and expr.exp.is_Integer and int(expr.exp) > 0:
        return " * ".join([_atom(expr.base, symbols)] * int(expr.exp))
    if isinstance(expr, (FloorDiv, CleanDiv)) and expr.args[1].is_Integer and int(expr.args[1]) > 0:
        return f"{_atom(expr.args[0], symbols)} / {int(expr.args[1])}"
    if expr.is_Integer or isinstance(expr, (sympy.Symbol, sympy.Add)):
        return tract_expr(expr, symbols)
    raise LoweringError(f"size expression {expr} uses {type(expr).__name__}, which tract symbols cannot express "
                        "(tract has + - * and integers)")


def _atom(expr: sympy.Expr, symbols: Mapping[str, str]) -> str:
    text = tract_expr(expr, symbols)
    return f"({text})" if isinstance(expr, sympy.Add) or (expr.is_Integer and int(expr) < 0) else text
