"""LegalizeComplexPass: no value is complex; each is a real tensor whose trailing axis of 2 holds its
(real, imaginary) parts, and every complex op is written as real ops on that layout."""
from __future__ import annotations

import logging
import math
import operator
from typing import Any, Callable

import torch
from torch._dispatch.python import enable_python_dispatcher
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind

from ..backends.nnef.unsupported import reason as not_expressible
from ..compiler.pass_base import Pass, PassResult
from ..compiler.program import (OUTPUT_NAMES, fake_mode, input_name, known_value, output_node, placeholders,
                                renamed_outputs, replace, source_line)
from ..errors import UnsupportedOpError

aten = torch.ops.aten
log = logging.getLogger("fx2nnef")
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
        self.inputs: dict[torch.fx.Node, torch.Tensor] = {}   # complex placeholder -> its complex value
        self.known_parts: dict[torch.fx.Node, tuple] = {}      # pair node -> (real, imaginary) nodes
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
    def val(self, x: torch.fx.Node):
        """Return a node's value as the original program has it (complex for a complex input)."""
        return self.inputs.get(x, x.meta["val"])

    def rank(self, x: torch.fx.Node) -> int:
        return self.val(x).dim()

    @staticmethod
    def pval(p: torch.fx.Node):
        """Return the value of a node of the rewritten program (a pair node's has the trailing 2)."""
        return p.meta["val"]

    def is_complex(self, x: Any) -> bool:
        """Tell whether an fx value is a complex tensor of the original program (a pair node is not)."""
        return x in self.inputs or _complex_node(x)

    def pair(self, x: Any, dtype: torch.dtype | None = None) -> torch.fx.Node:
        """Return the pair form of a complex node, or of a real tensor node (imaginary part 0)."""
        if x in self.pairs:
            return self.pairs[x]
        real = self.val(x)
        if dtype is not None and real.dtype != dtype:
            x = self.emit(aten._to_copy.default, x, dtype=dtype)
        return self.emit(aten.constant_pad_nd.default, self.emit(aten.unsqueeze.default, x, real.dim()), [0, 1], 0.0)

    def part(self, p: torch.fx.Node, index: int) -> torch.fx.Node:
        """Return the real (0) or imaginary (1) part of a pair node (a pair made here is not taken apart)."""
        if p not in self.known_parts:
            self.known_parts[p] = (None, None)
        known = self.known_parts[p][index]
        if known is None:
            known = self.emit(aten.select.int, p, self.pval(p).dim() - 1, index)
            self.known_parts[p] = tuple(known if k == index else v for k, v in enumerate(self.known_parts[p]))
        return known

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
            shape = list(torch.broadcast_shapes(*[self.pval(x).shape for x in nodes]))
        parts = []
        for x in (re, im):
            if not isinstance(x, torch.fx.Node):
                x = self.emit(aten.full_like.default, nodes[0], x)
            if list(self.pval(x).shape) != shape:
                x = self.emit(aten.expand.default, x, shape)
            parts.append(x)
        pair = self.emit(aten.stack.default, parts, len(shape))
        self.known_parts[pair] = tuple(parts)
        return pair

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
        complex_operand = next(x for x in tensors if r.is_complex(x))
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


def _reshape(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """view / _unsafe_view / reshape: a reshape of the pairs (NNEF tensors have no strides, so a view
    of the pairs whose strides torch would refuse is a plain reshape)."""
    return r.emit(aten.reshape.default, r.pairs[node.args[0]], [*node.args[1], 2])


KEEP = _layout()
LAYOUT_RULES: dict[Any, Rule] = {
    aten.expand.default: _layout(size=lambda s, rank: [*s, 2]),
    **{op: _reshape for op in (aten.view.default, aten._unsafe_view.default, aten.reshape.default)},
    **{op: KEEP for op in (aten.clone.default, aten.alias.default, aten.detach.default, aten.lift_fresh_copy.default,
                           aten.contiguous.default)},
    aten.permute.default: _layout(dims=lambda ds, rank: _dims(ds, rank) + [rank]),
    aten.transpose.int: _layout(dim0=_dim, dim1=_dim),
    aten.unsqueeze.default: _layout(dim=lambda d, rank: d % (rank + 1)),
    aten.squeeze.dim: _layout(dim=_dim),
    aten.squeeze.dims: _layout(dim=_dims),
    aten.slice.Tensor: _layout(dim=_dim),
    aten.select.int: _layout(dim=_dim),
    aten.index_select.default: lambda r, node: r.pairs[node.args[0]] if r.rank(node.args[0]) == 0 else
    _layout(dim=_dim)(r, node),
    aten.index.Tensor: KEEP,
    aten.flip.default: _layout(dims=_dims),
    aten.roll.default: _layout(dims=_dims),
    aten.cat.default: _layout(("tensors",), dim=_dim),
    aten.stack.default: _layout(("tensors",), dim=lambda d, rank: d % (rank + 1)),
    aten.split_with_sizes.default: _layout(dim=_dim),
    aten.split.Tensor: _layout(dim=_dim),
    aten.unbind.int: _layout(dim=_dim), aten.unbind_copy.int: _layout(dim=_dim),
    aten.split_with_sizes_copy.default: _layout(dim=_dim),
    aten.repeat.default: _layout(repeats=lambda s, rank: [*s, 1]),
    aten.constant_pad_nd.default: _layout(pad=lambda p, rank: [0, 0, *p]),
    aten.sym_size.int: _layout(dim=_dim),
}


def _squeeze_all(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """squeeze(Tensor(a) self) -> Tensor(a): squeeze the unit dims of the complex tensor, not the pair axis."""
    shape = r.val(node.args[0]).shape
    return r.emit(aten.squeeze.dims, r.pair(node.args[0]), [i for i, d in enumerate(shape) if d == 1])


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
        return p if r.pval(p).dtype == REAL[out.dtype] else r.emit(aten._to_copy.default, p, dtype=REAL[out.dtype])
    real = r.part(r.pair(x), 0)   # complex -> real drops the imaginary part, as torch does
    return real if r.pval(real).dtype == out.dtype else r.emit(aten._to_copy.default, real, dtype=out.dtype)


def _factory(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """zeros / ones / full / scalar_tensor / new_* / *_like of a complex dtype: both parts filled apart
    (new_empty's with zeros)."""
    named, name = _arguments(node), node.target._schema.name.split("::")[1]
    dtype = REAL[r.val(node).dtype]
    value = complex({"zeros": 0, "ones": 1, "zeros_like": 0, "ones_like": 1, "new_ones": 1}.get(
        name, named.get("fill_value", named.get("s", 0))))   # new_empty: zeros
    if name.endswith("_like"):
        template = named["self"]
        template = r.part(r.pairs[template], 0) if template in r.pairs else template
        parts = [r.emit(aten.full_like.default, template, v, dtype=dtype) for v in (value.real, value.imag)]
    elif name == "scalar_tensor":
        parts = [r.emit(aten.scalar_tensor.default, v, dtype=dtype) for v in (value.real, value.imag)]
    else:
        parts = [r.emit(aten.full.default, named["size"], v, dtype=dtype) for v in (value.real, value.imag)]
    return r.emit(aten.stack.default, parts, r.pval(parts[0]).dim())


def _add_sub(sign: int) -> Rule:
    def rule(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
        named = _arguments(node)
        x, y, alpha = named["self"], named["other"], named.get("alpha", 1)
        if r.is_complex(x) and r.is_complex(y) and not isinstance(alpha, complex):
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
        if r.is_complex(p) and (factor := _real_factor(r, f)) is not None:
            return r.mul(r.pairs[p], factor)
    (a, b), (c, d) = r.parts(x), r.parts(y)
    return r.make(r.sub(r.mul(a, c), r.mul(b, d)), r.add(r.mul(a, d), r.mul(b, c)))


def _div(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """div.Tensor(Tensor self, Tensor other) -> Tensor: (a+bi)/(c+di) = ((ac+bd) + (bc-ad)i) / (c²+d²)."""
    x, y = node.args[:2]
    if r.is_complex(x) and (factor := _real_factor(r, y)) is not None:
        return r.div(r.pairs[x], factor)
    (a, b), (c, d) = r.parts(x), r.parts(y)
    den = r.norm2(c, d)
    return r.make(r.div(r.add(r.mul(a, c), r.mul(b, d)), den), r.div(r.sub(r.mul(b, c), r.mul(a, d)), den))


def _abs(r: _Rewriter, p: torch.fx.Node) -> torch.fx.Node:
    """Return |z| of a pair node."""
    return r.emit(aten.sqrt.default, r.emit(aten.sum.dim_IntList, r.mul(p, p), [r.pval(p).dim() - 1]))


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
    padding = [0, 0] * (r.pval(half).dim() - 1 - last) + [0, n - (n // 2 + 1)]
    full = r.emit(aten.constant_pad_nd.default, half, padding, 0.0) if n > n // 2 + 1 else half
    out = r.part(r.emit(FFT, full, last, True), 0)
    return r.scale(out, [r.val(node).shape[d] for d in dims], normalization)


def _per_part(*operands: str) -> Rule:
    """Return the rule of an op that is real-linear in its `operands` (tensors or numbers; its other
    arguments are real): the op on the real parts, the op on the imaginary parts, paired."""
    def rule(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
        named = _arguments(node)
        if named.get("dtype") in REAL:
            named["dtype"] = REAL[named["dtype"]]
        parts = []
        for k in (0, 1):
            call = dict(named)
            for name in operands:
                call[name] = _part_of(r, named[name], k)
            parts.append(r.call(node.target, call))
        return r.make(*parts)
    return rule


def _part_of(r: _Rewriter, x: Any, k: int) -> Any:
    """Return part k (0 real, 1 imaginary) of an operand: a complex node, a real tensor node (0 for the
    imaginary part), a number, or a list of these."""
    if isinstance(x, (list, tuple)):
        return [_part_of(r, v, k) for v in x]
    if r.is_complex(x):
        return r.part(r.pairs[x], k)
    if isinstance(x, torch.fx.Node):
        return x if k == 0 else r.emit(aten.zeros_like.default, x)
    if _is_number(x):
        return r.parts(x)[k]
    return x


def _reduce(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """sum / mean over dims of the complex tensor (all by default): the same reduction of the pairs over
    those dims (none for a 0-d tensor)."""
    named = _arguments(node)
    x = named["self"]
    if r.rank(x) == 0:
        return r.pairs[x]
    op = aten.mean.dim if node.target in (aten.mean.dim, aten.mean.default) else aten.sum.dim_IntList
    dtype = named.get("dtype")
    return r.call(op, {"self": r.pairs[x], "dim": _all_dims(named.get("dim"), r.rank(x)),
                       "keepdim": named.get("keepdim", False), "dtype": REAL.get(dtype, dtype)})


def _bool_of(r: _Rewriter, x: Any) -> Any:
    """Return `x != 0` of a complex operand (a bool node), or the operand itself when it is real."""
    if not r.is_complex(x):
        return x
    a, b = r.parts(x)
    return r.emit(aten.logical_or.default, r.emit(aten.ne.Scalar, a, 0.0), r.emit(aten.ne.Scalar, b, 0.0))


def _logical(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """logical_not / and / or / xor of complex operands: on `z != 0`."""
    return r.emit(node.target, *[_bool_of(r, x) for x in node.args])


def _compare(equal: bool) -> Rule:
    """eq / ne: both parts equal / either part different."""
    def rule(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
        (a, b), (c, d) = r.parts(node.args[0]), r.parts(node.args[1])
        test = [_compare_parts(r, equal, x, y) for x, y in ((a, c), (b, d))]
        return r.emit(aten.logical_and.default if equal else aten.logical_or.default, *test)
    return rule


def _compare_parts(r: _Rewriter, equal: bool, x: Any, y: Any) -> torch.fx.Node:
    if _is_number(x):
        x, y = y, x
    if _is_number(y):
        return r.emit(aten.eq.Scalar if equal else aten.ne.Scalar, x, y)
    return r.emit(aten.eq.Tensor if equal else aten.ne.Tensor, x, y)


def _either_part(op) -> Rule:
    """isnan / isinf: of either part; isfinite: of both."""
    def rule(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
        a, b = r.parts(node.args[0])
        combine = aten.logical_and.default if op is aten.isfinite.default else aten.logical_or.default
        return r.emit(combine, r.emit(op, a), r.emit(op, b))
    return rule


def _variance(var_op, root: bool = False) -> Rule:
    """var / std (by `var_op`, the var overload of the same arguments): the variance of z is the sum
    of its parts' variances."""
    def rule(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
        named = _arguments(node)
        a, b = r.parts(named["self"])
        total = r.add(*[r.call(var_op, {**named, "self": part}) for part in (a, b)])
        return r.emit(aten.sqrt.default, total) if root else total
    return rule


def _var_mean(r: _Rewriter, node: torch.fx.Node) -> tuple:
    """var_mean.correction: (the variance, real; the mean, complex)."""
    named = _arguments(node)
    variance = _variance(aten.var.correction)(r, node)
    mean = _reduce_mean(r, named["self"], named.get("dim"), named.get("keepdim", False))
    return variance, mean


def _reduce_mean(r: _Rewriter, x: torch.fx.Node, dims, keepdim: bool) -> torch.fx.Node:
    if r.rank(x) == 0:
        return r.pairs[x]
    return r.emit(aten.mean.dim, r.pairs[x], _all_dims(dims, r.rank(x)), bool(keepdim))


def _vector_norm(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """linalg_vector_norm: the same norm of |z|."""
    named = _arguments(node)
    named["self"] = _abs(r, r.pairs[named["self"]])
    if named.get("dtype") in REAL:
        named["dtype"] = REAL[named["dtype"]]
    return r.call(node.target, named)


def _truth(op) -> Rule:
    """all / any of complex values: of `z != 0`."""
    def rule(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
        named = _arguments(node)
        return r.call(op, {**named, "self": _bool_of(r, named["self"])})
    return rule


def _prod(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """prod / cumprod in polar form: exp(sum log|z|) (0 for a zero factor) at the summed angle."""
    named = _arguments(node)
    p = r.pairs[named["self"]]
    size, angle = r.emit(aten.log.default, _abs(r, p)), _angle(r, p)
    if node.target is aten.cumprod.default:
        total = [r.emit(aten.cumsum.default, x, named["dim"]) for x in (size, angle)]
    elif node.target is aten.prod.dim_int:
        total = [r.emit(aten.sum.dim_IntList, x, [named["dim"]], named.get("keepdim", False)) for x in (size, angle)]
    else:
        total = [r.emit(aten.sum.default, x) for x in (size, angle)]
    size = r.emit(aten.exp.default, total[0])
    return r.make(r.mul(size, r.emit(aten.cos.default, total[1])), r.mul(size, r.emit(aten.sin.default, total[1])))


def _logsumexp(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """logsumexp(Tensor self, int[1] dim, bool keepdim=False): log(sum(exp(z - m))) + m, m the largest
    real part (the imaginary parts wrap)."""
    named = _arguments(node)
    x, keepdim = named["self"], named.get("keepdim", False)
    dims = _all_dims(named["dim"], r.rank(x))
    a, b = r.parts(x)
    top = r.emit(aten.amax.default, a, dims, True)
    e = _cexp(r, r.sub(a, top), b)
    total = [r.emit(aten.sum.dim_IntList, part, dims, True) for part in e]
    re, im = _clog(r, *total)
    re = r.add(re, top)
    if not keepdim:
        re, im = [r.emit(aten.squeeze.dims, part, dims) for part in (re, im)]
    return r.make(re, im)


def _sinc(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """sinc z = sin(pi z) / (pi z), 1 at 0."""
    a, b = r.parts(node.args[0])
    za, zb = r.mul(a, math.pi), r.mul(b, math.pi)
    zero = r.emit(aten.logical_and.default, r.emit(aten.eq.Scalar, a, 0.0), r.emit(aten.eq.Scalar, b, 0.0))
    safe_a = r.emit(aten.where.self, zero, _like(r, 1.0, za), za)
    re, im = _cdiv(r, _trig("sin")(r, safe_a, zb), (safe_a, zb))
    return r.make(r.emit(aten.where.self, zero, _like(r, 1.0, re), re), r.emit(aten.where.self, zero, _like(r, 0.0, im), im))


def _dist(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """dist(Tensor self, Tensor other, Scalar p=2): the p-norm of |self - other|."""
    named = _arguments(node)
    (a, b), (c, d) = r.parts(named["self"]), r.parts(named["other"])
    difference = r.make(r.sub(a, c), r.sub(b, d))
    return r.emit(aten.linalg_vector_norm.default, _abs(r, difference), float(named.get("p", 2)))


# -- elementary functions on parts (a, b) -> (re, im) ------------------------------------------------

def _call(r: _Rewriter, op, x: Any) -> Any:
    """Return op(x) for a real node, or for a number."""
    return float(op(torch.tensor(float(x)))) if _is_number(x) else r.emit(op, x)


def _cexp(r: _Rewriter, a: Any, b: Any) -> tuple[Any, Any]:
    e = _call(r, aten.exp.default, a)
    return r.mul(e, _call(r, aten.cos.default, b)), r.mul(e, _call(r, aten.sin.default, b))


def _clog(r: _Rewriter, a: Any, b: Any) -> tuple[Any, Any]:
    """log z = log|z| + i atan2(b, a) (|z| from a hypot-free sqrt, fine within f32 range)."""
    size = _call(r, aten.sqrt.default, r.norm2(a, b))
    angle = r.emit(aten.atan2.default, *[x if isinstance(x, torch.fx.Node) else _like(r, x, a, b) for x in (b, a)])
    return _call(r, aten.log.default, size), angle


def _like(r: _Rewriter, value: float, *others: Any) -> torch.fx.Node:
    """Return a node filled with `value` shaped like the first node among `others`."""
    template = next(x for x in others if isinstance(x, torch.fx.Node))
    return r.emit(aten.full_like.default, template, value)


def _cmul(r: _Rewriter, z: tuple, w: tuple) -> tuple[Any, Any]:
    (a, b), (c, d) = z, w
    return r.sub(r.mul(a, c), r.mul(b, d)), r.add(r.mul(a, d), r.mul(b, c))


def _cdiv(r: _Rewriter, z: tuple, w: tuple) -> tuple[Any, Any]:
    (a, b), (c, d) = z, w
    den = r.norm2(c, d)
    return r.div(r.add(r.mul(a, c), r.mul(b, d)), den), r.div(r.sub(r.mul(b, c), r.mul(a, d)), den)


def _csqrt(r: _Rewriter, a: Any, b: Any) -> tuple[Any, Any]:
    """Principal square root: sqrt|z| (cos θ/2 + i sin θ/2)."""
    size = _call(r, aten.sqrt.default, _call(r, aten.sqrt.default, r.norm2(a, b)))
    half = r.mul(r.emit(aten.atan2.default, *[x if isinstance(x, torch.fx.Node) else _like(r, x, a, b)
                                                 for x in (b, a)]), 0.5)
    return r.mul(size, r.emit(aten.cos.default, half)), r.mul(size, r.emit(aten.sin.default, half))


def _trig(kind: str):
    """Return the parts function of sin, cos, sinh, cosh, tan, tanh."""
    def fn(r: _Rewriter, a: Any, b: Any) -> tuple[Any, Any]:
        f = lambda op, x: _call(r, op, x)  # noqa: E731
        if kind == "sin":
            return r.mul(f(aten.sin.default, a), f(aten.cosh.default, b)), r.mul(f(aten.cos.default, a), f(aten.sinh.default, b))
        if kind == "cos":
            return r.mul(f(aten.cos.default, a), f(aten.cosh.default, b)), r.neg(r.mul(f(aten.sin.default, a), f(aten.sinh.default, b)))
        if kind == "sinh":
            return r.mul(f(aten.sinh.default, a), f(aten.cos.default, b)), r.mul(f(aten.cosh.default, a), f(aten.sin.default, b))
        if kind == "cosh":
            return r.mul(f(aten.cosh.default, a), f(aten.cos.default, b)), r.mul(f(aten.sinh.default, a), f(aten.sin.default, b))
        a2, b2 = r.mul(a, 2.0), r.mul(b, 2.0)
        if kind == "tan":   # (sin 2a + i sinh 2b) / (cos 2a + cosh 2b)
            den = r.add(f(aten.cos.default, a2), f(aten.cosh.default, b2))
            return r.div(f(aten.sin.default, a2), den), r.div(f(aten.sinh.default, b2), den)
        den = r.add(f(aten.cosh.default, a2), f(aten.cos.default, b2))   # tanh: (sinh 2a + i sin 2b) / (...)
        return r.div(f(aten.sinh.default, a2), den), r.div(f(aten.sin.default, b2), den)
    return fn


def _asinh(r: _Rewriter, a: Any, b: Any) -> tuple[Any, Any]:
    """asinh z = log(z + sqrt(z² + 1)), computed on the half plane re >= 0 (asinh is odd) to avoid
    the cancellation of z + sqrt(z² + 1) for re z < 0."""
    negative = r.emit(aten.lt.Scalar, a, 0.0)
    sign = r.emit(aten.where.self, negative, _like(r, -1.0, a), _like(r, 1.0, a))
    a, b = r.mul(a, sign), r.mul(b, sign)
    root = _csqrt(r, *r_add_pair(r, _cmul(r, (a, b), (a, b)), (1.0, 0.0)))
    re, im = _clog(r, *r_add_pair(r, (a, b), root))
    return r.mul(re, sign), r.mul(im, sign)


def r_add_pair(r: _Rewriter, z: tuple, w: tuple) -> tuple[Any, Any]:
    return r.add(z[0], w[0]), r.add(z[1], w[1])


def _acosh(r: _Rewriter, a: Any, b: Any) -> tuple[Any, Any]:
    """acosh z = log(z + sqrt(z + 1) sqrt(z - 1))."""
    root = _cmul(r, _csqrt(r, r.add(a, 1.0), b), _csqrt(r, r.sub(a, 1.0), b))
    return _clog(r, *r_add_pair(r, (a, b), root))


def _atanh(r: _Rewriter, a: Any, b: Any) -> tuple[Any, Any]:
    """atanh z = (log(1 + z) - log(1 - z)) / 2."""
    plus, minus = _clog(r, r.add(a, 1.0), b), _clog(r, r.sub(1.0, a), r.neg(b))
    return r.mul(r.sub(plus[0], minus[0]), 0.5), r.mul(r.sub(plus[1], minus[1]), 0.5)


def _times_i(fn):
    """Return the parts function of -i f(i z) (asin from asinh, atan from atanh)."""
    def g(r: _Rewriter, a: Any, b: Any) -> tuple[Any, Any]:
        re, im = fn(r, r.neg(b), a)      # f(i z), i z = -b + a i
        return im, r.neg(re)             # -i (re + i im) = im - i re
    return g


def _acos(r: _Rewriter, a: Any, b: Any) -> tuple[Any, Any]:
    """acos z = pi/2 - asin z."""
    re, im = _times_i(_asinh)(r, a, b)
    return r.sub(math.pi / 2, re), r.neg(im)


def _log1p(r: _Rewriter, a: Any, b: Any) -> tuple[Any, Any]:
    """log(1 + z): real part log1p(2a + a² + b²) / 2 (exact near 0), imaginary part atan2(b, 1 + a)."""
    re = r.mul(r.emit(aten.log1p.default, r.add(r.mul(a, 2.0), r.norm2(a, b))), 0.5)
    return re, r.emit(aten.atan2.default, b, r.add(a, 1.0))


def _expm1(r: _Rewriter, a: Any, b: Any) -> tuple[Any, Any]:
    """exp(z) - 1: real part expm1(a) cos b - 2 sin²(b/2) (exact near 0)."""
    half = r.emit(aten.sin.default, r.mul(b, 0.5))
    re = r.sub(r.mul(r.emit(aten.expm1.default, a), r.emit(aten.cos.default, b)), r.mul(r.mul(half, half), 2.0))
    return re, r.mul(r.emit(aten.exp.default, a), r.emit(aten.sin.default, b))


def _scaled_log(base: float):
    def fn(r: _Rewriter, a: Any, b: Any) -> tuple[Any, Any]:
        re, im = _clog(r, a, b)
        return r.mul(re, 1 / math.log(base)), r.mul(im, 1 / math.log(base))
    return fn


def _sigmoid(r: _Rewriter, a: Any, b: Any) -> tuple[Any, Any]:
    """1 / (1 + exp(-z))."""
    e = _cexp(r, r.neg(a), r.neg(b))
    return _cdiv(r, (1.0, 0.0), (r.add(e[0], 1.0), e[1]))


def _silu(r: _Rewriter, a: Any, b: Any) -> tuple[Any, Any]:
    return _cmul(r, (a, b), _sigmoid(r, a, b))


def _exp2(r: _Rewriter, a: Any, b: Any) -> tuple[Any, Any]:
    return _cexp(r, r.mul(a, math.log(2)), r.mul(b, math.log(2)))


def _rsqrt(r: _Rewriter, a: Any, b: Any) -> tuple[Any, Any]:
    return _cdiv(r, (1.0, 0.0), _csqrt(r, a, b))


def _function(fn) -> Rule:
    """Return the rule of an elementwise function of one complex operand given by its parts function."""
    return lambda r, node: r.make(*fn(r, *r.parts(node.args[0])))


def _pow_tensor(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """pow.Tensor_Tensor / pow.Scalar: z ** w = exp(w log z)."""
    (a, b), w = r.parts(node.args[0]), r.parts(node.args[1])
    if _is_number(a) and _is_number(b):
        base = complex(a, b)
        log = (math.log(abs(base)) if base else -math.inf, math.atan2(b, a))
    else:
        log = _clog(r, a, b)
    return r.make(*_cexp(r, *_cmul(r, w, log)))


def _rsub(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """rsub.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor: other - alpha * self."""
    named = _arguments(node)
    z = _times(r, r.parts(named["self"]), named.get("alpha", 1))
    c = r.parts(named["other"])
    return r.make(r.sub(c[0], z[0]), r.sub(c[1], z[1]))


def _product(op) -> Callable:
    """Return the complex form of a real bilinear product op(x, y) (mm, bmm, matmul, mv, linear)."""
    def product(r: _Rewriter, x: Any, y: Any) -> tuple[Any, Any]:
        one = lambda u, v: 0.0 if _is_number(u) or _is_number(v) else r.emit(op, u, v)  # noqa: E731
        (a, b), (c, d) = r.parts(x), r.parts(y)
        return r.sub(one(a, c), one(b, d)), r.add(one(a, d), one(b, c))
    return product


def _matmul_rule(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """mm / bmm / matmul / mv (as matmul): (A+Bi)(C+Di) = (AC-BD) + (AD+BC)i."""
    op = aten.matmul.default if node.target is aten.mv.default else node.target
    return r.make(*_product(op)(r, *node.args[:2]))


def _linear(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """linear(Tensor input, Tensor weight, Tensor? bias=None) -> Tensor"""
    named = _arguments(node)
    out = _product(aten.linear.default)(r, named["input"], named["weight"])
    if named.get("bias") is not None:
        out = r_add_pair(r, out, r.parts(named["bias"]))
    return r.make(*out)


def _add_product(product_op) -> Rule:
    """addmm / addmv / baddbmm / addbmm: beta * self + alpha * product(x, y)."""
    def rule(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
        named = _arguments(node)
        x, y = [named[k] for k in ("mat1", "mat2", "mat", "vec", "batch1", "batch2") if k in named]
        out = _product(product_op)(r, x, y)
        if product_op is aten.bmm.default and node.target is aten.addbmm.default:
            out = tuple(r.emit(aten.sum.dim_IntList, part, [0]) if isinstance(part, torch.fx.Node) else part
                        for part in out)
        out = _times(r, out, named.get("alpha", 1))
        beta = named.get("beta", 1)
        if beta != 0:
            out = r_add_pair(r, out, _times(r, r.parts(named["self"]), beta))
        return r.make(*out)
    return rule


def _diagonal(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """diagonal(Tensor(a) self, int offset=0, int dim1=0, int dim2=1): the diagonal of the pairs (which
    puts the diagonal axis last), then the pair axis moved back last."""
    named = _arguments(node)
    rank = r.rank(named["self"])
    diagonal = r.emit(aten.diagonal.default, r.pairs[named["self"]], named.get("offset", 0),
                      _dim(named.get("dim1", 0), rank), _dim(named.get("dim2", 1), rank))
    n = r.pval(diagonal).dim()
    return r.emit(aten.permute.default, diagonal, list(range(n - 2)) + [n - 1, n - 2])


def _getitem(r: _Rewriter, node: torch.fx.Node) -> torch.fx.Node:
    """An item of a multi-output op's result: of the rewritten op's, or of the tuple a rule returned."""
    source, index = node.args
    result = r.pairs[source]
    return result[index] if isinstance(result, tuple) else r.emit(operator.getitem, result, index)


def _unary(fn: Callable[[_Rewriter, torch.fx.Node], torch.fx.Node]) -> Rule:
    """Return the rule of an op read from the pair of its first operand."""
    return lambda r, node: fn(r, r.pairs[node.args[0]])


RULES: dict[Any, Rule] = {
    **LAYOUT_RULES,
    aten.squeeze.default: _squeeze_all,
    aten.gather.default: _gather,
    aten.where.self: _where,
    aten._to_copy.default: _to_copy,
    **{op: _factory for op in (aten.zeros.default, aten.ones.default, aten.full.default, aten.scalar_tensor.default,
                               aten.zeros_like.default, aten.ones_like.default, aten.full_like.default,
                               aten.new_empty.default, aten.new_zeros.default, aten.new_ones.default,
                               aten.new_full.default)},
    aten.add.Tensor: _add_sub(1), aten.add.Scalar: _add_sub(1),
    aten.sub.Tensor: _add_sub(-1), aten.sub.Scalar: _add_sub(-1),
    aten.mul.Tensor: _mul, aten.mul.Scalar: _mul,
    aten.div.Tensor: _div, aten.div.Scalar: _div,
    aten.neg.default: lambda r, node: r.neg(r.pairs[node.args[0]]),
    aten._neg_view.default: lambda r, node: r.neg(r.pairs[node.args[0]]),
    aten.pow.Tensor_Scalar: _pow,
    aten.sqrt.default: lambda r, node: _power(r, r.pairs[node.args[0]], 0.5),
    aten._conj.default: _conj, aten._conj_physical.default: _conj,
    aten.exp.default: _exp,
    aten.log.default: _log,
    aten.reciprocal.default: _reciprocal,
    aten.sgn.default: _sgn,
    aten.abs.default: _unary(_abs),
    aten.angle.default: _unary(_angle),
    aten.view_as_real.default: _unary(lambda r, p: p),
    aten.view_as_complex.default: lambda r, node: node.args[0],
    aten.complex.default: _complex,
    aten.polar.default: _polar,
    **{op: _matmul_rule for op in (aten.mm.default, aten.bmm.default, aten.matmul.default, aten.mv.default)},
    aten.linear.default: _linear,
    aten.addmm.default: _add_product(aten.mm.default), aten.addmv.default: _add_product(aten.matmul.default),
    aten.baddbmm.default: _add_product(aten.bmm.default), aten.addbmm.default: _add_product(aten.bmm.default),
    **{op: _reduce for op in (aten.sum.dim_IntList, aten.mean.dim, aten.sum.default, aten.mean.default)},
    **{op: _truth(op) for op in (aten.all.default, aten.all.dim, aten.all.dims, aten.any.default, aten.any.dim,
                                 aten.any.dims)},
    aten.prod.default: _prod, aten.prod.dim_int: _prod, aten.cumprod.default: _prod,
    aten.logsumexp.default: _logsumexp,
    aten.sinc.default: _sinc,
    aten.dist.default: _dist,
    aten.where.ScalarSelf: _per_part("self", "other"), aten.where.ScalarOther: _per_part("self", "other"),
    **{op: _logical for op in (aten.logical_not.default, aten.logical_and.default, aten.logical_or.default,
                               aten.logical_xor.default)},
    aten.eq.Tensor: _compare(True), aten.eq.Scalar: _compare(True),
    aten.ne.Tensor: _compare(False), aten.ne.Scalar: _compare(False),
    **{op: _either_part(op) for op in (aten.isnan.default, aten.isinf.default, aten.isfinite.default)},
    aten.var.correction: _variance(aten.var.correction), aten.std.correction: _variance(aten.var.correction, True),
    aten.var.default: _variance(aten.var.default), aten.std.default: _variance(aten.var.default, True),
    aten.var.dim: _variance(aten.var.dim), aten.std.dim: _variance(aten.var.dim, True),
    aten.var_mean.correction: _var_mean,
    aten.linalg_vector_norm.default: _vector_norm,
    aten.diagonal.default: _diagonal, aten.diagonal_copy.default: _diagonal,
    **{op: _function(fn) for op, fn in (
        (aten.sin.default, _trig("sin")), (aten.cos.default, _trig("cos")), (aten.tan.default, _trig("tan")),
        (aten.sinh.default, _trig("sinh")), (aten.cosh.default, _trig("cosh")), (aten.tanh.default, _trig("tanh")),
        (aten.asinh.default, _asinh), (aten.acosh.default, _acosh), (aten.atanh.default, _atanh),
        (aten.asin.default, _times_i(_asinh)), (aten.atan.default, _times_i(_atanh)), (aten.acos.default, _acos),
        (aten.log1p.default, _log1p), (aten.expm1.default, _expm1), (aten.exp2.default, _exp2),
        (aten.log2.default, _scaled_log(2)), (aten.log10.default, _scaled_log(10)),
        (aten.sigmoid.default, _sigmoid), (aten.silu.default, _silu), (aten.rsqrt.default, _rsqrt))},
    aten.pow.Tensor_Tensor: _pow_tensor, aten.pow.Scalar: _pow_tensor,
    aten.rsub.Tensor: _rsub, aten.rsub.Scalar: _rsub,
    **{op: _per_part("self") for op in (
        aten.tril.default, aten.triu.default, aten.t.default, aten.unfold.default, aten.as_strided.default,
        aten.as_strided_copy.default, aten.reflection_pad1d.default, aten.reflection_pad2d.default,
        aten.replication_pad1d.default, aten.replication_pad2d.default, aten.cumsum.default,
        aten.positive.default, aten.alias_copy.default, aten.permute_copy.default, aten.transpose_copy.int,
        aten.unsqueeze_copy.default, aten.narrow_copy.default, aten.view_copy.default, aten.expand_copy.default)},
    **{op: _per_part("self", "src") for op in (
        aten.scatter.src, aten.scatter_add.default, aten.select_scatter.default, aten.slice_scatter.default,
        aten.diagonal_scatter.default, aten.as_strided_scatter.default, aten.copy.default)},
    **{op: _per_part("self", "value") for op in (aten.masked_fill.Scalar, aten.masked_fill.Tensor)},
    **{op: _per_part("self", "values") for op in (aten.index_put.default,)},
    **{op: _per_part("self", "source") for op in (aten.masked_scatter.default, aten.index_add.default,
                                                    aten.index_copy.default)},
    aten.put.default: _per_part("self", "source"),
    aten.index_fill.int_Scalar: _per_part("self", "value"),
    aten._fft_r2c.default: _fft_r2c,
    aten._fft_c2c.default: _fft_c2c,
    aten._fft_c2r.default: _fft_c2r,
    operator.getitem: _getitem,
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
                    r.is_complex(a) for a in node.all_input_nodes)):
                continue
            rule = RULES.get(node.target)
            if rule is None or any(_complex_node(a) and a not in r.pairs for a in node.all_input_nodes):
                if rule is None:   # else a complex input has no pair form: its maker is reported
                    missing.setdefault(_op_name(node), []).append(node)
                continue
            r.node = node
            new = rule(r, node)
            if _is_complex(node.meta.get("val")):
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
    def _outputs(r: _Rewriter) -> None:
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
