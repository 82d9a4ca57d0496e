"""The declarative table of OpInfo entries the default test run checks, and per-op sweep settings.

Each key is an OpInfo full name (`name` or `name.variant_test_name` from op_db). `lowering` names the
ATen op whose lowering the entry exercises; `tolerance` maps a dtype to (atol, rtol) where the default
abs 1e-4 + rel 1e-4 is too tight (with the reason in `notes`); `xfail`/`skip` give the reason an entry is
expected to fail (prefer xfail: it shows when the op starts passing); `dtypes` are the dtypes the
default run checks (the full sweep in benchmarks/opinfo_coverage.py runs float32 on every op_db entry).
`statistical` marks an op that samples random numbers and says what is compared: tract's generator is
not PyTorch's, so the harness compares the distribution of many draws (opinfo_harness._run_statistical:
mean and variance within 5 standard errors of 4x as many PyTorch draws, values within PyTorch's range,
or among its values when it drew at most 64 distinct ones, NaN/inf fractions alike); every other entry
is compared value by value at its tolerance.
`processed` compares the outputs through each sample's output_process_fn_grad, OpInfo's own
normalization of outputs defined only up to sign (|eigenvectors|, |singular vectors|, U @ Vh).
Importing this module checks every key against op_db, so a renamed OpInfo fails loudly.
"""
from __future__ import annotations

import dataclasses

import torch

F32, I64, BOOL = torch.float32, torch.int64, torch.bool


@dataclasses.dataclass(frozen=True)
class Spec:
    """How the default run checks one OpInfo entry."""

    lowering: str
    dtypes: tuple[torch.dtype, ...] = (F32,)
    tolerance: dict = dataclasses.field(default_factory=dict)
    xfail: str | None = None
    skip: str | None = None
    notes: str = ""
    statistical: str | None = None
    processed: bool = False


def _ints(lowering: str, **kw) -> Spec:
    """An entry checked in float32, int64 and bool (where the op supports them)."""
    return Spec(lowering, (F32, I64, BOOL), **kw)


TABLE: dict[str, Spec] = {
    # element-wise maths and comparisons
    "abs": Spec("aten::abs", (F32, I64)),
    "neg": Spec("aten::neg"),
    "exp": Spec("aten::exp"),
    "log": Spec("aten::log"),
    "log2": Spec("aten::log2"),
    "sqrt": Spec("aten::sqrt"),
    "rsqrt": Spec("aten::rsqrt"),
    "sin": Spec("aten::sin"),
    "atan2": Spec("aten::atan2"),
    "sigmoid": Spec("aten::sigmoid"),
    "tanh": Spec("aten::tanh"),
    "erf": Spec("aten::erf"),
    "trunc": Spec("aten::trunc"),
    "round": Spec("aten::round"),
    "add": _ints("aten::add.Tensor"),
    "sub": Spec("aten::sub.Tensor"),
    "mul": Spec("aten::mul.Tensor", (F32, BOOL)),
    "div.no_rounding_mode": Spec("aten::div.Tensor"),
    "div.floor_rounding": Spec("aten::div.Tensor_mode", (F32, I64)),
    "remainder": Spec("aten::remainder.Tensor", (F32, I64)),
    "fmod": Spec("aten::fmod.Tensor", (F32, I64)),
    "pow": Spec("aten::pow.Tensor_Tensor"),
    "maximum": Spec("aten::maximum", (F32, BOOL)),
    "clamp": Spec("aten::clamp"),
    "eq": _ints("aten::eq.Tensor"),
    "lt": Spec("aten::lt.Tensor", (F32, BOOL)),
    "logical_and": _ints("aten::logical_and"),
    "logical_xor": _ints("aten::logical_xor"),
    "bitwise_xor": Spec("aten::bitwise_xor.Tensor", (I64, BOOL)),
    "where": _ints("aten::where.self"),
    "isinf": Spec("aten::isinf"),
    "nn.functional.gelu": Spec("aten::gelu"),
    "nn.functional.silu": Spec("aten::silu"),
    "nn.functional.elu": Spec("aten::elu"),
    "nn.functional.hardswish": Spec("aten::hardswish"),
    "nn.functional.softplus": Spec("aten::softplus"),
    "nn.functional.mish": Spec("aten::mish"),
    # special functions (lowerings/special.py) and medians
    "erfinv": Spec("aten::erfinv"),
    "special.erfcx": Spec("aten::special_erfcx"),
    "lgamma": Spec("aten::lgamma"),
    "digamma": Spec("aten::digamma"),
    "special.modified_bessel_k1": Spec("aten::special_modified_bessel_k1"),
    "median": Spec("aten::median"),
    # reductions
    "sum": Spec("aten::sum.dim_IntList", (F32, I64)),
    "mean": Spec("aten::mean.dim"),
    "prod": Spec("aten::prod.dim_int"),
    "amax": Spec("aten::amax"),
    "argmax": Spec("aten::argmax", (F32, I64)),
    "var": Spec("aten::var.correction"),
    "std": Spec("aten::std.correction"),
    "logsumexp": Spec("aten::logsumexp"),
    "cumsum": Spec("aten::cumsum"),
    "cummax": _ints("aten::cummax"),
    "any": Spec("aten::any.dims", (F32, BOOL)),
    "max.reduction_with_dim": Spec("aten::max.dim"),
    "linalg.vector_norm": Spec("aten::linalg_vector_norm"),
    # indexing
    "gather": Spec("aten::gather"),
    "index_select": Spec("aten::index_select", (F32, I64)),
    "take_along_dim": Spec("aten::gather"),
    "scatter": Spec("aten::scatter.src"),
    "scatter_add": Spec("aten::scatter_add"),
    "scatter_reduce.mean": Spec("aten::scatter_reduce.two", (F32, I64)),
    "searchsorted": Spec("aten::searchsorted.Tensor"),
    "index_put": Spec("aten::index_put"),
    "masked_fill": Spec("aten::masked_fill.Scalar"),
    "narrow": Spec("aten::slice.Tensor"),
    "select": Spec("aten::select.int"),
    "topk": Spec("aten::topk"),
    # shape
    "flip": Spec("aten::flip", (F32, BOOL)),
    "roll": Spec("aten::roll"),
    "repeat": Spec("aten::repeat"),
    "tril": Spec("aten::tril"),
    "split": Spec("aten::split_with_sizes"),
    "chunk": Spec("aten::split_with_sizes"),
    "stack": Spec("aten::stack"),
    "cat": _ints("aten::cat"),
    "permute": Spec("aten::permute"),
    "diagonal": Spec("aten::diagonal"),
    "nn.functional.pad.constant": Spec("aten::constant_pad_nd"),
    "nn.functional.pad.reflect": Spec("aten::reflection_pad2d"),
    "nn.functional.pad.replicate": Spec("aten::replication_pad2d"),
    # nn
    "nn.functional.conv2d": Spec("aten::convolution", tolerance={F32: (1e-4, 1e-3)},
                                 notes="accumulation order differs from oneDNN's"),
    "nn.functional.linear": Spec("aten::linear"),
    "nn.functional.layer_norm": Spec("aten::layer_norm"),
    "nn.functional.rms_norm": Spec("aten::rms_norm"),
    "nn.functional.group_norm": Spec("aten::native_group_norm"),
    "softmax": Spec("aten::_softmax"),
    "log_softmax": Spec("aten::_log_softmax"),
    "nn.functional.embedding": Spec("aten::embedding"),
    "nn.functional.embedding_bag": Spec("aten::_embedding_bag_forward_only"),
    "nn.functional.max_pool2d": Spec("aten::max_pool2d_with_indices"),
    "nn.functional.adaptive_max_pool2d": Spec("aten::adaptive_max_pool2d"),
    "nn.functional.interpolate.nearest": Spec("aten::upsample_nearest2d.vec"),
    # distances, order statistics, antialiased resize, orthogonal polynomials
    "cdist": Spec("aten::_cdist_forward"),
    "mode": _ints("aten::mode"),
    "_upsample_bilinear2d_aa": Spec("aten::_upsample_bilinear2d_aa"),
    "special.chebyshev_polynomial_u": Spec("aten::special_chebyshev_polynomial_u"),
    "special.hermite_polynomial_h": Spec("aten::special_hermite_polynomial_h"),
    # matmul family
    "matmul": Spec("aten::matmul"),
    "bmm": Spec("aten::bmm"),
    "baddbmm": Spec("aten::baddbmm"),
    "addmm": Spec("aten::addmm"),
    "einsum": Spec("aten::bmm"),
    # creation
    "full_like": Spec("aten::full_like"),
    "zeros_like": Spec("aten::zeros_like"),
    "arange": Spec("aten::arange.start_step"),
    # -- issue 18, indexing and data-dependent sizes (lowerings/advanced_indexing.py, data_sized.py) --
    "nonzero": _ints("aten::nonzero"),
    "argwhere": Spec("aten::nonzero", (F32, I64, BOOL)),
    "masked_select": Spec("aten::masked_select", (F32, I64)),
    "unique": Spec("aten::_unique2", (F32, I64)),
    "unique_consecutive": Spec("aten::unique_consecutive", (F32, I64)),
    "tensor_split": Spec("aten::_local_scalar_dense"),
    "combinations": Spec("aten::masked_select"),
    "bincount": Spec("aten::bincount", (I64,)),
    "repeat_interleave": Spec("aten::repeat_interleave.Tensor", (F32, I64)),
    "__getitem__": Spec("aten::index.Tensor", (F32, I64)),
    "_unsafe_masked_index_put_accumulate": Spec("aten::index_put"),
    "special.laguerre_polynomial_l": Spec("aten::special_laguerre_polynomial_l",
                                          notes="run-time degrees: a tract_core_scan over a data-sized range"),
    "special.legendre_polynomial_p": Spec("aten::special_legendre_polynomial_p",
                                          notes="run-time degrees: a tract_core_scan over a data-sized range"),
    # -- issue 18, random sampling (lowerings/random.py): compared by distribution, see `statistical` --
    "rand_like": Spec("aten::randn_like", statistical="N(0, 1) (OpInfo's rand_like calls randn_like): moments, range"),
    "randn": Spec("aten::randn", statistical="N(0, 1): mean, variance, range"),
    "randn_like": Spec("aten::randn_like", statistical="N(0, 1): mean, variance, range"),
    "randint": Spec("aten::randint", (F32, I64), statistical="uniform integers in [low, high): the set of values, "
                                                              "mean, variance"),
    "randint_like": Spec("aten::randint_like", (F32, I64), statistical="uniform integers in [0, high): the set of "
                                                                        "values, mean, variance"),
    "bernoulli": Spec("aten::bernoulli", statistical="0/1 with the input's probabilities: the set {0, 1} and the "
                                                     "mean (= mean probability)"),
    "multinomial": Spec("aten::multinomial", statistical="category indices (Gumbel keys): the set of indices, their "
                                                         "mean and variance"),
    "normal": Spec("aten::normal.Tensor_Tensor", statistical="N(mean, std) per element: pooled mean, variance, "
                                                             "range"),
    "normal.number_mean": Spec("aten::normal.float_float", statistical="N(mean, std): mean, variance, range"),
    "nn.functional.dropout": Spec("aten::native_dropout", statistical="kept values scaled by 1/(1-p), zeros "
                                                                      "elsewhere: mean, variance, range"),
    "nn.functional.rrelu": Spec("aten::rrelu_with_noise_functional",
                                statistical="x where x > 0, x * U[lower, upper) elsewhere: mean, variance, range"),
    "nn.functional.fractional_max_pool2d": Spec("aten::fractional_max_pool2d",
                                                statistical="maxima over randomly placed windows: mean, variance, "
                                                            "range (test_random.py checks given samples exactly)"),
    "nn.functional.fractional_max_pool3d": Spec("aten::fractional_max_pool3d",
                                                statistical="maxima over randomly placed windows: mean, variance, "
                                                            "range"),
    **{name: Spec(f"aten::{op}", xfail=f"writes into its input in place (x.{name.split('.')[0]}_()): an NNEF graph cannot "
                                       "mutate its inputs; the functional op is lowered (test_random.py)",
                  statistical="not reached") for name, op in (
        ("uniform", "uniform"), ("exponential", "exponential"), ("cauchy", "cauchy"), ("geometric", "geometric"),
        ("log_normal", "log_normal"), ("normal.in_place", "normal_functional"))},
}

# -- linear algebra on static matrices (lowerings/linalg.py, householder.py, jacobi.py): LU, Cholesky,
# triangular solves, Householder QR, cyclic Jacobi
_SIGN = "eigen/singular vectors are defined up to sign: compared as OpInfo does, through output_process_fn_grad"
TABLE.update({
    "linalg.det": Spec("aten::_linalg_det"),
    "linalg.slogdet": Spec("aten::_linalg_slogdet"),
    "logdet": Spec("aten::_linalg_slogdet"),
    "linalg.inv": Spec("aten::linalg_inv_ex"),
    "linalg.inv_ex": Spec("aten::linalg_inv_ex"),
    "linalg.solve": Spec("aten::_linalg_solve_ex"),
    "linalg.solve_ex": Spec("aten::_linalg_solve_ex"),
    "linalg.tensorinv": Spec("aten::linalg_inv_ex"),
    "linalg.tensorsolve": Spec("aten::_linalg_solve_ex"),
    "linalg.matrix_power": Spec("aten::linalg_inv_ex"),
    "linalg.lu_factor": Spec("aten::linalg_lu_factor_ex"),
    "linalg.lu_factor_ex": Spec("aten::linalg_lu_factor_ex"),
    "lu": Spec("aten::linalg_lu_factor_ex"),
    "linalg.lu": Spec("aten::linalg_lu"),
    "linalg.lu_solve": Spec("aten::linalg_lu_solve"),
    "lu_solve": Spec("aten::linalg_lu_solve"),
    "lu_unpack": Spec("aten::lu_unpack"),
    "linalg.cholesky": Spec("aten::linalg_cholesky_ex"),
    "linalg.cholesky_ex": Spec("aten::linalg_cholesky_ex"),
    "cholesky": Spec("aten::cholesky"),
    "cholesky_solve": Spec("aten::cholesky_solve"),
    "cholesky_inverse": Spec("aten::cholesky_inverse"),
    "linalg.solve_triangular": Spec("aten::linalg_solve_triangular"),
    "triangular_solve": Spec("aten::triangular_solve"),
    "matrix_exp": Spec("aten::linalg_matrix_exp"),
    "geqrf": Spec("aten::geqrf"),
    "qr": Spec("aten::linalg_qr"),
    "linalg.qr": Spec("aten::linalg_qr"),
    "linalg.householder_product": Spec("aten::linalg_householder_product"),
    "ormqr": Spec("aten::ormqr"),
    "linalg.eigh": Spec("aten::_linalg_eigh", processed=True, notes=_SIGN),
    "linalg.eigvalsh": Spec("aten::_linalg_eigh"),
    "linalg.svd": Spec("aten::_linalg_svd", processed=True, notes=_SIGN),
    "svd": Spec("aten::_linalg_svd", processed=True, notes=_SIGN),
    "linalg.svdvals": Spec("aten::_linalg_svd"),
    "linalg.matrix_rank": Spec("aten::_linalg_svd"),
    "linalg.matrix_rank.hermitian": Spec("aten::_linalg_eigh"),
    "linalg.pinv": Spec("aten::linalg_pinv.atol_rtol_tensor"),
    "linalg.pinv.singular": Spec("aten::linalg_pinv.atol_rtol_tensor"),
    "linalg.pinv.hermitian": Spec("aten::linalg_pinv.atol_rtol_tensor"),
    "pinverse": Spec("aten::linalg_pinv.atol_rtol_tensor"),
    "linalg.cond": Spec("aten::_linalg_svd"),
    "linalg.matrix_norm": Spec("aten::_linalg_svd"),
    "linalg.norm": Spec("aten::_linalg_svd"),
    "norm.nuc": Spec("aten::_linalg_svd"),
})


# -- complex values and Fourier transforms (issue #14: passes/legalize_complex.py writes complex values as
# real (re, im) pairs and FFTs as fx2nnef::fft / fx2nnef::stft). float32 entries take real inputs (rfft, stft,
# complex(), polar) or cast them to complex (fft); complex64 entries feed complex inputs, which the archive
# takes, like complex outputs, as real pairs on a trailing axis of 2.
C64 = torch.complex64
COMPLEX: dict[str, Spec] = {
    "fft.fft": Spec("fx2nnef::fft"),
    "fft.rfft": Spec("fx2nnef::fft"),
    "fft.irfft": Spec("fx2nnef::fft", (F32, C64)),
    "fft.hfft": Spec("fx2nnef::fft"),
    "fft.ihfft2": Spec("fx2nnef::fft"),
    "fft.fftn": Spec("fx2nnef::fft", (C64,)),
    "fft.ifft": Spec("fx2nnef::fft", (C64,)),
    "stft": Spec("fx2nnef::stft"),
    "view_as_complex": Spec("aten::view_as_complex"),
    "complex": Spec("aten::complex"),
    "polar": Spec("aten::polar"),
    "cfloat": Spec("aten::_to_copy"),
    "view_as_real": Spec("aten::view_as_real", (C64,)),
    "mul": Spec("aten::mul.Tensor", (C64,)),
    "div.no_rounding_mode": Spec("aten::div.Tensor", (C64,)),
    "abs": Spec("aten::abs", (C64,)),
    "angle": Spec("aten::angle", (C64,)),
    "exp": Spec("aten::exp", (C64,)),
    "log": Spec("aten::log", (C64,)),
    "tanh": Spec("aten::tanh", (C64,)),
    "asinh": Spec("aten::asinh", (C64,)),
    "matmul": Spec("aten::matmul", (C64,)),
    "sum": Spec("aten::sum.dim_IntList", (C64,)),
    "var": Spec("aten::var.correction", (C64,)),
    "cat": Spec("aten::cat", (C64,)),
    "permute": Spec("aten::permute", (C64,)),
}
TABLE.update({name: dataclasses.replace(spec, dtypes=TABLE[name].dtypes + spec.dtypes) if name in TABLE else spec
              for name, spec in COMPLEX.items()})


# -- more dtypes (issue #6): every float32 entry also runs in float16, every int64 entry in int32 and
# uint8 (a dtype an op does not support is skipped). The default run checks them on DEFAULT_EXTENDED;
# the slow run (-m slow) on every entry.
F16, I32, U8 = torch.float16, torch.int32, torch.uint8
EXTENDED = (F16, I32, U8)
HALF_TOLERANCE = (1e-2, 1e-2)   # OpInfo samples reach |x| ~ 10: one f16 ulp there is ~1e-2
DEFAULT_EXTENDED = {"add", "mul", "exp", "sigmoid", "where", "sum", "cat", "softmax", "nn.functional.layer_norm",
                    "nn.functional.linear", "nn.functional.conv2d", "remainder", "index_select"}
DTYPE_XFAIL = {
    ("linalg.vector_norm", F16): "tract sums the squares in f16 and overflows to inf where PyTorch accumulates "
                                 "in f32",
    ("matrix_exp", F16): "PyTorch's own f16 matrix_exp overflows to nan on the first sample (|x| up to 8.5); "
                         "fx2nnef gives 2462 where the f64 result is 2454",
}


def _extended(spec: Spec) -> Spec:
    """Return the entry with f16 added next to f32 and int32/uint8 next to int64."""
    extra = ((F16,) if F32 in spec.dtypes else ()) + ((I32, U8) if I64 in spec.dtypes else ())
    return dataclasses.replace(spec, dtypes=spec.dtypes + extra, tolerance={F16: HALF_TOLERANCE, **spec.tolerance})


TABLE = {name: _extended(spec) for name, spec in TABLE.items()}


def _check_names() -> None:
    """Raise if a table key is not an OpInfo full name in op_db, or a lowering names no known op."""
    from fx2nnef.backends.nnef.registry import LoweringRegistry
    from fx2nnef.backends.nnef.unsupported import NOT_EXPRESSIBLE
    from fx2nnef.passes.legalize_complex import RULES
    from opinfo_harness import op_db
    unknown = sorted(set(TABLE) - set(op_db()))
    if unknown:
        raise ValueError(f"opinfo_table names not in op_db: {', '.join(unknown)}")
    registry = LoweringRegistry.from_default()
    legalized = {op.name() for op in RULES if isinstance(op, torch._ops.OpOverload)}
    strays = sorted(f"{name} -> {spec.lowering}" for name, spec in TABLE.items()
                    if spec.lowering not in registry and spec.lowering not in NOT_EXPRESSIBLE
                    and spec.lowering not in legalized)
    if strays:
        raise ValueError("opinfo_table lowerings that are neither registered, legalized nor not-expressible: "
                         f"{', '.join(strays)}")


_check_names()
