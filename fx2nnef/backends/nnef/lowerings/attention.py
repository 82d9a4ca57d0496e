"""Attention lowerings: scaled dot-product attention as matmul / softmax / matmul, or as tract's
fused operator (`TractNNEF(fused_attention=True)`, and always for grouped-query attention and for
a single query row).

tract 0.23.9 runs its fused sdpa 1.4-1.9x slower than the plain ops on CPU for query lengths of 4
to 1024, and 0.9x for one query row (a decoding step) (benchmarks/bench_attention.py)."""
from __future__ import annotations

import math

import numpy as np

from ..registry import lower
from .common import literal


@lower("aten::scaled_dot_product_attention")
def aten_scaled_dot_product_attention(b, query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                      scale=None, enable_gqa=False):
    """scaled_dot_product_attention(Tensor query, Tensor key, Tensor value, Tensor? attn_mask=None, float dropout_p=0.0, bool is_causal=False, *, float? scale=None, bool enable_gqa=False) -> Tensor"""
    if b.khronos:
        if query.shape[:-2] != key.shape[:-2]:
            raise b.not_standard("grouped-query attention (fewer key/value heads) has no standard form here")
        return _matmul_softmax(b, query, key, value, attn_mask, is_causal, scale)
    plain = query.shape[:-2] == key.shape[:-2] and isinstance(query.shape[-1], int)
    fusable = query.rank in (3, 4) and query.shape[-1] != 0  # what tract's fused operator takes
    if plain and (not fusable or query.shape[-2] != 1 and not b.fused_attention):
        return _matmul_softmax(b, query, key, value, attn_mask, is_causal, scale)
    if not b.supports("tract_transformers_sdpa") and isinstance(query.shape[-1], int):
        key, value = _repeat_heads(b, key, query), _repeat_heads(b, value, query)
        return _matmul_softmax(b, query, key, value, attn_mask, is_causal, scale)
    return _tract_sdpa(b, query, key, value, attn_mask, is_causal, scale)


def _repeat_heads(b, x, query):
    """Return key or value `x` with each of its heads repeated to the query's head count (grouped-
    query attention written out, for tract releases without the fused operator)."""
    heads, groups = query.shape[-3] if query.rank > 2 else 1, x.shape[-3] if x.rank > 2 else 1
    if heads == groups:
        return x
    if not (isinstance(heads, int) and isinstance(groups, int)):
        raise NotImplementedError("grouped-query attention with a symbolic head count needs tract's fused "
                                  "attention (tract >= 0.22.0)")
    axis = x.rank - 3
    tiled = b.op("tile", b.op("unsqueeze", x, axes=[axis + 1]),
                 repeats=[1] * (axis + 1) + [heads // groups, 1, 1])
    shape = list(x.shape[:axis]) + [heads] + list(x.shape[axis + 1:])
    return b.op("reshape", tiled, shape=shape, out_shape=tuple(shape))


def _tract_sdpa(b, query, key, value, attn_mask, is_causal: bool, scale):
    """Emit tract's fused tract_transformers_sdpa (any shapes, grouped-query attention)."""
    b.require("tract_core")
    b.require("tract_transformers")
    if query.rank not in (3, 4):
        raise NotImplementedError(f"tract's sdpa takes rank 3 or 4 inputs, got rank {query.rank}")
    dtype = b.out_dtype
    rows, cols = query.shape[-2], key.shape[-2]
    if is_causal and rows != cols:  # tract aligns a causal mask bottom-right, torch top-left
        attn_mask, is_causal = _causal_mask(b, rows, cols), False
    attribs = {"datum_type": dtype, "acc_datum_type": "f32", "is_causal": bool(is_causal)}
    if scale is not None:
        attribs["scale"] = float(scale)
    allowed = attn_mask if attn_mask is not None and attn_mask.dtype == "bool" else None
    if allowed is not None:  # tract takes an additive float mask
        attn_mask = b.op("select", allowed, b.const(0.0, dtype, "zero"), b.const(float("-inf"), dtype, "neg_inf"))
    if attn_mask is not None:
        attribs["mask"] = b.cast(attn_mask, dtype)
    return _zero_where_nothing_is_allowed(b, b.op("tract_transformers_sdpa", query, key, value, **attribs), allowed)


def _zero_where_nothing_is_allowed(b, out, allowed):
    """Return the attention output with zeros for the queries whose bool mask allows no key, as torch
    gives (a softmax over only -inf is NaN; a left-padded batch has such rows at its padding)."""
    if allowed is None:
        return out
    anything = b.op("gt", b.op("max_reduce", b.cast(allowed, "f32"), axes=[allowed.rank - 1]), 0.0)
    return b.op("select", anything, out, b.const(0.0, out.dtype, "zero"))


def _causal_mask(b, rows, cols):
    """Return the bool mask [rows, cols] that is true where key j <= query i (torch's is_causal):
    a constant for static sizes, else computed from ranges (tract only)."""
    if isinstance(rows, int) and isinstance(cols, int):
        return b.const(np.tril(np.ones((rows, cols), dtype=bool)), "bool", "causal_mask")
    b.require("tract_core")
    query_index = b.op("tract_core_range", 0, rows, 1, out_dtype="i64", out_shape=(rows,))
    key_index = b.op("tract_core_range", 0, cols, 1, out_dtype="i64", out_shape=(cols,))
    return b.op("le", b.op("unsqueeze", key_index, axes=[0]), b.op("unsqueeze", query_index, axes=[1]))


def _matmul_softmax(b, query, key, value, attn_mask, is_causal: bool, scale):
    """Emit softmax((q * √scale) @ (k * √scale)^T + mask) @ v with standard NNEF ops (q, k, v with
    equal heads), scaled as torch's math attention does. Scaling q and k rather than the scores
    also keeps tract from splitting q @ k^T in two where q and k are concatenations (partial
    rotary embeddings: GPT-NeoX ran 2 % slower than its ONNX path that way)."""
    if scale is None:  # an empty head (size 0) scores 0 whatever the scale: torch averages the values
        scale = 1 / math.sqrt(query.shape[-1]) if query.shape[-1] else 1.0
    root = literal(math.sqrt(scale))
    scores = b.op("matmul", b.op("mul", query, root), b.op("mul", key, root), transposeB=True)
    if is_causal:
        attn_mask = _causal_mask(b, query.shape[-2], key.shape[-2])
    allowed = attn_mask if attn_mask is not None and attn_mask.dtype == "bool" else None
    if allowed is not None:
        scores = b.op("select", allowed, scores, b.const(float("-inf"), scores.dtype, "neg_inf"))
    elif attn_mask is not None:
        scores = b.op("add", scores, b.cast(attn_mask, scores.dtype))
    weights = b.op("softmax", scores, axes=[scores.rank - 1])
    return _zero_where_nothing_is_allowed(b, b.op("matmul", weights, value), allowed)
