"""Linear algebra on static matrices at the edges OpInfo's samples miss: singular and ill-conditioned
matrices, zero-size batches, repeated eigenvalues (lowerings/linalg.py, householder.py, jacobi.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fx2nnef import TractNNEF, export_model_to_nnef
from fx2nnef.backends.tract.runner import execute, load, prepare
from testing_utils import Apply


def tract_outputs(fn, inputs, tmp_path) -> list[np.ndarray]:
    """Export `fn` on `inputs` (no check) and return what tract computes on them."""
    path = tmp_path / "m.nnef.tgz"
    report = export_model_to_nnef(Apply(fn), list(inputs), path, TractNNEF(version=TractNNEF.latest_version(),
                                                                        check_io=False))
    return execute(prepare(load(path, report.graph.registries), path), [x.numpy() for x in inputs], path)


def hilbert(n: int) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.float64)
    return (1.0 / (i[:, None] + i[None, :] + 1)).float()


SINGULAR = torch.tensor([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]])


def test_det_and_slogdet_of_a_singular_matrix(tmp_path):
    det, sign, logabs = tract_outputs(lambda a: (torch.linalg.det(a), *torch.linalg.slogdet(a)), [SINGULAR], tmp_path)
    assert abs(float(det)) < 1e-5
    assert float(sign) == 0.0 and float(logabs) == -np.inf   # as PyTorch: sign 0, log|det| -inf


def test_inv_ex_of_a_singular_matrix_reports_it_in_info(tmp_path):
    _, info = tract_outputs(lambda a: torch.linalg.inv_ex(a), [SINGULAR], tmp_path)
    assert int(info) == int(torch.linalg.inv_ex(SINGULAR).info) != 0


def test_an_ill_conditioned_solve_matches_pytorch_to_its_condition(tmp_path):
    a, b = hilbert(5), torch.arange(10, dtype=torch.float32).reshape(5, 2)
    (x,) = tract_outputs(torch.linalg.solve, [a, b], tmp_path)
    expected = torch.linalg.solve(a.double(), b.double()).numpy()
    condition = float(torch.linalg.cond(a.double()))       # ~5e5: float32 keeps ~2 digits
    assert np.abs(x - expected).max() / np.abs(expected).max() < condition * 2e-7 * 10
    assert np.abs(a.numpy() @ x - b.numpy()).max() < 1e-3   # the residual stays small


@pytest.mark.parametrize("name, fn", [
    ("inv", torch.linalg.inv),
    ("det", torch.linalg.det),
    ("cholesky", torch.linalg.cholesky),
    ("qr", lambda a: torch.linalg.qr(a).R),
    ("eigvalsh", torch.linalg.eigvalsh),
    ("svdvals", torch.linalg.svdvals),
])
def test_a_zero_size_batch(name, fn, tmp_path):
    a = torch.empty(0, 3, 3)
    (out,) = tract_outputs(fn, [a], tmp_path)
    assert out.shape == tuple(fn(a).shape)


def test_repeated_eigenvalues(tmp_path):
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0)))
    a = q @ torch.diag(torch.tensor([1.0, 2.0, 2.0, 5.0])) @ q.T
    a = (a + a.T) / 2
    w, v = tract_outputs(torch.linalg.eigh, [a], tmp_path)
    np.testing.assert_allclose(w, [1.0, 2.0, 2.0, 5.0], atol=1e-5)
    # the eigenvectors of the repeated eigenvalue are any basis of their plane: check what is defined
    np.testing.assert_allclose(v @ np.diag(w) @ v.T, a.numpy(), atol=1e-5)
    np.testing.assert_allclose(v.T @ v, np.eye(4), atol=1e-5)


def test_singular_values_of_a_rank_deficient_matrix(tmp_path):
    (s,) = tract_outputs(torch.linalg.svdvals, [SINGULAR], tmp_path)
    np.testing.assert_allclose(s, torch.linalg.svdvals(SINGULAR).numpy(), atol=1e-5)
    assert s[-1] < 1e-5
    (rank,) = tract_outputs(torch.linalg.matrix_rank, [SINGULAR], tmp_path)
    assert int(rank) == 2
