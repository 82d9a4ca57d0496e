"""LegalizeComplexPass: no value is complex; each is a real tensor whose trailing axis of 2 holds its
(real, imaginary) parts, and every complex op is written as real ops on that layout."""
from __future__ import annotations

import math
import operator
from typing import Any, Callable

import torch
from torch._dispatch.python import enable_python_dispatcher
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind

from ..backends.nnef.unsupported import reason as not_expressible
from ..compiler.pass_base import Pass, PassResult
from ..compiler.program import fake_mode, known_value, output_node, placeholders, renamed_outputs, replace, source_line
from ..errors import UnsupportedOpError

aten = torch.ops.aten
REAL = {torch.complex32: torch.float16, torch.complex64: torch.float32, torch.complex128: torch.float64}
# meta key: on a user-input placeholder, the complex dtype it had; on the output node, the positions of the
# outputs that were complex
COMPLEX_IO = "fx2nnef.complex_io"
PROVENANCE = ("stack_trace", "nn_module_stack", "source_fn_stack", "from_node")


def _computed(x: torch.Tensor) -> torch.Tensor:
    """Return pairs in a dtype torch's FFT computes in (half precision in f32)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


@torch.library.custom_op("fx2nnef::fft", mutates_args=())
def fft(self: torch.Tensor, dim: int, inverse: bool) -> torch.Tensor:
    """The discrete Fourier transform along `dim` of complex values stored as (real, imaginary) pairs on
    a trailing axis of 2, unnormalized both ways: tract_core_fft."""
    z = torch.view_as_complex(_computed(self).contiguous())
    out = torch.fft.ifft(z, dim=dim, norm="forward") if inverse else torch.fft.fft(z, dim=dim)
    return torch.view_as_real(out).to(self.dtype).clone()


@fft.register_fake
def _(self, dim, inverse):
    return torch.empty_like(self)


@torch.library.custom_op("fx2nnef::stft", mutates_args=())
def stft(self: torch.Tensor, dim: int, frame: int, stride: int, window: torch.Tensor | None) -> torch.Tensor:
    """The frames of `frame` values every `stride` along `dim` (frame index at `dim`, position in the frame
    at `dim + 1`), each times `window` (centred and zero-padded to `frame`) and Fourier-transformed, of
    complex values stored as (real, imaginary) pairs on a trailing axis of 2: tract_core_stft."""
    z = torch.view_as_complex(_computed(self).contiguous())
    frames = z.unfold(dim, frame, stride).movedim(-1, dim + 1)
    if window is not None:
        left = (frame - window.shape[0]) // 2
        padded = torch.nn.functional.pad(_computed(window), (left, frame - window.shape[0] - left))
        frames = frames * padded.reshape([frame] + [1] * (frames.dim() - dim - 2))
    return torch.view_as_real(torch.fft.fft(frames, dim=dim + 1)).to(self.dtype).clone()


@stft.register_fake
def _(self, dim, frame, stride, window):
    shape = list(self.shape)
    shape[dim:dim + 1] = [(shape[dim] - frame) // stride + 1, frame]
    return self.new_empty(shape)


FFT, STFT = torch.ops.fx2nnef.fft.default, torch.ops.fx2nnef.stft.default


def _is_complex(value: Any) -> bool:
    """Tell whether a meta value is a complex tensor, or a list/tuple holding one."""
    if isinstance(value, (list, tuple)):
        return any(_is_complex(v) for v in value)
    return isinstance(value, torch.Tensor) and value.dtype in REAL


def _complex_node(x: Any) -> bool:
    return isinstance(x, torch.fx.Node) and _is_complex(x.meta.get("val"))


def _arguments(node: torch.fx.Node) -> dict[str, Any]:
    """Return a call's arguments by their schema names, defaults filled in."""
    found = {}
    for i, arg in enumerate(node.target._schema.arguments):
        if i < len(node.args):
            found[arg.name] = node.args[i]
        elif arg.name in node.kwargs:
            found[arg.name] = node.kwargs[arg.name]
        elif arg.has_default_value():
            found[arg.name] = arg.default_value
    return found


def _is_number(x: Any) -> bool:
    return isinstance(x, (bool, int, float, complex))


class _Rewriter:
    """Writes the real-pair form of complex nodes before them, keeping the map node -> pair node."""

    def __init__(self, program: ExportedProgram):
        self.program, self.graph, self.mode = program, program.graph, fake_mode(program)
        self.pairs: dict[torch.fx.Node, torch.fx.Node] = {}
        self.node: torch.fx.Node | None = None

    # -- emitting ----------------------------------------------------------------------------
    def emit(self, target, *args, **kwargs) -> torch.fx.Node:
        """Insert `target(*args, **kwargs)` before the node being rewritten, with its meta computed."""
        with self.graph.inserting_before(self.node):
            new = self.graph.call_function(target, args, kwargs)
        meta = lambda a: a.meta["val"] if isinstance(a, torch.fx.Node) else a  # noqa: E731
        with self.mode, enable_python_dispatcher():  # symbolic sizes stay symbolic in C++ kernels' meta
            new.meta["val"] = target(*torch.fx.node.map_aggregate(args, meta),
                                     **torch.fx.node.map_aggregate(kwargs, meta))
        new.meta.update({k: self.node.meta[k] for k in PROVENANCE if k in self.node.meta})
        return new

    def call(self, target: torch._ops.OpOverload, named: dict[str, Any]) -> torch.fx.Node:
        """Emit `target` with arguments by schema name (positional, keyword-only ones as keywords)."""
        args, kwargs = [], {}
        for arg in target._schema.arguments:
            if arg.name in named:
                (kwargs.__setitem__(arg.name, named[arg.name]) if arg.kwarg_only else args.append(named[arg.name]))
        return self.emit(target, *args, **kwargs)

    # -- values --------------------------------------------------------------------------------
    @staticmethod
    def val(x: torch.fx.Node):
        return x.meta["val"]

    def rank(self, x: torch.fx.Node) -> int:
        return self.val(x).dim()

    def pair(self, x: Any, dtype: torch.dtype | None = None) -> torch.fx.Node:
        """Return the pair form of a complex node, or of a real tensor node (imaginary part 0)."""
        if x in self.pairs:
            return self.pairs[x]
        real = self.val(x)
        if dtype is not None and real.dtype != dtype:
            x = self.emit(aten._to_copy.default, x, dtype=dtype)
        return self.emit(aten.constant_pad_nd.default, self.emit(aten.unsqueeze.default, x, real.dim()), [0, 1], 0.0)

    def part(self, p: torch.fx.Node, index: int) -> torch.fx.Node:
        """Return the real (0) or imaginary (1) part of a pair node."""
        return self.emit(aten.select.int, p, self.rank(p) - 1, index)

    def parts(self, x: Any) -> tuple[Any, Any]:
        """Return (real, imaginary) of an operand: nodes for a complex node, (node, 0) for a real tensor
        node, numbers for a number."""
        if _is_number(x):
            return complex(x).real, complex(x).imag
        if x in self.pairs:
            p = self.pairs[x]
            return self.part(p, 0), self.part(p, 1)
        return x, 0.0

    def make(self, re: Any, im: Any) -> torch.fx.Node:
        """Return the pair node of two real parts (nodes or numbers), broadcast to one shape."""
        nodes = [x for x in (re, im) if isinstance(x, torch.fx.Node)]
        with self.mode:
            shape = list(torch.broadcast_shapes(*[self.val(x).shape for x in nodes]))
        parts = []
        for x in (re, im):
            if not isinstance(x, torch.fx.Node):
                x = self.emit(aten.full_like.default, nodes[0], x)
            if list(self.val(x).shape) != shape:
                x = self.emit(aten.expand.default, x, shape)
            parts.append(x)
        return self.emit(aten.stack.default, parts, len(shape))

    # -- real arithmetic on nodes and numbers (numbers folded) ---------------------------------------
    def add(self, x: Any, y: Any) -> Any:
        if _is_number(y) and y == 0:
            return x
        if _is_number(x):
            return x + y if _is_number(y) else self.add(y, x)
        return self.emit(aten.add.Tensor, x, y)

    def neg(self, x: Any) -> Any:
        return -x if _is_number(x) else self.emit(aten.neg.default, x)

    def sub(self, x: Any, y: Any) -> Any:
        if _is_number(x) and x == 0:
            return self.neg(y)
        if _is_number(x) and _is_number(y):
            return x - y
        if _is_number(x):
            return self.add(self.neg(y), x)
        return x if _is_number(y) and y == 0 else self.emit(aten.sub.Tensor, x, y)

    def mul(self, x: Any, y: Any) -> Any:
        if _is_number(x):
            x, y = y, x
        if _is_number(y):
            if _is_number(x):
                return x * y
            return 0.0 if y == 0 else x if y == 1 else self.emit(aten.mul.Tensor, x, y)
        return self.emit(aten.mul.Tensor, x, y)

    def div(self, x: Any, y: Any) -> Any:
        if _is_number(y):
            return self.mul(x, 1.0 / y)
        return self.emit(aten.div.Tensor, x, y)

    # -- complex helpers -------------------------------------------------------------------------
    def norm2(self, re: Any, im: Any) -> Any:
        """Return re^2 + im^2."""
        return self.add(self.mul(re, re), self.mul(im, im))

    def scale(self, p: torch.fx.Node, sizes: list, normalization: int) -> torch.fx.Node:
        """Apply an FFT's normalization (0: none, 1: 1/sqrt(n), 2: 1/n, n the product of `sizes`)."""
        if normalization == 0:
            return p
        if not all(isinstance(s, int) for s in sizes):
            raise UnsupportedOpError("a normalized FFT along a dynamic axis: its scale must be known at export")
        n = math.prod(sizes)
        return self.mul(p, 1.0 / math.sqrt(n) if normalization == 1 else 1.0 / n)


# -- rules: (rewriter, node) -> the node replacing it (a pair node when the node's value is complex) --

Rule = Callable[[_Rewriter, torch.fx.Node], torch.fx.Node]


def _dim(d: int, rank: int) -> int:
    return d % max(rank, 1)


def _layout(operands: tuple[str, ...] = ("self",), **edits: Callable[[Any, int], Any]) -> Rule:
    """Return the rule of an op that only moves values: the same op on the pairs, with the dims and
    shapes of the complex tensor (`edits`: argument name -> fn(value, complex rank)) mapped to the pairs'."""
    def rule(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
        named = _arguments(node)
        tensors = [x for k in operands for x in (named[k] if isinstance(named[k], (list, tuple)) else [named[k]])]
        complex_operand = next(x for x in tensors if _complex_node(x))
        rank = r.rank(complex_operand)
        dtype = REAL[r.val(complex_operand).dtype]
        for name in operands:
            value = named[name]
            if isinstance(value, (list, tuple)):
                named[name] = [r.pair(x, dtype) if isinstance(x, torch.fx.Node) else x for x in value]
            elif isinstance(value, torch.fx.Node):
                named[name] = r.pair(value, dtype)
        for name, edit in edits.items():
            if named.get(name) is not None:
                named[name] = edit(named[name], rank)
        if named.get("dtype") in REAL:
            named["dtype"] = REAL[named["dtype"]]
        return r.call(node.target, named)
    return rule


def _dims(ds, rank):
    return [_dim(d, rank) for d in ([ds] if isinstance(ds, int) else ds)]


def _all_dims(ds, rank):
    return list(range(rank)) if not ds else _dims(ds, rank)


KEEP = _layout()
LAYOUT_RULES: dict[Any, Rule] = {
    **{op: _layout(size=lambda s, rank: [*s, 2]) for op in (
        aten.view.default, aten._unsafe_view.default, aten.reshape.default, aten.view_copy.default,
        aten.expand.default, aten.expand_copy.default)},
    **{op: KEEP for op in (aten.clone.default, aten.alias.default, aten.detach.default, aten.lift_fresh_copy.default,
                           aten.resolve_conj.default, aten.resolve_neg.default, aten.contiguous.default)},
    aten.permute.default: _layout(dims=lambda ds, rank: _dims(ds, rank) + [rank]),
    aten.transpose.int: _layout(dim0=_dim, dim1=_dim),
    aten.unsqueeze.default: _layout(dim=lambda d, rank: d % (rank + 1)),
    aten.squeeze.dim: _layout(dim=_dim),
    aten.squeeze.dims: _layout(dim=_dims),
    aten.slice.Tensor: _layout(dim=_dim),
    aten.select.int: _layout(dim=_dim),
    aten.narrow.default: _layout(dim=_dim),
    aten.index_select.default: _layout(dim=_dim),
    aten.index.Tensor: KEEP,
    aten.flip.default: _layout(dims=_dims),
    aten.roll.default: _layout(dims=_dims),
    aten.cat.default: _layout(("tensors",), dim=_dim),
    aten.stack.default: _layout(("tensors",), dim=lambda d, rank: d % (rank + 1)),
    aten.split_with_sizes.default: _layout(dim=_dim),
    aten.split.Tensor: _layout(dim=_dim),
    aten.unbind.int: _layout(dim=_dim),
    aten.repeat.default: _layout(repeats=lambda s, rank: [*s, 1]),
    aten.constant_pad_nd.default: _layout(pad=lambda p, rank: [0, 0, *p]),
    aten.sum.dim_IntList: _layout(dim=_all_dims),
    aten.mean.dim: _layout(dim=_all_dims),
    aten.cumsum.default: _layout(dim=_dim),
    aten.sym_size.int: _layout(dim=_dim),
}


def _squeeze_all(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """squeeze(Tensor(a) self) -> Tensor(a): squeeze the unit dims of the complex tensor, not the pair axis."""
    shape = r.val(node.args[0]).shape
    return r.emit(aten.squeeze.dims, r.pair(node.args[0]), [i for i, d in enumerate(shape) if d == 1])


def _sum_all(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """sum(Tensor self, *, ScalarType? dtype=None) -> Tensor"""
    return r.emit(aten.sum.dim_IntList, r.pair(node.args[0]), list(range(r.rank(node.args[0]))))


def _gather(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """gather(Tensor self, int dim, Tensor index, *, bool sparse_grad=False) -> Tensor"""
    named = _arguments(node)
    index = named["index"]
    pairs = r.emit(aten.unsqueeze.default, index, r.rank(index))
    pairs = r.emit(aten.expand.default, pairs, [*r.val(index).shape, 2])
    return r.emit(aten.gather.default, r.pair(named["self"]), _dim(named["dim"], r.rank(named["self"])), pairs)


def _where(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """where.self(Tensor condition, Tensor self, Tensor other) -> Tensor"""
    condition, x, y = node.args
    dtype = REAL[r.val(node).dtype]
    condition = r.emit(aten.unsqueeze.default, condition, r.rank(condition))
    return r.emit(aten.where.self, condition, r.pair(x, dtype), r.pair(y, dtype))


def _to_copy(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """_to_copy(Tensor self, *, ScalarType? dtype=None, ...) -> Tensor: to or from complex."""
    x, out = node.args[0], r.val(node)
    if out.dtype in REAL:
        p = r.pair(x, REAL[out.dtype])
        return p if r.val(p).dtype == REAL[out.dtype] else r.emit(aten._to_copy.default, p, dtype=REAL[out.dtype])
    real = r.part(r.pair(x), 0)   # complex -> real drops the imaginary part, as torch does
    return real if r.val(real).dtype == out.dtype else r.emit(aten._to_copy.default, real, dtype=out.dtype)


def _factory(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """zeros / ones / full / scalar_tensor / zeros_like / ones_like / full_like of a complex dtype: both
    parts filled apart."""
    named, name = _arguments(node), node.target._schema.name.split("::")[1]
    dtype = REAL[r.val(node).dtype]
    value = complex({"zeros": 0, "ones": 1, "zeros_like": 0, "ones_like": 1}.get(
        name, named.get("fill_value", named.get("s", 0))))
    if name.endswith("_like"):
        template = named["self"]
        template = r.part(r.pairs[template], 0) if template in r.pairs else template
        parts = [r.emit(aten.full_like.default, template, v, dtype=dtype) for v in (value.real, value.imag)]
    elif name == "scalar_tensor":
        parts = [r.emit(aten.scalar_tensor.default, v, dtype=dtype) for v in (value.real, value.imag)]
    else:
        parts = [r.emit(aten.full.default, named["size"], v, dtype=dtype) for v in (value.real, value.imag)]
    return r.emit(aten.stack.default, parts, r.rank(parts[0]))


def _add_sub(sign: int) -> Rule:
    def rule(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
        named = _arguments(node)
        x, y, alpha = named["self"], named["other"], named.get("alpha", 1)
        if _complex_node(x) and _complex_node(y) and not isinstance(alpha, complex):
            q = r.pairs[y] if alpha == 1 else r.mul(r.pairs[y], alpha)
            return r.emit(aten.add.Tensor if sign > 0 else aten.sub.Tensor, r.pairs[x], q)
        (a, b), (c, d) = r.parts(x), r.parts(y)
        c, d = _times(r, (c, d), alpha)
        combine = r.add if sign > 0 else r.sub
        return r.make(combine(a, c), combine(b, d))
    return rule


def _times(r: _Rewriter, z: tuple[Any, Any], w: Any) -> tuple[Any, Any]:
    """Return the parts of z * w for a number w."""
    (a, b), (c, d) = z, r.parts(w)
    return r.sub(r.mul(a, c), r.mul(b, d)), r.add(r.mul(a, d), r.mul(b, c))


def _real_factor(r: _Rewriter, x: Any) -> Any:
    """Return a real tensor operand as a factor of pairs (a trailing unit axis), a real number as is, else None."""
    if _is_number(x):
        return None if isinstance(x, complex) and x.imag else complex(x).real
    if x in r.pairs:
        return None
    return r.emit(aten.unsqueeze.default, x, r.rank(x))


def _mul(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """mul.Tensor(Tensor self, Tensor other) -> Tensor: (a+bi)(c+di) = (ac-bd) + (ad+bc)i."""
    x, y = node.args[:2]
    for p, f in ((x, y), (y, x)):
        if _complex_node(p) and (factor := _real_factor(r, f)) is not None:
            return r.mul(r.pairs[p], factor)
    (a, b), (c, d) = r.parts(x), r.parts(y)
    return r.make(r.sub(r.mul(a, c), r.mul(b, d)), r.add(r.mul(a, d), r.mul(b, c)))


def _div(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """div.Tensor(Tensor self, Tensor other) -> Tensor: (a+bi)/(c+di) = ((ac+bd) + (bc-ad)i) / (c²+d²)."""
    x, y = node.args[:2]
    if _complex_node(x) and (factor := _real_factor(r, y)) is not None:
        return r.div(r.pairs[x], factor)
    (a, b), (c, d) = r.parts(x), r.parts(y)
    den = r.norm2(c, d)
    return r.make(r.div(r.add(r.mul(a, c), r.mul(b, d)), den), r.div(r.sub(r.mul(b, c), r.mul(a, d)), den))


def _abs(r: _Rewriter, p: torch.fx.Node) -> torch.fx.Node:
    """Return |z| of a pair node."""
    return r.emit(aten.sqrt.default, r.emit(aten.sum.dim_IntList, r.mul(p, p), [r.rank(p) - 1]))


def _angle(r: _Rewriter, p: torch.fx.Node) -> torch.fx.Node:
    return r.emit(aten.atan2.default, r.part(p, 1), r.part(p, 0))


def _power(r: _Rewriter, p: torch.fx.Node, exponent: float) -> torch.fx.Node:
    """Return z**w for a real w, principal branch: |z|^w (cos wθ + i sin wθ)."""
    if exponent == 2:
        a, b = r.part(p, 0), r.part(p, 1)
        return r.make(r.sub(r.mul(a, a), r.mul(b, b)), r.mul(r.mul(a, b), 2.0))
    size = r.emit(aten.pow.Tensor_Scalar, _abs(r, p), exponent)
    theta = r.mul(_angle(r, p), exponent)
    return r.make(r.mul(size, r.emit(aten.cos.default, theta)), r.mul(size, r.emit(aten.sin.default, theta)))


def _pow(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """pow.Tensor_Scalar(Tensor self, Scalar exponent) -> Tensor, for a real exponent."""
    exponent = node.args[1]
    if isinstance(exponent, complex):
        raise UnsupportedOpError("a complex power with a complex exponent")
    return _power(r, r.pairs[node.args[0]], float(exponent))


def _conj(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    p = r.pairs[node.args[0]]
    return r.make(r.part(p, 0), r.neg(r.part(p, 1)))


def _exp(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """exp(a+bi) = e^a (cos b + i sin b)."""
    p = r.pairs[node.args[0]]
    a, b = r.part(p, 0), r.part(p, 1)
    e = r.emit(aten.exp.default, a)
    return r.make(r.mul(e, r.emit(aten.cos.default, b)), r.mul(e, r.emit(aten.sin.default, b)))


def _log(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """log(z) = log|z| + i angle(z)."""
    p = r.pairs[node.args[0]]
    return r.make(r.emit(aten.log.default, _abs(r, p)), _angle(r, p))


def _reciprocal(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """1/(a+bi) = (a - bi) / (a²+b²)."""
    a, b = r.parts(node.args[0])
    den = r.norm2(a, b)
    return r.make(r.div(a, den), r.div(r.neg(b), den))


def _sgn(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """sgn(z) = z / |z|, 0 at 0."""
    p = r.pairs[node.args[0]]
    size = _abs(r, p)
    safe = r.emit(aten.where.self, r.emit(aten.eq.Scalar, size, 0.0), r.emit(aten.ones_like.default, size), size)
    return r.div(p, r.emit(aten.unsqueeze.default, safe, r.rank(safe)))


def _complex(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """complex(Tensor real, Tensor imag) -> Tensor"""
    return r.make(*node.args[:2])


def _polar(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """polar(Tensor abs, Tensor angle) -> Tensor: abs (cos angle + i sin angle)."""
    size, theta = node.args[:2]
    return r.make(r.mul(size, r.emit(aten.cos.default, theta)), r.mul(size, r.emit(aten.sin.default, theta)))


def _matmul(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """mm / bmm / matmul: (A+Bi)(C+Di) = (AC-BD) + (AD+BC)i, each product a real one."""
    (a, b), (c, d) = r.parts(node.args[0]), r.parts(node.args[1])
    product = lambda x, y: 0.0 if _is_number(x) or _is_number(y) else r.emit(node.target, x, y)  # noqa: E731
    return r.make(r.sub(product(a, c), product(b, d)), r.add(product(a, d), product(b, c)))


def _frames(r: _Rewriter, x: torch.fx.Node, dims: list[int]) -> torch.fx.Node | None:
    """Return the stft (full spectrum) when `x` is `unfold(signal, last axis, n, hop)`, optionally times a
    constant window of n values, and the FFT is along the frame axis; else None."""
    if len(dims) != 1 or dims[0] != r.rank(x) - 1:
        return None
    window = None
    if x.target is aten.mul.Tensor:
        unfold, window = x.args if getattr(x.args[0], "target", None) is aten.unfold.default else x.args[::-1]
        specs = dict(placeholders(r.program))
        if not isinstance(window, torch.fx.Node) or window not in specs or \
                known_value(r.program, specs[window]) is None:
            return None
        x = unfold
    if getattr(x, "target", None) is not aten.unfold.default:
        return None
    signal, dimension, size, step = x.args
    rank = r.rank(signal)
    if _dim(dimension, rank) != rank - 1 or (window is not None and tuple(r.val(window).shape) != (size,)):
        return None
    return r.emit(STFT, r.pair(signal), rank - 1, size, step, window)


def _fft_r2c(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """_fft_r2c(Tensor self, int[] dim, int normalization, bool onesided) -> Tensor"""
    x, dim, normalization, onesided = node.args
    dims = [_dim(d, r.rank(x)) for d in dim]
    sizes = [r.val(x).shape[d] for d in dims]
    p = _frames(r, x, dims)
    if p is None:
        p = r.pair(x)
        for d in dims:
            p = r.emit(FFT, p, d, False)
    if onesided:
        p = r.emit(aten.slice.Tensor, p, dims[-1], 0, sizes[-1] // 2 + 1)
    return r.scale(p, sizes, normalization)


def _fft_c2c(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """_fft_c2c(Tensor self, SymInt[] dim, int normalization, bool forward) -> Tensor"""
    x, dim, normalization, forward = node.args
    p = r.pairs[x]
    dims = [_dim(d, r.rank(x)) for d in dim]
    for d in dims:
        p = r.emit(FFT, p, d, not forward)
    return r.scale(p, [r.val(x).shape[d] for d in dims], normalization)


def _fft_c2r(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """_fft_c2r(Tensor self, int[] dim, int normalization, SymInt last_dim_size) -> Tensor: the real inverse
    FFT of a Hermitian spectrum given by its first n//2+1 values X: the real part of the inverse FFT of
    (X_0, 2 X_1, ..., 2 X_m, X_n/2 for an even n, zeros up to n), which drops the imaginary parts of X_0
    and X_n/2 as torch does."""
    x, dim, normalization, n = node.args
    p = r.pairs[x]
    dims = [_dim(d, r.rank(x)) for d in dim]
    for d in dims[:-1]:
        p = r.emit(FFT, p, d, True)
    last = dims[-1]
    pieces = [r.emit(aten.slice.Tensor, p, last, 0, 1)]
    if (n + 1) // 2 > 1:
        pieces.append(r.mul(r.emit(aten.slice.Tensor, p, last, 1, (n + 1) // 2), 2.0))
    if n % 2 == 0 and n > 1:
        pieces.append(r.emit(aten.slice.Tensor, p, last, n // 2, n // 2 + 1))
    half = r.emit(aten.cat.default, pieces, last) if len(pieces) > 1 else pieces[0]
    padding = [0, 0] * (r.rank(half) - 1 - last) + [0, n - (n // 2 + 1)]
    full = r.emit(aten.constant_pad_nd.default, half, padding, 0.0) if n > n // 2 + 1 else half
    out = r.part(r.emit(FFT, full, last, True), 0)
    return r.scale(out, [r.val(node).shape[d] for d in dims], normalization)


def _unary(fn: Callable[[_Rewriter, torch.fx.Node], torch.fx.Node]) -> Rule:
    """Return the rule of an op read from the pair of its first operand."""
    return lambda r, node: fn(r, r.pairs[node.args[0]])


RULES: dict[Any, Rule] = {
    **LAYOUT_RULES,
    aten.squeeze.default: _squeeze_all,
    aten.sum.default: _sum_all,
    aten.gather.default: _gather,
    aten.where.self: _where,
    aten._to_copy.default: _to_copy,
    **{op: _factory for op in (aten.zeros.default, aten.ones.default, aten.full.default, aten.scalar_tensor.default,
                               aten.zeros_like.default, aten.ones_like.default, aten.full_like.default)},
    aten.add.Tensor: _add_sub(1), aten.add.Scalar: _add_sub(1),
    aten.sub.Tensor: _add_sub(-1), aten.sub.Scalar: _add_sub(-1),
    aten.mul.Tensor: _mul, aten.mul.Scalar: _mul,
    aten.div.Tensor: _div, aten.div.Scalar: _div,
    aten.neg.default: lambda r, node: r.neg(r.pairs[node.args[0]]),
    aten._neg_view.default: lambda r, node: r.neg(r.pairs[node.args[0]]),
    aten.pow.Tensor_Scalar: _pow,
    aten.sqrt.default: lambda r, node: _power(r, r.pairs[node.args[0]], 0.5),
    aten.conj.default: _conj, aten._conj.default: _conj, aten.conj_physical.default: _conj,
    aten.exp.default: _exp,
    aten.log.default: _log,
    aten.reciprocal.default: _reciprocal,
    aten.sgn.default: _sgn,
    aten.abs.default: _unary(_abs),
    aten.angle.default: _unary(_angle),
    aten.real.default: _unary(lambda r, p: r.part(p, 0)),
    aten.imag.default: _unary(lambda r, p: r.part(p, 1)),
    aten.view_as_real.default: _unary(lambda r, p: p),
    aten.view_as_complex.default: lambda r, node: node.args[0],
    aten.complex.default: _complex,
    aten.polar.default: _polar,
    **{op: _matmul for op in (aten.mm.default, aten.bmm.default, aten.matmul.default)},
    aten._fft_r2c.default: _fft_r2c,
    aten._fft_c2c.default: _fft_c2c,
    aten._fft_c2r.default: _fft_c2r,
    operator.getitem: lambda r, node: r.emit(operator.getitem, r.pairs[node.args[0]], node.args[1]),
}


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
        if not any(_is_complex(n.meta.get("val")) for n in program.graph.nodes):
            return PassResult(program, False)
        r = _Rewriter(program)
        state_dict, constants = self._placeholders(r)
        missing: dict[str, list[torch.fx.Node]] = {}
        for node in list(program.graph.nodes):
            if node.op != "call_function" or not (_is_complex(node.meta.get("val")) or any(
                    _complex_node(a) for a in node.all_input_nodes)):
                continue
            rule = RULES.get(node.target)
            if rule is None:
                missing.setdefault(_op_name(node), []).append(node)
                continue
            r.node = node
            new = rule(r, node)
            if _is_complex(node.meta.get("val")):
                r.pairs[node] = new
            else:
                node.replace_all_uses_with(new)
        if missing:
            raise UnsupportedOpError(self._message(missing))
        self._outputs(r)
        program.graph.eliminate_dead_code()
        return PassResult(replace(program, graph_signature=renamed_outputs(program), state_dict=state_dict,
                                  constants=constants), True)

    @staticmethod
    def _placeholders(r: _Rewriter) -> tuple[dict, dict]:
        """Make complex placeholders pairs: user inputs in meta, weights and constants on copies."""
        program = r.program
        state_dict, constants = dict(program.state_dict), dict(program.constants)
        for node, spec in placeholders(program):
            val = node.meta.get("val")
            if not _is_complex(val):
                continue
            if spec.kind == InputKind.USER_INPUT:
                node.meta[COMPLEX_IO] = str(val.dtype).replace("torch.", "")
            else:
                store = state_dict if spec.target in state_dict else constants
                pairs = torch.view_as_real(store[spec.target].detach().resolve_conj()).clone()
                is_param = isinstance(store[spec.target], torch.nn.Parameter)
                store[spec.target] = torch.nn.Parameter(pairs, requires_grad=False) if is_param else pairs
            with r.mode:
                node.meta["val"] = torch.empty([*val.shape, 2], dtype=REAL[val.dtype])
            r.pairs[node] = node
        return state_dict, constants

    @staticmethod
    def _outputs(r: _Rewriter) -> None:
        """Make the graph return pairs for its complex outputs, and mark their positions."""
        out = output_node(r.program)
        values = list(out.args[0])
        complex_positions = [i for i, v in enumerate(values) if _complex_node(v)]
        if not complex_positions:
            return
        out.update_arg(0, type(out.args[0])(r.pairs[v] if i in complex_positions else v for i, v in enumerate(values)))
        out.meta[COMPLEX_IO] = complex_positions

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
