"""The real-pair form of each complex op: RULES maps an op to a rule(writer, node) that writes, before the
node, real ops on the pairs of its complex operands and returns the node replacing it (a pair node when
the node's value is complex, a tuple of nodes for a multi-output op)."""
from __future__ import annotations

import math
import operator
from typing import Any, Callable

import torch

from ..compiler.program import known_value, placeholders
from .complex_functions import (acos, acosh, add_pairs, asinh, atanh, cdiv, cexp, clog, cmul, csqrt, exp2, expm1, like,
                                log1p, pair_abs, pair_angle, rsqrt, scaled_log, sigmoid, silu, times_i, trig)
from .complex_pairs import FFT, REAL, STFT, PairWriter, Rule, arguments, is_number

aten = torch.ops.aten


def _dim(d: int, rank: int) -> int:
    return d % max(rank, 1)


def _layout(operands: tuple[str, ...] = ("self",), **edits: Callable[[Any, int], Any]) -> Rule:
    """Return the rule of an op that only moves values: the same op on the pairs, with the dims and
    shapes of the complex tensor (`edits`: argument name -> fn(value, complex rank)) mapped to the pairs'."""
    def rule(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
        named = arguments(node)
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


def _reshape(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
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


def _squeeze_all(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """squeeze(Tensor(a) self) -> Tensor(a): squeeze the unit dims of the complex tensor, not the pair axis."""
    shape = r.val(node.args[0]).shape
    return r.emit(aten.squeeze.dims, r.pair(node.args[0]), [i for i, d in enumerate(shape) if d == 1])


def _gather(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """gather(Tensor self, int dim, Tensor index, *, bool sparse_grad=False) -> Tensor"""
    named = arguments(node)
    index = named["index"]
    pairs = r.emit(aten.unsqueeze.default, index, r.rank(index))
    pairs = r.emit(aten.expand.default, pairs, [*r.val(index).shape, 2])
    return r.emit(aten.gather.default, r.pair(named["self"]), _dim(named["dim"], r.rank(named["self"])), pairs)


def _where(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """where.self(Tensor condition, Tensor self, Tensor other) -> Tensor"""
    condition, x, y = node.args
    dtype = REAL[r.val(node).dtype]
    condition = r.emit(aten.unsqueeze.default, condition, r.rank(condition))
    return r.emit(aten.where.self, condition, r.pair(x, dtype), r.pair(y, dtype))


def _to_copy(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """_to_copy(Tensor self, *, ScalarType? dtype=None, ...) -> Tensor: to or from complex."""
    x, out = node.args[0], r.val(node)
    if out.dtype in REAL:
        p = r.pair(x, REAL[out.dtype])
        return p if r.pval(p).dtype == REAL[out.dtype] else r.emit(aten._to_copy.default, p, dtype=REAL[out.dtype])
    real = r.part(r.pair(x), 0)   # complex -> real drops the imaginary part, as torch does
    return real if r.pval(real).dtype == out.dtype else r.emit(aten._to_copy.default, real, dtype=out.dtype)


def _factory(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """zeros / ones / full / scalar_tensor / new_* / *like of a complex dtype: both parts filled apart
    (new_empty's with zeros)."""
    named, name = arguments(node), node.target._schema.name.split("::")[1]
    dtype = REAL[r.val(node).dtype]
    value = complex({"zeros": 0, "ones": 1, "zeros_like": 0, "ones_like": 1, "new_ones": 1}.get(
        name, named.get("fill_value", named.get("s", 0))))   # new_empty: zeros
    if name.endswith("like"):
        template = named["self"]
        template = r.part(r.pairs[template], 0) if template in r.pairs else template
        parts = [r.emit(aten.full_like.default, template, v, dtype=dtype) for v in (value.real, value.imag)]
    elif name == "scalar_tensor":
        parts = [r.emit(aten.scalar_tensor.default, v, dtype=dtype) for v in (value.real, value.imag)]
    else:
        parts = [r.emit(aten.full.default, named["size"], v, dtype=dtype) for v in (value.real, value.imag)]
    return r.emit(aten.stack.default, parts, r.pval(parts[0]).dim())


def _add_sub(sign: int) -> Rule:
    def rule(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
        named = arguments(node)
        x, y, alpha = named["self"], named["other"], named.get("alpha", 1)
        if r.is_complex(x) and r.is_complex(y) and not isinstance(alpha, complex):
            q = r.pairs[y] if alpha == 1 else r.mul(r.pairs[y], alpha)
            return r.emit(aten.add.Tensor if sign > 0 else aten.sub.Tensor, r.pairs[x], q)
        (a, b), (c, d) = r.parts(x), r.parts(y)
        c, d = _times(r, (c, d), alpha)
        combine = r.add if sign > 0 else r.sub
        return r.make(combine(a, c), combine(b, d))
    return rule


def _times(r: PairWriter, z: tuple[Any, Any], w: Any) -> tuple[Any, Any]:
    """Return the parts of z * w for a number w."""
    (a, b), (c, d) = z, r.parts(w)
    return r.sub(r.mul(a, c), r.mul(b, d)), r.add(r.mul(a, d), r.mul(b, c))


def _real_factor(r: PairWriter, x: Any) -> Any:
    """Return a real tensor operand as a factor of pairs (a trailing unit axis), a real number as is, else None."""
    if is_number(x):
        return None if isinstance(x, complex) and x.imag else complex(x).real
    if x in r.pairs:
        return None
    return r.emit(aten.unsqueeze.default, x, r.rank(x))


def _mul(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """mul.Tensor(Tensor self, Tensor other) -> Tensor: (a+bi)(c+di) = (ac-bd) + (ad+bc)i."""
    x, y = node.args[:2]
    for p, f in ((x, y), (y, x)):
        if r.is_complex(p) and (factor := _real_factor(r, f)) is not None:
            return r.mul(r.pairs[p], factor)
    (a, b), (c, d) = r.parts(x), r.parts(y)
    return r.make(r.sub(r.mul(a, c), r.mul(b, d)), r.add(r.mul(a, d), r.mul(b, c)))


def _div(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """div.Tensor(Tensor self, Tensor other) -> Tensor: (a+bi)/(c+di) = ((ac+bd) + (bc-ad)i) / (c²+d²)."""
    x, y = node.args[:2]
    if r.is_complex(x) and (factor := _real_factor(r, y)) is not None:
        return r.div(r.pairs[x], factor)
    (a, b), (c, d) = r.parts(x), r.parts(y)
    den = r.norm2(c, d)
    return r.make(r.div(r.add(r.mul(a, c), r.mul(b, d)), den), r.div(r.sub(r.mul(b, c), r.mul(a, d)), den))


def _power(r: PairWriter, p: torch.fx.Node, exponent: float) -> torch.fx.Node:
    """Return z**w for a real w, principal branch: |z|^w (cos wθ + i sin wθ)."""
    if exponent == 2:
        a, b = r.part(p, 0), r.part(p, 1)
        return r.make(r.sub(r.mul(a, a), r.mul(b, b)), r.mul(r.mul(a, b), 2.0))
    size = r.emit(aten.pow.Tensor_Scalar, pair_abs(r, p), exponent)
    theta = r.mul(pair_angle(r, p), exponent)
    return r.make(r.mul(size, r.emit(aten.cos.default, theta)), r.mul(size, r.emit(aten.sin.default, theta)))


def _pow(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """pow.Tensor_Scalar(Tensor self, Scalar exponent) -> Tensor"""
    exponent = node.args[1]
    if isinstance(exponent, complex):
        return _pow_tensor(r, node)
    return _power(r, r.pairs[node.args[0]], float(exponent))


def _conj(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    p = r.pairs[node.args[0]]
    return r.make(r.part(p, 0), r.neg(r.part(p, 1)))


def _sgn(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """sgn(z) = z / |z|, 0 at 0."""
    p = r.pairs[node.args[0]]
    size = pair_abs(r, p)
    safe = r.emit(aten.where.self, r.emit(aten.eq.Scalar, size, 0.0), r.emit(aten.ones_like.default, size), size)
    return r.div(p, r.emit(aten.unsqueeze.default, safe, r.rank(safe)))


def _complex(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """complex(Tensor real, Tensor imag) -> Tensor"""
    return r.make(*node.args[:2])


def _polar(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """polar(Tensor abs, Tensor angle) -> Tensor: abs (cos angle + i sin angle)."""
    size, theta = node.args[:2]
    return r.make(r.mul(size, r.emit(aten.cos.default, theta)), r.mul(size, r.emit(aten.sin.default, theta)))


def _frames(r: PairWriter, x: torch.fx.Node, dims: list[int]) -> torch.fx.Node | None:
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


def _fft_r2c(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
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


def _fft_c2c(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """_fft_c2c(Tensor self, SymInt[] dim, int normalization, bool forward) -> Tensor"""
    x, dim, normalization, forward = node.args
    p = r.pairs[x]
    dims = [_dim(d, r.rank(x)) for d in dim]
    for d in dims:
        p = r.emit(FFT, p, d, not forward)
    return r.scale(p, [r.val(x).shape[d] for d in dims], normalization)


def _fft_c2r(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
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
    def rule(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
        named = arguments(node)
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


def _part_of(r: PairWriter, x: Any, k: int) -> Any:
    """Return part k (0 real, 1 imaginary) of an operand: a complex node, a real tensor node (0 for the
    imaginary part), a number, or a list of these."""
    if isinstance(x, (list, tuple)):
        return [_part_of(r, v, k) for v in x]
    if r.is_complex(x):
        return r.part(r.pairs[x], k)
    if isinstance(x, torch.fx.Node):
        return x if k == 0 else r.emit(aten.zeros_like.default, x)
    if is_number(x):
        return r.parts(x)[k]
    return x


def _reduce(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """sum / mean over dims of the complex tensor (all by default): the same reduction of the pairs over
    those dims (none for a 0-d tensor)."""
    named = arguments(node)
    x = named["self"]
    if r.rank(x) == 0:
        return r.pairs[x]
    op = aten.mean.dim if node.target in (aten.mean.dim, aten.mean.default) else aten.sum.dim_IntList
    dtype = named.get("dtype")
    return r.call(op, {"self": r.pairs[x], "dim": _all_dims(named.get("dim"), r.rank(x)),
                       "keepdim": named.get("keepdim", False), "dtype": REAL.get(dtype, dtype)})


def _bool_of(r: PairWriter, x: Any) -> Any:
    """Return `x != 0` of a complex operand (a bool node), or the operand itself when it is real."""
    if not r.is_complex(x):
        return x
    a, b = r.parts(x)
    return r.emit(aten.logical_or.default, r.emit(aten.ne.Scalar, a, 0.0), r.emit(aten.ne.Scalar, b, 0.0))


def _logical(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """logical_not / and / or / xor of complex operands: on `z != 0`."""
    return r.emit(node.target, *[_bool_of(r, x) for x in node.args])


def _compare(equal: bool) -> Rule:
    """eq / ne: both parts equal / either part different."""
    def rule(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
        (a, b), (c, d) = r.parts(node.args[0]), r.parts(node.args[1])
        test = [_compare_parts(r, equal, x, y) for x, y in ((a, c), (b, d))]
        return r.emit(aten.logical_and.default if equal else aten.logical_or.default, *test)
    return rule


def _compare_parts(r: PairWriter, equal: bool, x: Any, y: Any) -> torch.fx.Node:
    if is_number(x):
        x, y = y, x
    if is_number(y):
        return r.emit(aten.eq.Scalar if equal else aten.ne.Scalar, x, y)
    return r.emit(aten.eq.Tensor if equal else aten.ne.Tensor, x, y)


def _either_part(op) -> Rule:
    """isnan / isinf: of either part; isfinite: of both."""
    def rule(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
        a, b = r.parts(node.args[0])
        combine = aten.logical_and.default if op is aten.isfinite.default else aten.logical_or.default
        return r.emit(combine, r.emit(op, a), r.emit(op, b))
    return rule


def _variance(var_op, root: bool = False) -> Rule:
    """var / std (by `var_op`, the var overload of the same arguments): the variance of z is the sum
    of its parts' variances."""
    def rule(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
        named = arguments(node)
        a, b = r.parts(named["self"])
        total = r.add(*[r.call(var_op, {**named, "self": part}) for part in (a, b)])
        return r.emit(aten.sqrt.default, total) if root else total
    return rule


def _var_mean(r: PairWriter, node: torch.fx.Node) -> tuple:
    """var_mean.correction: (the variance, real; the mean, complex)."""
    named = arguments(node)
    variance = _variance(aten.var.correction)(r, node)
    mean = _reduce_mean(r, named["self"], named.get("dim"), named.get("keepdim", False))
    return variance, mean


def _reduce_mean(r: PairWriter, x: torch.fx.Node, dims, keepdim: bool) -> torch.fx.Node:
    if r.rank(x) == 0:
        return r.pairs[x]
    return r.emit(aten.mean.dim, r.pairs[x], _all_dims(dims, r.rank(x)), bool(keepdim))


def _vector_norm(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """linalg_vector_norm: the same norm of |z|."""
    named = arguments(node)
    named["self"] = pair_abs(r, r.pairs[named["self"]])
    if named.get("dtype") in REAL:
        named["dtype"] = REAL[named["dtype"]]
    return r.call(node.target, named)


def _truth(op) -> Rule:
    """all / any of complex values: of `z != 0`."""
    def rule(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
        named = arguments(node)
        return r.call(op, {**named, "self": _bool_of(r, named["self"])})
    return rule


def _prod(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """prod / cumprod in polar form: exp(sum log|z|) (0 for a zero factor) at the summed angle."""
    named = arguments(node)
    p = r.pairs[named["self"]]
    size, angle = r.emit(aten.log.default, pair_abs(r, p)), pair_angle(r, p)
    if node.target is aten.cumprod.default:
        total = [r.emit(aten.cumsum.default, x, named["dim"]) for x in (size, angle)]
    elif node.target is aten.prod.dim_int:
        total = [r.emit(aten.sum.dim_IntList, x, [named["dim"]], named.get("keepdim", False)) for x in (size, angle)]
    else:
        total = [r.emit(aten.sum.default, x) for x in (size, angle)]
    size = r.emit(aten.exp.default, total[0])
    return r.make(r.mul(size, r.emit(aten.cos.default, total[1])), r.mul(size, r.emit(aten.sin.default, total[1])))


def _logsumexp(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """logsumexp(Tensor self, int[1] dim, bool keepdim=False): log(sum(exp(z - m))) + m, m the largest
    real part (the imaginary parts wrap)."""
    named = arguments(node)
    x, keepdim = named["self"], named.get("keepdim", False)
    dims = _all_dims(named["dim"], r.rank(x))
    a, b = r.parts(x)
    top = r.emit(aten.amax.default, a, dims, True)
    e = cexp(r, r.sub(a, top), b)
    total = [r.emit(aten.sum.dim_IntList, part, dims, True) for part in e]
    re, im = clog(r, *total)
    re = r.add(re, top)
    if not keepdim:
        re, im = [r.emit(aten.squeeze.dims, part, dims) for part in (re, im)]
    return r.make(re, im)


def _sinc(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """sinc z = sin(pi z) / (pi z), 1 at 0."""
    a, b = r.parts(node.args[0])
    za, zb = r.mul(a, math.pi), r.mul(b, math.pi)
    zero = r.emit(aten.logical_and.default, r.emit(aten.eq.Scalar, a, 0.0), r.emit(aten.eq.Scalar, b, 0.0))
    safe_a = r.emit(aten.where.self, zero, like(r, 1.0, za), za)
    re, im = cdiv(r, trig("sin")(r, safe_a, zb), (safe_a, zb))
    return r.make(r.emit(aten.where.self, zero, like(r, 1.0, re), re), r.emit(aten.where.self, zero, like(r, 0.0, im), im))


def _dist(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """dist(Tensor self, Tensor other, Scalar p=2): the p-norm of |self - other|."""
    named = arguments(node)
    (a, b), (c, d) = r.parts(named["self"]), r.parts(named["other"])
    difference = r.make(r.sub(a, c), r.sub(b, d))
    return r.emit(aten.linalg_vector_norm.default, pair_abs(r, difference), float(named.get("p", 2)))


def _function(fn) -> Rule:
    """Return the rule of an elementwise function of one complex operand given by its parts function."""
    return lambda r, node: r.make(*fn(r, *r.parts(node.args[0])))


def _pow_tensor(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """pow.Tensor_Tensor / pow.Scalar: z ** w = exp(w log z)."""
    (a, b), w = r.parts(node.args[0]), r.parts(node.args[1])
    if is_number(a) and is_number(b):
        base = complex(a, b)
        log = (math.log(abs(base)) if base else -math.inf, math.atan2(b, a))
    else:
        log = clog(r, a, b)
    return r.make(*cexp(r, *cmul(r, w, log)))


def _rsub(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """rsub.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor: other - alpha * self."""
    named = arguments(node)
    z = _times(r, r.parts(named["self"]), named.get("alpha", 1))
    c = r.parts(named["other"])
    return r.make(r.sub(c[0], z[0]), r.sub(c[1], z[1]))


def _product(op) -> Callable:
    """Return the complex form of a real bilinear product op(x, y) (mm, bmm, matmul, mv, linear)."""
    def product(r: PairWriter, x: Any, y: Any) -> tuple[Any, Any]:
        one = lambda u, v: 0.0 if is_number(u) or is_number(v) else r.emit(op, u, v)  # noqa: E731
        (a, b), (c, d) = r.parts(x), r.parts(y)
        return r.sub(one(a, c), one(b, d)), r.add(one(a, d), one(b, c))
    return product


def _matmul_rule(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """mm / bmm / matmul / mv (as matmul): (A+Bi)(C+Di) = (AC-BD) + (AD+BC)i."""
    op = aten.matmul.default if node.target is aten.mv.default else node.target
    return r.make(*_product(op)(r, *node.args[:2]))


def _linear(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """linear(Tensor input, Tensor weight, Tensor? bias=None) -> Tensor"""
    named = arguments(node)
    out = _product(aten.linear.default)(r, named["input"], named["weight"])
    if named.get("bias") is not None:
        out = add_pairs(r, out, r.parts(named["bias"]))
    return r.make(*out)


def _add_product(product_op) -> Rule:
    """addmm / addmv / baddbmm / addbmm: beta * self + alpha * product(x, y)."""
    def rule(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
        named = arguments(node)
        x, y = [named[k] for k in ("mat1", "mat2", "mat", "vec", "batch1", "batch2") if k in named]
        out = _product(product_op)(r, x, y)
        if product_op is aten.bmm.default and node.target is aten.addbmm.default:
            out = tuple(r.emit(aten.sum.dim_IntList, part, [0]) if isinstance(part, torch.fx.Node) else part
                        for part in out)
        out = _times(r, out, named.get("alpha", 1))
        beta = named.get("beta", 1)
        if beta != 0:
            out = add_pairs(r, out, _times(r, r.parts(named["self"]), beta))
        return r.make(*out)
    return rule


def _diagonal(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """diagonal(Tensor(a) self, int offset=0, int dim1=0, int dim2=1): the diagonal of the pairs (which
    puts the diagonal axis last), then the pair axis moved back last."""
    named = arguments(node)
    rank = r.rank(named["self"])
    diagonal = r.emit(aten.diagonal.default, r.pairs[named["self"]], named.get("offset", 0),
                      _dim(named.get("dim1", 0), rank), _dim(named.get("dim2", 1), rank))
    n = r.pval(diagonal).dim()
    return r.emit(aten.permute.default, diagonal, list(range(n - 2)) + [n - 1, n - 2])


def _getitem(r: PairWriter, node: torch.fx.Node) -> torch.fx.Node:
    """An item of a multi-output op's result: of the rewritten op's, or of the tuple a rule returned."""
    source, index = node.args
    result = r.pairs[source]
    return result[index] if isinstance(result, tuple) else r.emit(operator.getitem, result, index)


def _unary(fn: Callable[[PairWriter, torch.fx.Node], torch.fx.Node]) -> Rule:
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
    aten.sqrt.default: _function(csqrt),
    aten._conj.default: _conj, aten._conj_physical.default: _conj,
    aten.exp.default: _function(cexp),
    aten.log.default: _function(clog),
    aten.reciprocal.default: _function(lambda r, a, b: cdiv(r, (1.0, 0.0), (a, b))),
    aten.sgn.default: _sgn,
    aten.abs.default: _unary(pair_abs),
    aten.angle.default: _unary(pair_angle),
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
        (aten.sin.default, trig("sin")), (aten.cos.default, trig("cos")), (aten.tan.default, trig("tan")),
        (aten.sinh.default, trig("sinh")), (aten.cosh.default, trig("cosh")), (aten.tanh.default, trig("tanh")),
        (aten.asinh.default, asinh), (aten.acosh.default, acosh), (aten.atanh.default, atanh),
        (aten.asin.default, times_i(asinh)), (aten.atan.default, times_i(atanh)), (aten.acos.default, acos),
        (aten.log1p.default, log1p), (aten.expm1.default, expm1), (aten.exp2.default, exp2),
        (aten.log2.default, scaled_log(2)), (aten.log10.default, scaled_log(10)),
        (aten.sigmoid.default, sigmoid), (aten.silu.default, silu), (aten.rsqrt.default, rsqrt))},
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
