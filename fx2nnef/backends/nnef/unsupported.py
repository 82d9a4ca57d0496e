"""ATen ops that NNEF + tract cannot express, with the reason an export that meets them fails."""
from __future__ import annotations

REJECTION = ("random sampling by rejection, a loop that runs until a draw is accepted: tract's loop "
             "(tract_core_scan) runs a number of steps known when it starts")
SPARSE = "sparse tensors have no NNEF representation"
TRAINING = "gradient (backward) op: fx2nnef exports inference graphs"
STRIDES = "reads or writes raw memory strides, which NNEF tensors do not have"

NOT_EXPRESSIBLE: dict[str, str] = {
    **{f"aten::{op}": REJECTION for op in ("poisson", "_standard_gamma", "binomial")},
    **{f"aten::{op}": SPARSE for op in ("sparse_sampled_addmm", "_sparse_mm_reduce_impl", "to_sparse")},
    **{f"aten::{op}": TRAINING for op in (
        "_adaptive_avg_pool2d_backward", "avg_pool2d_backward", "convolution_backward", "embedding_dense_backward",
        "max_pool2d_with_indices_backward", "native_group_norm_backward", "native_layer_norm_backward")},
    "aten::sym_storage_offset": STRIDES,
    "aten::atan2.out": "out= variant: torch.export functionalizes it to aten::atan2, which is lowered",
    "aten::_to_sparse": SPARSE,
    "aten::hash_tensor": "bit-level hashing: tract has no bitcast",
    "aten::resize": "resizes storage in place: NNEF tensors have no storage",
}


def reason(op: str) -> str | None:
    """Return why `op` cannot be expressed in NNEF + tract, or None if it is not known to be impossible."""
    return NOT_EXPRESSIBLE.get(op)
