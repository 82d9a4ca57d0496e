"""Run PyTorch OpInfo samples through fx2nnef and tract, and classify what happens.

One sample: its tensors become the inputs of a tiny module whose forward calls `opinfo.op` with
the sample's other arguments as constants; the module is exported with check_io, so tract runs
the archive and its outputs are compared with eager PyTorch.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

import numpy as np
import torch
import torch.utils._pytree as pytree

import fx2nnef
from fx2nnef.errors import (CaptureError, ExportInputError, FX2NNEFError, InvalidGraphError, LoweringError,
                            PassError, TractCheckError, UnsupportedOpError)

FLOAT_TOLERANCE = (1e-4, 1e-4)
# samples larger than this many input elements are skipped (they only make the sweep slow)
MAX_NUMEL = 1 << 16
# failure categories; EXCLUDED ones (no capture, no tensor output, values PyTorch leaves undefined, samples
# eager PyTorch itself rejects) do not count in the pass rate
PASSED, CAPTURE, NO_TENSOR, UNDEFINED = "passed", "capture", "no tensor output", "undefined output"
EXCLUDED = (CAPTURE, NO_TENSOR, UNDEFINED, "eager error")
# OpInfo entries whose outputs are uninitialized memory (two eager calls may still happen to agree)
UNINITIALIZED = {"empty", "empty_like", "empty_strided", "empty_permuted", "new_empty", "new_empty_strided"}


@dataclasses.dataclass
class Outcome:
    """What one sample gave: its category, and the first line of the error when it failed."""

    category: str
    message: str = ""
    seconds: float = 0.0


@functools.cache
def op_db() -> dict[str, Any]:
    """Return OpInfo entries by full name ('name' or 'name.variant')."""
    from torch.testing._internal.common_methods_invocations import op_db as entries
    return {full_name(o): o for o in entries}


def full_name(opinfo) -> str:
    """Return the name an OpInfo is known by in the table: `name` or `name.variant_test_name`."""
    return f"{opinfo.name}.{opinfo.variant_test_name}" if opinfo.variant_test_name else opinfo.name


class SampleModule(torch.nn.Module):
    """Calls `op` on the sample's arguments, with its tensors taken from forward()'s inputs."""

    def __init__(self, op, spec, leaves: list, tensor_slots: list[int]):
        super().__init__()
        self.op, self.spec, self.leaves, self.tensor_slots = op, spec, leaves, tensor_slots

    def forward(self, *tensors):
        leaves = list(self.leaves)
        for slot, tensor in zip(self.tensor_slots, tensors):
            leaves[slot] = tensor
        args, kwargs = pytree.tree_unflatten(leaves, self.spec)
        return self.op(*args, **kwargs)


def sample_module(opinfo, sample) -> tuple[SampleModule, tuple[torch.Tensor, ...]]:
    """Return the module for a sample and the tensors it takes."""
    leaves, spec = pytree.tree_flatten(((sample.input, *sample.args), dict(sample.kwargs)))
    slots = [i for i, leaf in enumerate(leaves) if isinstance(leaf, torch.Tensor)]
    tensors = tuple(leaves[i] for i in slots)
    consts = [None if i in slots else leaf for i, leaf in enumerate(leaves)]
    return SampleModule(opinfo.op, spec, consts, slots), tensors


def samples(opinfo, dtype: torch.dtype, limit: int | None) -> Iterator:
    """Yield up to `limit` reasonably small samples of an OpInfo in `dtype`."""
    found = opinfo.sample_inputs("cpu", dtype, requires_grad=False)
    small = (s for s in found if _numel(s) <= MAX_NUMEL)
    return itertools.islice(small, limit)


def _numel(sample) -> int:
    leaves = pytree.tree_leaves(((sample.input, *sample.args), dict(sample.kwargs)))
    return sum(t.numel() for t in leaves if isinstance(t, torch.Tensor))


def run_sample(opinfo, sample, tolerance=FLOAT_TOLERANCE, workdir: Path | None = None,
               statistical: bool = False) -> Outcome:
    """Export one sample with check_io and return how it went (`statistical`: compare draws of a
    random op by their distribution, see _run_statistical)."""
    start = time.perf_counter()
    outcome = (_run_statistical if statistical else _run)(opinfo, sample, tolerance, workdir)
    outcome.seconds = time.perf_counter() - start
    return outcome


def _run(opinfo, sample, tolerance, workdir: Path | None) -> Outcome:
    if opinfo.name in UNINITIALIZED:
        return Outcome(UNDEFINED, "PyTorch leaves the values uninitialized")
    model, tensors = sample_module(opinfo, sample)
    try:
        with torch.no_grad():
            eager = model(*tensors)
    except Exception as e:  # noqa: BLE001 - a sample torch itself rejects is not ours to judge
        return Outcome("eager error", _first_line(e))
    if not any(isinstance(t, torch.Tensor) for t in pytree.tree_leaves(eager)):
        return Outcome(NO_TENSOR, type(eager).__name__)
    with torch.no_grad():
        again = model(*tensors)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        target = fx2nnef.TractNNEF(check_io=True, check_io_tolerance=tolerance)
        try:
            fx2nnef.export_model_to_nnef(model, tensors, Path(tmp) / "model", inference_target=target)
        except CaptureError as e:
            return Outcome(CAPTURE, _first_line(e))
        except FX2NNEFError as e:
            category = classify(e)
            if category == "mismatch" and not _same(eager, again):
                return Outcome(UNDEFINED, "eager PyTorch gives different values on each call (uninitialized memory)")
            return Outcome(category, _first_line(e))
        except Exception as e:  # noqa: BLE001 - recorded as a failure of fx2nnef, not raised
            return Outcome("other", f"{type(e).__name__}: {_first_line(e)}")
    return Outcome(PASSED)


# -- statistical comparison of random ops ---------------------------------------------------------
DRAWN_ELEMENTS = 4096   # values drawn by tract per output (at least MIN_DRAWS, at most MAX_DRAWS calls)
MIN_DRAWS, MAX_DRAWS = 8, 64
REFERENCE_FACTOR = 4    # PyTorch draws this many times as many values
Z = 5.0                 # how many standard errors a moment may be off
DISCRETE = 64           # a reference with at most this many distinct values is a discrete distribution


class Draws(torch.nn.Module):
    """Calls the sample module `count` times and stacks each tensor output over the calls."""

    def __init__(self, model, count: int):
        super().__init__()
        self.model, self.count = model, count

    def forward(self, *tensors):
        calls = [[t for t in pytree.tree_leaves(self.model(*tensors)) if isinstance(t, torch.Tensor)]
                 for _ in range(self.count)]
        return tuple(torch.stack(outputs) for outputs in zip(*calls))


@contextlib.contextmanager
def _independent_draws():
    """Let OpInfo's random ops draw from the running generator: their `wrapper_set_seed` reseeds it
    with 42 (and restores its state) around every call, so that every call would draw the same."""
    from torch.testing._internal import common_methods_invocations
    with mock.patch.object(common_methods_invocations, "wrapper_set_seed", lambda op, *a, **k: op(*a, **k)):
        yield


def _run_statistical(opinfo, sample, tolerance, workdir: Path | None) -> Outcome:
    """Export the sample called K times (K draws in one archive, each random operator seeded apart),
    run it in tract and compare each output's draws with REFERENCE_FACTOR x K draws of eager PyTorch:
    mean and variance within Z standard errors, values within PyTorch's range (or, for a discrete
    output, among PyTorch's values) and as many NaNs and infinities, up to sampling noise."""
    with _independent_draws():
        return _compare_draws(opinfo, sample, tolerance, workdir)


def _compare_draws(opinfo, sample, tolerance, workdir: Path | None) -> Outcome:
    model, tensors = sample_module(opinfo, sample)
    try:
        with torch.no_grad():
            eager = [t for t in pytree.tree_leaves(model(*tensors)) if isinstance(t, torch.Tensor)]
    except Exception as e:  # noqa: BLE001 - a sample torch itself rejects is not ours to judge
        return Outcome("eager error", _first_line(e))
    if not eager:
        return Outcome(NO_TENSOR, "no tensor output")
    numel = max(sum(t.numel() for t in eager), 1)
    count = min(MAX_DRAWS, max(MIN_DRAWS, -(-DRAWN_ELEMENTS // numel)))
    draws = Draws(model, count)
    names = [f"t{i}" for i in range(len(tensors))]
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        target = fx2nnef.TractNNEF(check_io=True, check_io_tolerance=tolerance)
        try:
            report = fx2nnef.export_model_to_nnef(draws, tensors, Path(tmp) / "model", inference_target=target,
                                                  input_names=names)
        except CaptureError as e:
            return Outcome(CAPTURE, _first_line(e))
        except FX2NNEFError as e:
            return Outcome(classify(e), _first_line(e))
        from fx2nnef.backends.tract import run
        fed = [tensors[names.index(name)].numpy() for name in report.input_names]
        got = run(report.path, fed, report.graph.registries)
    torch.manual_seed(0)
    with torch.no_grad():
        reference = [torch.cat(parts) for parts in zip(*(draws(*tensors) for _ in range(REFERENCE_FACTOR)))]
    for index, (drawn, expected) in enumerate(zip(got, reference, strict=True)):
        problem = distribution_mismatch(np.asarray(drawn), expected.numpy())
        if problem:
            return Outcome("mismatch", f"output {index} ({count} draws): {problem}")
    return Outcome(PASSED)


def distribution_mismatch(drawn: np.ndarray, reference: np.ndarray) -> str | None:
    """Say how tract's draws differ in distribution from PyTorch's (same layout, more draws along
    axis 0), or return None when they agree (see _run_statistical)."""
    if drawn.shape[1:] != reference.shape[1:] or drawn.dtype != reference.dtype:
        return f"got {drawn.dtype}{list(drawn.shape)}, expected {reference.dtype}[*, {list(reference.shape[1:])}]"
    x, y = drawn.astype(np.float64).ravel(), reference.astype(np.float64).ravel()
    if not x.size:
        return None
    for name, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        fx, fy = test(x).mean(), test(y).mean()
        if abs(fx - fy) > Z * np.sqrt(max(fy * (1 - fy), 1 / y.size) / x.size):
            return f"{name} fraction {fx:.3g}, PyTorch's {fy:.3g}"
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if x.size < 2 or y.size < 2:
        return None
    values, counts = np.unique(y, return_counts=True)
    unseen = ~np.isin(x, values)
    # a new draw is a value PyTorch never drew with probability ~ (values it drew once) / draws (Good-Turing)
    if values.size <= DISCRETE and unseen.sum() > 2 + 4 * x.size * (1 + (counts == 1).sum()) / y.size:
        return f"{unseen.sum()} values never drawn by PyTorch, e.g. {x[unseen][0]!r} (its values: " \
               f"{values[:8].tolist()}...)"
    outside = ((x < y.min()) | (x > y.max())).sum()
    if outside > 2 + 4 * x.size / (y.size + 1):  # each draw falls outside y's range with probability 2/(n+1)
        return f"{outside} of {x.size} values outside PyTorch's range [{y.min():.4g}, {y.max():.4g}]"
    mean, var = y.mean(), y.var()
    if abs(x.mean() - mean) > Z * np.sqrt(var / x.size + var / y.size) + 1e-6 * (1 + abs(mean)):
        return f"mean {x.mean():.5g}, PyTorch's {mean:.5g} (variance {var:.4g})"
    spread = np.mean((y - mean) ** 4) - var ** 2  # the variance of a squared deviation
    if abs(x.var() - var) > Z * np.sqrt(max(spread, 0.0) * (1 / x.size + 1 / y.size)) + 1e-9 * (1 + var):
        return f"variance {x.var():.5g}, PyTorch's {var:.5g}"
    return None


def _same(a, b) -> bool:
    """Tell whether two eager results hold the same values (NaN equal to NaN)."""
    left, right = pytree.tree_leaves(a), pytree.tree_leaves(b)
    return len(left) == len(right) and all(
        not isinstance(x, torch.Tensor) or (isinstance(y, torch.Tensor) and x.shape == y.shape
                                            and torch.equal(torch.nan_to_num(x), torch.nan_to_num(y)))
        for x, y in zip(left, right))


def classify(error: FX2NNEFError) -> str:
    """Return the failure category of an fx2nnef error."""
    if isinstance(error, UnsupportedOpError):
        return "not expressible" if "not expressible" in str(error) or "in place" in str(error) else "unsupported op"
    if isinstance(error, LoweringError):
        return "lowering error"
    if isinstance(error, (PassError, ExportInputError)):
        return "pass error"
    if isinstance(error, InvalidGraphError):
        return "invalid graph"
    if isinstance(error, TractCheckError):
        return "mismatch" if "differ from PyTorch" in str(error) else "tract error"
    return "other"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    lines = text.splitlines()
    if isinstance(error, UnsupportedOpError) and len(lines) > 1:
        return lines[0].split(":")[0] + ": " + ", ".join(l.strip().split()[0] for l in lines[1:]
                                                         if l.startswith("  ") and not l.startswith("      "))
    if isinstance(error, TractCheckError) and len(lines) > 1:
        detail = lines[1] if "differ from PyTorch" in text else lines[-1].strip()
        return f"{lines[0][:80]}: {detail}"[:300]
    return (lines[0] if lines else type(error).__name__)[:300]


def run_entry(opinfo, dtypes=(torch.float32,), limit: int | None = 3, tolerance=None,
              statistical: bool = False) -> list[tuple[str, Outcome]]:
    """Run up to `limit` samples of each dtype the op supports; return (dtype name, outcome) per sample
    (`statistical`: the op samples random numbers, compared by distribution)."""
    results = []
    supported = opinfo.supported_dtypes("cpu")
    for dtype in dtypes:
        if dtype not in supported:
            continue
        tol = (tolerance or {}).get(dtype, FLOAT_TOLERANCE)
        for sample in samples(opinfo, dtype, limit):
            results.append((str(dtype).replace("torch.", ""), run_sample(opinfo, sample, tol, statistical=statistical)))
    return results


def entry_status(outcomes: list[Outcome]) -> Outcome:
    """Summarize an entry: passed if every counted sample passed, else its first failure.

    Samples that torch.export cannot capture (or that have no tensor output) do not count; an entry
    with no counted sample is itself 'capture' (or 'no tensor output')."""
    counted = [o for o in outcomes if o.category not in EXCLUDED]
    if not counted:
        return outcomes[0] if outcomes else Outcome(CAPTURE, "no sample")
    failed = [o for o in counted if o.category != PASSED]
    return failed[0] if failed else Outcome(PASSED)
