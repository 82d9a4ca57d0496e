"""Random sampling, from tract's seeded generator `tract_onnx_random` (uniform or normal floats).

Every other distribution is a transform of uniform draws: inversion (exponential, Cauchy, geometric),
thresholds (Bernoulli, dropout), floors (randint), Gumbel keys (multinomial, randperm). The values
follow PyTorch's distributions, not its stream: tract's generator is another one. Each random operator
gets its own seed (`b.seed()`: the target's random_seed plus a counter), so an archive draws the same
values on every run unless the target asks for system seeding.
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import lower
from .common import literal

TINY = 1e-30  # keeps the logarithms of uniform draws finite


def uniform(b, shape, low: float = 0.0, high: float = 1.0, dtype: str = "f32"):
    """Return draws of U[low, high) of `shape` (f32 or f64: tract samples f16 wrongly, so cast after)."""
    return _sample(b, "uniform", shape, low, high, dtype)


def normal(b, shape, mean: float = 0.0, std: float = 1.0, dtype: str = "f32"):
    """Return draws of N(mean, std^2) of `shape`."""
    return _sample(b, "normal", shape, mean, std, dtype)


def _sample(b, dist: str, shape, first: float, second: float, dtype: str):
    """Emit tract_onnx_random with the next seed; draws f64 for f64, f32 for every other dtype."""
    b.require("tract_onnx")
    seed = b.seed()
    extra = {} if seed is None else {"seed": seed}
    dtype = "f64" if dtype == "f64" else "f32"
    return b.op("tract_onnx_random", datum_type=dtype, shape=list(shape), dist=dist,
                parameters=[float(first), float(second)], out_dtype=dtype, out_shape=tuple(shape), **extra)


def _work(b) -> str:
    """The float type to sample in for the node's output (f64 stays f64, the rest is drawn in f32)."""
    return "f64" if b.out_dtype == "f64" else "f32"


def _shape(b):
    """The node's output shape (ints or tract symbol expressions)."""
    return b.shape_of(b.out)


def _open_unit(b, shape, dtype: str = "f32"):
    """Return draws of the half-open (0, 1]: 1 - U[0, 1)."""
    return b.op("sub", 1.0, uniform(b, shape, dtype=dtype))


@lower(("aten::rand", "aten::rand.generator"))
def aten_rand(b, size, generator=None, dtype=None, layout=None, device=None, pin_memory=None):
    """rand(SymInt[] size, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor"""
    return b.cast(uniform(b, _shape(b), dtype=_work(b)), b.out_dtype)


@lower(("aten::randn", "aten::randn.generator"))
def aten_randn(b, size, generator=None, dtype=None, layout=None, device=None, pin_memory=None):
    """randn(SymInt[] size, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor"""
    return b.cast(normal(b, _shape(b), dtype=_work(b)), b.out_dtype)


@lower("aten::rand_like")
def aten_rand_like(b, self, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    """rand_like(Tensor self, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None, MemoryFormat? memory_format=None) -> Tensor"""
    return b.cast(uniform(b, _shape(b), dtype=_work(b)), b.out_dtype)


@lower("aten::randn_like")
def aten_randn_like(b, self, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    """randn_like(Tensor self, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None, MemoryFormat? memory_format=None) -> Tensor"""
    return b.cast(normal(b, _shape(b), dtype=_work(b)), b.out_dtype)


def _integers(b, low: int, high: int):
    """Return uniform integers in [low, high) of the node's shape and dtype: floor of U[low, high), in f64
    when the range is too wide for f32 to hold every integer."""
    work = "f64" if abs(low) > 2 ** 24 or abs(high) > 2 ** 24 else "f32"
    drawn = b.op("floor", uniform(b, _shape(b), float(low), float(high), work))
    return b.cast(b.op("min", drawn, literal(high - 1)), b.out_dtype)  # rounding may reach `high`


@lower(("aten::randint", "aten::randint.generator"))
def aten_randint(b, high, size, generator=None, dtype=None, layout=None, device=None, pin_memory=None):
    """randint(SymInt high, SymInt[] size, *, ScalarType? dtype=4, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor"""
    return _integers(b, 0, high)


@lower(("aten::randint.low", "aten::randint.low_generator"))
def aten_randint_low(b, low, high, size, generator=None, dtype=None, layout=None, device=None, pin_memory=None):
    """randint.low(SymInt low, SymInt high, SymInt[] size, *, ScalarType? dtype=4, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor"""
    return _integers(b, low, high)


@lower("aten::randint_like")
def aten_randint_like(b, self, high, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    """randint_like(Tensor self, SymInt high, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None, MemoryFormat? memory_format=None) -> Tensor"""
    return _integers(b, 0, high)


@lower("aten::randint_like.low_dtype")
def aten_randint_like_low_dtype(b, self, low, high, dtype=None, layout=None, device=None, pin_memory=None,
                                memory_format=None):
    """randint_like.low_dtype(Tensor self, SymInt low, SymInt high, *, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None, MemoryFormat? memory_format=None) -> Tensor"""
    return _integers(b, low, high)


@lower(("aten::bernoulli", "aten::bernoulli.Tensor", "aten::bernoulli.p"))
def aten_bernoulli(b, self, p=None, generator=None):
    """bernoulli(Tensor self, *, Generator? generator=None) -> Tensor

    1 where a U[0, 1) draw is below the probability (`self`, or `p` in the .p and .Tensor forms)."""
    probability = self if p is None else p
    if not hasattr(probability, "name"):
        probability = b.const(probability, _work(b), "p")
    draws = uniform(b, _shape(b), dtype=_work(b))
    return b.cast(b.op("lt", draws, b.cast(probability, draws.dtype)), b.out_dtype)


@lower("aten::multinomial")
def aten_multinomial(b, self, num_samples, replacement=False, generator=None):
    """multinomial(Tensor self, SymInt num_samples, bool replacement=False, *, Generator? generator=None) -> Tensor

    Gumbel keys log(p) - log(-log(U)): with replacement each sample is the argmax of its own keys,
    without it the samples are the top num_samples keys of one draw (both exact in distribution)."""
    rows = self if self.rank == 2 else b.op("unsqueeze", self, axes=[0])
    batch, n = rows.shape
    logp = b.op("log", b.cast(rows, "f32"))
    if replacement:
        keys = b.op("add", b.op("unsqueeze", logp, axes=[1]), _gumbel(b, (batch, num_samples, n)))
        picked = b.op("squeeze", b.op("argmax_reduce", keys, axes=[2]), axes=[2])
    else:
        b.require("tract_core")
        keys = b.op("add", logp, _gumbel(b, (batch, n)))
        _, picked = b.op("tract_core_topk", keys, b.const(num_samples, "i64", "k"), axis=1, largest=True, outputs=2)
        picked.dtype, picked.shape = "i64", (batch, num_samples)
    return picked if self.rank == 2 else b.op("squeeze", picked, axes=[0])


def _gumbel(b, shape):
    """Return standard Gumbel draws -log(-log(U)) of `shape`."""
    unit = b.op("max", uniform(b, shape), TINY)
    return b.op("neg", b.op("log", b.op("neg", b.op("log", unit))))


@lower("aten::randperm")
def aten_randperm(b, n, generator=None, dtype=None, layout=None, device=None, pin_memory=None):
    """randperm(SymInt n, *, ScalarType? dtype=4, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor

    The order of n uniform keys: a uniformly random permutation."""
    if n == 0:
        return b.const(np.zeros(0), b.out_dtype, "empty")
    b.require("tract_core")
    _, order = b.op("tract_core_topk", uniform(b, (n,)), b.const(n, "i64", "k"), axis=0, largest=True, outputs=2)
    order.dtype, order.shape = "i64", (n,)
    return b.cast(order, b.out_dtype)


def _normal_like(b, mean, std):
    """mean + std * N(0, 1) of the node's shape; mean and std are tensors or numbers."""
    work = _work(b)
    draws = normal(b, _shape(b), dtype=work)
    std = b.cast(std, work) if hasattr(std, "name") else literal(std)
    mean = b.cast(mean, work) if hasattr(mean, "name") else literal(mean)
    return b.cast(b.op("add", b.op("mul", draws, std), mean), b.out_dtype)


@lower("aten::normal.Tensor_Tensor")
def aten_normal_tensor_tensor(b, mean, std, generator=None):
    """normal.Tensor_Tensor(Tensor mean, Tensor std, *, Generator? generator=None) -> Tensor"""
    return _normal_like(b, mean, std)


@lower("aten::normal.Tensor_float")
def aten_normal_tensor_float(b, mean, std=1.0, generator=None):
    """normal.Tensor_float(Tensor mean, float std=1., *, Generator? generator=None) -> Tensor"""
    return _normal_like(b, mean, std)


@lower("aten::normal.float_Tensor")
def aten_normal_float_tensor(b, mean, std, generator=None):
    """normal.float_Tensor(float mean, Tensor std, *, Generator? generator=None) -> Tensor"""
    return _normal_like(b, mean, std)


@lower("aten::normal.float_float")
def aten_normal_float_float(b, mean, std, size, generator=None, dtype=None, layout=None, device=None,
                            pin_memory=None):
    """normal.float_float(float mean, float std, SymInt[] size, *, Generator? generator=None, ScalarType? dtype=None, Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor"""
    return b.cast(normal(b, _shape(b), mean, std, _work(b)), b.out_dtype)


@lower("aten::normal_functional")
def aten_normal_functional(b, self, mean=0.0, std=1.0, generator=None):
    """normal_functional(Tensor self, float mean=0., float std=1., *, Generator? generator=None) -> Tensor"""
    return b.cast(normal(b, _shape(b), mean, std, _work(b)), b.out_dtype)


@lower("aten::uniform")
def aten_uniform(b, self, from_=0.0, to=1.0, generator=None, **kwargs):
    """uniform(Tensor self, float from=0., float to=1., *, Generator? generator=None) -> Tensor"""
    low = kwargs.get("from", from_)
    return b.cast(uniform(b, _shape(b), low, to, _work(b)), b.out_dtype)


@lower("aten::exponential")
def aten_exponential(b, self, lambd=1.0, generator=None):
    """exponential(Tensor self, float lambd=1., *, Generator? generator=None) -> Tensor

    -log(1 - U) / lambd."""
    draws = b.op("neg", b.op("log", _open_unit(b, _shape(b), _work(b))))
    return b.cast(b.op("div", draws, literal(lambd)), b.out_dtype)


@lower("aten::cauchy")
def aten_cauchy(b, self, median=0.0, sigma=1.0, generator=None):
    """cauchy(Tensor self, float median=0., float sigma=1., *, Generator? generator=None) -> Tensor

    median + sigma tan(pi (U - 1/2))."""
    angle = b.op("mul", b.op("sub", uniform(b, _shape(b), dtype=_work(b)), 0.5), literal(math.pi))
    return b.cast(b.op("add", b.op("mul", b.op("tan", angle), literal(sigma)), literal(median)), b.out_dtype)


@lower("aten::geometric")
def aten_geometric(b, self, p, generator=None):
    """geometric(Tensor self, float p, *, Generator? generator=None) -> Tensor

    The number of Bernoulli(p) trials up to the first success: ceil(log(U) / log(1 - p)), U in (0, 1]."""
    trials = b.op("ceil", b.op("div", b.op("log", _open_unit(b, _shape(b), _work(b))), literal(math.log1p(-p))))
    return b.cast(b.op("max", trials, 1.0), b.out_dtype)


@lower("aten::log_normal")
def aten_log_normal(b, self, mean=1.0, std=2.0, generator=None):
    """log_normal(Tensor self, float mean=1., float std=2., *, Generator? generator=None) -> Tensor"""
    return b.cast(b.op("exp", normal(b, _shape(b), mean, std, _work(b))), b.out_dtype)


@lower("aten::native_dropout")
def aten_native_dropout(b, input, p, train):
    """native_dropout(Tensor input, float p, bool? train) -> (Tensor, Tensor)

    Training: each element is kept when a U[0, 1) draw is >= p, and scaled by 1 / (1 - p)."""
    shape = b.shape_of(b.out[0])
    if not train or p == 0.0:
        b.require("tract_core")
        return input, b.op("tract_core_broadcast", b.const(True, "bool", "keep"), shape=list(shape),
                           out_shape=shape)
    keep = b.op("ge", uniform(b, shape), literal(p))
    if p >= 1.0:
        return b.op("mul", input, 0.0), keep
    scaled = b.op("mul", input, literal(1.0 / (1.0 - p)))
    return b.op("select", keep, scaled, b.const(0, input.dtype, "zero")), keep


@lower("aten::rrelu_with_noise_functional")
def aten_rrelu_with_noise_functional(b, self, noise, lower=0.125, upper=1.0 / 3.0, training=False, generator=None):
    """rrelu_with_noise_functional(Tensor self, Tensor noise, Scalar lower=0.125, Scalar upper=0.33333333333333331, bool training=False, Generator? generator=None) -> (Tensor, Tensor noise_out)

    Training: x where x > 0, else x times a U[lower, upper) draw (the draw, or 1, is the noise output);
    evaluation: a leaky ReLU of slope (lower + upper) / 2, noise unchanged."""
    if not training:
        return b.op("leaky_relu", self, alpha=literal((lower + upper) / 2)), noise
    slope = b.cast(uniform(b, self.shape, float(lower), float(upper), self.dtype), self.dtype)
    negative = b.op("le", self, 0.0)
    return (b.op("select", negative, b.op("mul", self, slope), self),
            b.cast(b.op("select", negative, slope, b.const(1, self.dtype, "one")), noise.dtype))


def _fractional_starts(b, samples, input_size: int, output_size: int, pool: int):
    """Return PyTorch's window starts [N, C, output_size] (i64) for per-plane samples u [N, C]:
    int((i + u) alpha) - int(u alpha) with alpha = (input - pool) / (output - 1); the last is input - pool."""
    end = b.const(float(input_size - pool), "f32", "end")
    u = b.op("unsqueeze", b.cast(samples, "f32"), axes=[samples.rank])            # [N, C, 1]
    if output_size == 1:
        return b.cast(b.op("add", b.op("mul", u, 0.0), end), "i64")
    alpha = literal((input_size - pool) / (output_size - 1))
    index = b.const(np.arange(output_size, dtype=np.float32), "f32", "index")
    starts = b.op("sub", b.op("floor", b.op("mul", b.op("add", index, u), alpha)), b.op("floor", b.op("mul", u, alpha)))
    return b.cast(b.op("select", b.const(np.arange(output_size) == output_size - 1, "bool", "last"), end, starts), "i64")


def _fractional_max_pool(b, self, kernel_size, output_size, random_samples):
    """Max-pool each plane over windows placed by its random samples ([N, C, 2]: W then H; [N, C, 3]:
    T, H, W, as PyTorch reads them); the index is the flat spatial position of the first maximum."""
    spatial = len(kernel_size)
    x = self if self.rank == spatial + 2 else b.op("unsqueeze", self, axes=[0])
    samples = random_samples if random_samples.rank == 3 else b.op("unsqueeze", random_samples, axes=[0])
    sample_of = [1, 0] if spatial == 2 else [0, 1, 2]
    b.require("tract_core")
    n, c, sizes = x.shape[0], x.shape[1], list(x.shape[2:])
    windows, starts = x, []
    for k in range(spatial):  # gather the windows along spatial dim k: out_k * pool_k positions
        column = sample_of[k]
        sample = b.op("squeeze", b.op("slice", samples, axes=[2], begin=[column], end=[column + 1]), axes=[2])
        starts.append(_fractional_starts(b, sample, sizes[k], output_size[k], kernel_size[k]))
        rows = b.op("add", b.op("unsqueeze", starts[k], axes=[3]), b.const(np.arange(kernel_size[k]), "i64", "offset"))
        flat = output_size[k] * kernel_size[k]
        rows = b.op("reshape", rows, shape=[n, c] + [1] * k + [flat] + [1] * (spatial - 1 - k))
        shape = list(windows.shape)
        shape[2 + k] = flat
        rows = b.op("tract_core_broadcast", rows, shape=shape, out_shape=tuple(shape))
        windows = b.op("tract_core_gather_elements", windows, rows, axis=2 + k, out_shape=tuple(shape),
                       out_dtype=x.dtype)
    split = [n, c] + [v for k in range(spatial) for v in (output_size[k], kernel_size[k])]
    windows = b.op("reshape", windows, shape=split, out_shape=tuple(split))
    windows = b.op("transpose", windows, axes=[0, 1] + [2 + 2 * k for k in range(spatial)] +
                   [3 + 2 * k for k in range(spatial)])
    pooled = [n, c] + list(output_size) + [int(np.prod(kernel_size))]
    windows = b.op("reshape", windows, shape=pooled, out_shape=tuple(pooled))
    last = len(pooled) - 1
    values = b.op("squeeze", b.op("max_reduce", windows, axes=[last]), axes=[last])
    best = b.op("squeeze", b.op("argmax_reduce", windows, axes=[last]), axes=[last])  # [N, C, out...]
    index = None
    for k in range(spatial):  # position along dim k: start + (best // inner) % pool_k
        inner = int(np.prod(kernel_size[k + 1:]))
        offset = b.op("div", best, b.const(inner, "i64", "inner")) if inner > 1 else best
        if k:
            pool = b.const(kernel_size[k], "i64", "pool")
            offset = b.op("sub", offset, b.op("mul", b.op("div", offset, pool), pool))
        start = b.op("unsqueeze", starts[k], axes=[2 + j for j in range(spatial) if j != k]) if spatial > 1 \
            else starts[k]
        term = b.op("mul", b.op("add", start, offset), b.const(int(np.prod(sizes[k + 1:])), "i64", "stride"))
        index = term if index is None else b.op("add", index, term)
    if self.rank != spatial + 2:
        values, index = b.op("squeeze", values, axes=[0]), b.op("squeeze", index, axes=[0])
    return values, index


@lower("aten::fractional_max_pool2d")
def aten_fractional_max_pool2d(b, self, kernel_size, output_size, random_samples):
    """fractional_max_pool2d(Tensor self, int[2] kernel_size, int[2] output_size, Tensor random_samples) -> (Tensor, Tensor)"""
    return _fractional_max_pool(b, self, list(kernel_size), list(output_size), random_samples)


@lower("aten::fractional_max_pool3d")
def aten_fractional_max_pool3d(b, self, kernel_size, output_size, random_samples):
    """fractional_max_pool3d(Tensor self, int[3] kernel_size, int[3] output_size, Tensor random_samples) -> (Tensor, Tensor)"""
    return _fractional_max_pool(b, self, list(kernel_size), list(output_size), random_samples)

