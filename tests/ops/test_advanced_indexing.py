"""Advanced indexing reads and writes (aten::index, aten::index_put) and F.fold / F.unfold, in the
configurations OpInfo samples leave out, checked against eager PyTorch through tract."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import fx2nnef
from fx2nnef.backends.tract import run

X = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5) / 7.0
I0 = torch.tensor([1, 0, 1])
I1 = torch.tensor([[2], [0]])                 # broadcasts with I2 to [2, 3]
I2 = torch.tensor([0, -1, 3])                 # a negative index counts from the end


class Read(torch.nn.Module):
    """Returns x[key(...)] for a key built from the module's index tensors."""

    def __init__(self, key):
        super().__init__()
        self.key = key

    def forward(self, x, *index):
        return x[self.key(*index)] * 2.0


class Write(torch.nn.Module):
    """Returns a copy of x with x[key] = values (or += with accumulate)."""

    def __init__(self, key, accumulate=False):
        super().__init__()
        self.key, self.accumulate = key, accumulate

    def forward(self, x, values, *index):
        return torch.ops.aten.index_put.default(x, list(self.key(*index)), values, self.accumulate)


def _check(module, *inputs):
    with tempfile.TemporaryDirectory() as tmp:
        report = fx2nnef.export_model_to_nnef(module, inputs, Path(tmp) / "m", fx2nnef.TractNNEF(check_io=True))
    assert all(r.ok for r in report.check)
    return report


READS = {
    "leading": (lambda i: (i,), (I0,)),
    "non-leading": (lambda i: (slice(None), i), (I0,)),
    "adjacent pair, non-leading": (lambda i, j: (slice(None), slice(None), i, j), (I1, I2)),
    "separated by a full slice": (lambda i, j: (i, slice(None), j), (I0, I2)),
    "three broadcast indices": (lambda i, j, k: (i, slice(None), j, k), (torch.tensor([[0], [1]]), I0 + 1, I2)),
    "last axis, 2-d index": (lambda i: (Ellipsis, i), (torch.tensor([[4, 0], [-2, 1]]),)),
    "scalar index tensor": (lambda i: (slice(None), i), (torch.tensor(2),)),
    "mask on two dims": (lambda m: (slice(None), m), (torch.tensor([[True, False, True, False]] * 3),)),
    "mask on leading dim": (lambda m: (m,), (torch.tensor([True, False]),)),
    "empty mask": (lambda m: (m,), (torch.tensor([False, False]),)),
}


@pytest.mark.parametrize("name", list(READS))
def test_index_reads(name):
    key, index = READS[name]
    _check(Read(key), X, *index)


def test_index_with_a_constant_mask_has_a_static_size():
    class ConstantMask(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mask", torch.tensor([True, False, True]))

        def forward(self, x):
            return x[:, self.mask]

    report = _check(ConstantMask(), X)
    assert not report.graph.symbols and report.graph.outputs[0].shape == (2, 2, 4, 5)


def test_index_with_a_runtime_mask_declares_a_size_symbol():
    report = _check(Read(lambda m: (m,)), X[0], X[0] > 1.0)
    assert len(report.graph.symbols) == 1 and "tract_onnx" in report.graph.registries


WRITES = {
    "leading": (lambda i: (i,), (I0,), (3, 3, 4, 5)),
    "non-leading (col2im)": (lambda i, j: (None, None, i, j), (I1, I2), (2, 3, 2, 3)),
    "separated by a full slice": (lambda i, j: (i, None, j), (I0, I2), (3, 3, 5)),
    "broadcast values": (lambda i, j: (None, i, None, j), (I0[:2], I2[:2]), (2, 1, 4)),
    "scalar value": (lambda i: (None, None, None, i), (I2,), ()),
    "duplicates": (lambda i: (None, i), (torch.tensor([1, 1, 2, 1]),), (2, 4, 4, 5)),
}


@pytest.mark.parametrize("accumulate", [False, True], ids=["set", "accumulate"])
@pytest.mark.parametrize("name", list(WRITES))
def test_index_put(name, accumulate):
    key, index, shape = WRITES[name]
    if name == "duplicates" and not accumulate:
        pytest.skip("which duplicate wins is unspecified in PyTorch")
    values = torch.arange(1, 1 + torch.Size(shape).numel(), dtype=torch.float32).reshape(shape)
    _check(Write(key, accumulate), X, values, *index)


MASKED_WRITES = {  # (x, values, mask over x's leading dims)
    "one value": (X, torch.tensor(2.5), X > 3.0),
    "one value per row": (X, torch.arange(5.0), X[..., 0] > 3.0),
    "one row per true element": (X[:, 1], torch.arange(float((X[:, 1, :, 0] > 3.0).sum()) * 5).reshape(-1, 5),
                                 X[:, 1, :, 0] > 3.0),
}


@pytest.mark.parametrize("accumulate", [False, True], ids=["set", "accumulate"])
@pytest.mark.parametrize("name", list(MASKED_WRITES))
def test_index_put_with_a_runtime_mask(name, accumulate):
    x, values, mask = MASKED_WRITES[name]
    _check(Write(lambda m: (m,), accumulate), x, values, mask)


def test_masked_write_of_one_value_per_element_is_linear_in_size(tmp_path):
    """`y[mask] = f(x[mask])` on 256 x 256: the true elements' positions come from non_zero (an n x n
    running count would need 2**32 floats), and the archive follows masks of other counts."""
    class Clip(torch.nn.Module):
        def forward(self, x):
            y = x.clone()
            y[x > 1.0] = x[x > 1.0].sqrt()
            return y

    x = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    report = fx2nnef.export_model_to_nnef(Clip(), (x,), tmp_path / "m.nnef.tgz", fx2nnef.TractNNEF(check_io=True))
    other = x * 2.0
    (got,) = run(report.path, [other.numpy()], report.graph.registries)
    np.testing.assert_allclose(got, Clip()(other).numpy(), rtol=1e-6)


def test_index_put_on_bool_with_accumulate():
    x = torch.tensor([[True, False, False], [False, False, True]])
    _check(Write(lambda i: (None, i), True), x, torch.tensor([True, False]), torch.tensor([1, 2]))


FOLDS = {
    "kernel 2, stride 2": dict(output_size=(4, 6), kernel_size=2, stride=2),
    "overlapping": dict(output_size=(5, 5), kernel_size=3),
    "dilation, padding, stride": dict(output_size=(5, 6), kernel_size=(2, 3), dilation=(1, 2), padding=1, stride=(2, 1)),
    "asymmetric padding": dict(output_size=(4, 7), kernel_size=(3, 2), padding=(2, 0), stride=(1, 3)),
}


def _blocks(output_size, kernel_size, dilation=1, padding=0, stride=1):
    pair = lambda v: (v, v) if isinstance(v, int) else v  # noqa: E731
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = map(pair, (kernel_size, dilation, padding, stride))
    rows = (output_size[0] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    cols = (output_size[1] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return kh * kw, rows * cols


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("name", list(FOLDS))
def test_fold_and_unfold(name, batched):
    options = FOLDS[name]
    kernel, blocks = _blocks(**options)
    shape = (2, 3 * kernel, blocks) if batched else (3 * kernel, blocks)
    columns = torch.randn(*shape, generator=torch.Generator().manual_seed(0))

    class Fold(torch.nn.Module):
        def forward(self, cols):
            image = torch.nn.functional.fold(cols, **options)
            unfold = {k: v for k, v in options.items() if k != "output_size"}
            return image, torch.nn.functional.unfold(image if batched else image[None], **unfold)

    _check(Fold(), columns)
