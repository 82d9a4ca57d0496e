"""ATen ops that NNEF + tract cannot express, with the reason an export that meets them fails."""
from __future__ import annotations

REJECTION = ("random sampling by rejection, a loop that runs until a draw is accepted: tract's loop "
             "(tract_core_scan) runs a number of steps known when it starts")
LINALG = "linear-algebra factorization/solver: no NNEF or tract operator (iterative, pivoting)"
SPARSE = "sparse tensors have no NNEF representation"
TRAINING = "gradient (backward) op: fx2nnef exports inference graphs"
STRIDES = "reads or writes raw memory strides, which NNEF tensors do not have"

NOT_EXPRESSIBLE: dict[str, str] = {
    **{f"aten::{op}": REJECTION for op in ("poisson", "_standard_gamma", "binomial")},
    **{f"aten::{op}": LINALG for op in (
        "linalg_cholesky_ex", "cholesky", "cholesky_inverse", "cholesky_solve", "linalg_lu_factor_ex",
        "linalg_lu", "linalg_lu_solve", "lu_unpack", "linalg_qr", "geqrf", "ormqr", "linalg_householder_product",
        "linalg_eigh", "_linalg_eigh", "linalg_eig", "_linalg_svd", "linalg_svd", "linalg_solve_triangular",
        "_linalg_solve_ex", "linalg_inv_ex", "_linalg_det", "_linalg_slogdet", "linalg_ldl_factor_ex",
        "linalg_ldl_solve", "linalg_matrix_exp", "triangular_solve", "linalg_pinv", "_linalg_check_errors",
        "linalg_lstsq", "linalg_eigvals", "_linalg_eigvals", "logdet", "linalg_eigvalsh")},
    **{f"aten::{op}": SPARSE for op in ("sparse_sampled_addmm", "_sparse_mm_reduce_impl", "to_sparse")},
    **{f"aten::{op}": TRAINING for op in (
        "_adaptive_avg_pool2d_backward", "avg_pool2d_backward", "convolution_backward", "embedding_dense_backward",
        "max_pool2d_with_indices_backward", "native_group_norm_backward", "native_layer_norm_backward")},
    "aten::sym_storage_offset": STRIDES,
    "aten::atan2.out": "out= variant: torch.export functionalizes it to aten::atan2, which is lowered",
    "aten::linalg_pinv.atol_rtol_tensor": LINALG,
    "aten::_to_sparse": SPARSE,
    "aten::hash_tensor": "bit-level hashing: tract has no bitcast",
    "aten::resize": "resizes storage in place: NNEF tensors have no storage",
}


def reason(op: str) -> str | None:
    """Return why `op` cannot be expressed in NNEF + tract, or None if it is not known to be impossible."""
    return NOT_EXPRESSIBLE.get(op)
