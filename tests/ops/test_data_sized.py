"""Ops whose output size depends on tensor data: the archive declares a tract symbol for each such size,
tract binds it at run time, and the same archive stays right when the data (and so the size) changes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import fx2nnef
from fx2nnef.backends.tract import run
from testing_utils import Apply

X = torch.tensor([[0.0, 1.5, -2.0, 0.0], [3.0, 0.0, 1.5, -2.0], [0.0, 0.0, 0.0, 7.0]])
OTHER = torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [5.0, 0.0, -1.0, 5.0]])


CASES = {
    "nonzero": (torch.nonzero, (X,)),
    "nonzero as_tuple": (lambda x: torch.nonzero(x, as_tuple=True), (X,)),
    "nonzero of nothing": (torch.nonzero, (torch.zeros(2, 3),)),
    "nonzero of a 0-d tensor": (torch.nonzero, (torch.tensor(2.0),)),
    "argwhere then arithmetic": (lambda x: torch.argwhere(x).float().mean(0), (X,)),
    "masked_select, broadcast mask": (lambda x: torch.masked_select(x, x[0] != 0), (X,)),
    "boolean index then reshape": (lambda x: x[x > 0].reshape(-1, 1) * 2.0, (X,)),
    "boolean index of rows": (lambda x: x[x.sum(1) > 0], (X,)),
    "unique": (lambda x: torch.unique(x, return_inverse=True, return_counts=True), (X,)),
    "unique of ints": (lambda x: torch.unique(x.long() % 3, return_counts=True), (X,)),
    "unique rows": (lambda x: torch.unique(torch.cat([x, x[:1]]), dim=0, return_inverse=True, return_counts=True),
                    (X,)),
    "unique columns": (lambda x: torch.unique(x.sign(), dim=1, return_inverse=True, return_counts=True), (X,)),
    "unique_consecutive": (lambda x: torch.unique_consecutive(x.flatten(), return_inverse=True, return_counts=True),
                           (X,)),
    "unique_consecutive rows": (lambda x: torch.unique_consecutive(x.sign().repeat_interleave(2, 0), dim=0,
                                                                   return_counts=True), (X,)),
    "bincount": (lambda x: torch.bincount(x.abs().long().flatten(), minlength=3), (X,)),
    "bincount with weights": (lambda x: torch.bincount(x.abs().long().flatten(), x.flatten()), (X,)),
    "repeat_interleave by a tensor": (lambda x: torch.repeat_interleave(x[0], x.abs().long()[2].clamp(max=3)), (X,)),
    "tensor_split at tensor indices": (lambda x, i: torch.tensor_split(x, i, dim=1), (X, torch.tensor([1, 3]))),
    "select at a 0-d tensor": (lambda x, i: x[:, i], (X, torch.tensor(-1))),
    "slice to an item": (lambda x, i: x[:, : i.item()], (X, torch.tensor(2))),
}


def _export(name, tmp_path):
    fn, inputs = CASES[name]
    path = tmp_path / "m.nnef.tgz"
    report = fx2nnef.export_model_to_nnef(Apply(fn), inputs, path, fx2nnef.TractNNEF(check_io=True))
    assert all(r.ok for r in report.check)
    return fn, inputs, path, report


@pytest.mark.parametrize("name", list(CASES))
def test_data_sized(name, tmp_path):
    _export(name, tmp_path)


@pytest.mark.parametrize("name", ["nonzero", "masked_select, broadcast mask", "boolean index of rows", "unique",
                                  "unique rows", "bincount", "tensor_split at tensor indices"])
def test_the_archive_follows_other_data(name, tmp_path):
    """The archive is run again on other values, where the data-dependent sizes differ."""
    fn, inputs, path, report = _export(name, tmp_path)
    assert report.graph.symbols, "a data-dependent size must be a tract symbol"
    other = (OTHER,) + tuple(inputs[1:])
    expected = [t.numpy() for t in torch.utils._pytree.tree_leaves(fn(*other))]
    got = run(path, [t.numpy() for t in other], report.graph.registries)
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-6)


def test_a_constant_mask_gives_static_sizes(tmp_path):
    class Constant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("keep", torch.tensor([True, False, True, True]))

        def forward(self, x):
            return torch.masked_select(x, self.keep), x[:, self.keep]

    report = fx2nnef.export_model_to_nnef(Constant(), (X,), tmp_path / "m", fx2nnef.TractNNEF(check_io=True))
    assert not report.graph.symbols
    assert [t.shape for t in report.graph.outputs] == [(9,), (3, 3)]


def test_unique_of_many_elements(tmp_path):
    """unique over 50,000 elements: running sums by doubling (n log n), run lengths from the starts; an
    n x n running count would need 2.5e9 entries."""
    x = (torch.rand(200, 250, generator=torch.Generator().manual_seed(0)) * 1000).floor()
    model = Apply(lambda x: (torch.unique(x, return_inverse=True, return_counts=True),
                             torch.unique_consecutive(x, return_counts=True)))
    report = fx2nnef.export_model_to_nnef(model, (x,), tmp_path / "m", fx2nnef.TractNNEF(check_io=True))
    assert all(r.ok for r in report.check)
