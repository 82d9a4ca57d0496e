"""Attention lowerings: scaled dot-product attention as tract's fused operator."""
from __future__ import annotations

from ..registry import lower


@lower("aten::scaled_dot_product_attention", registries=("tract_core", "tract_transformers"))
def aten_scaled_dot_product_attention(b, query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                      scale=None, enable_gqa=False):
    """scaled_dot_product_attention(Tensor query, Tensor key, Tensor value, Tensor? attn_mask=None, float dropout_p=0.0, bool is_causal=False, *, float? scale=None, bool enable_gqa=False) -> Tensor"""
    if query.rank not in (3, 4):
        raise NotImplementedError(f"tract's sdpa takes rank 3 or 4 inputs, got rank {query.rank}")
    dtype = b.out_dtype
    attribs = {"datum_type": dtype, "acc_datum_type": "f32", "is_causal": bool(is_causal)}
    if scale is not None:
        attribs["scale"] = float(scale)
    if attn_mask is not None:
        if attn_mask.dtype == "bool":  # tract takes an additive float mask
            attn_mask = b.op("select", attn_mask, b.const(0.0, dtype, "zero"), b.const(float("-inf"), dtype, "neg_inf"))
        attribs["mask"] = b.cast(attn_mask, dtype)
    return b.op("tract_transformers_sdpa", query, key, value, **attribs)
