"""Determinism and safety: the same model exported twice, or in parallel threads of one process,
gives byte-identical archives; an export interrupted by KeyboardInterrupt leaves nothing behind."""
from __future__ import annotations

import threading

import pytest
import torch

from fx2nnef import TractNNEF, export_model_to_nnef
from fx2nnef.backends.nnef import serializer


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.LayerNorm(16),
                               torch.nn.Linear(16, 4)).eval()


@pytest.mark.parametrize("suffix", [".nnef.tgz", ".nnef.tar"])
def test_exports_are_byte_identical_twice_and_in_parallel_threads(tmp_path, suffix):
    x = torch.randn(2, 8)
    export_model_to_nnef(small_model(), [x], tmp_path / f"first{suffix}", TractNNEF())
    export_model_to_nnef(small_model(), [x], tmp_path / f"second{suffix}", TractNNEF())
    shared, errors = small_model(), []

    def export(name: str, model: torch.nn.Module) -> None:
        try:
            export_model_to_nnef(model, [x], tmp_path / f"{name}{suffix}", TractNNEF())
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    # torch.export is not thread-safe ("Trying to pop empty mode stack"): fx2nnef serializes capture
    threads = [threading.Thread(target=export, args=(f"thread{i}", shared if i % 2 else small_model()))
               for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    first = (tmp_path / f"first{suffix}").read_bytes()
    assert all((tmp_path / f"{name}{suffix}").read_bytes() == first
               for name in ["second", "thread0", "thread1", "thread2", "thread3"])
    assert not shared.training


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("stage", ["lower", "serialize", "check"])
@pytest.mark.parametrize("suffix", [".nnef.tgz", ".nnef"])
def test_keyboard_interrupt_leaves_nothing(tmp_path, monkeypatch, stage, suffix):
    if stage == "lower":
        monkeypatch.setattr("fx2nnef.stages.validate", _interrupt)
    elif stage == "serialize":
        monkeypatch.setattr(serializer, "write_dat" if suffix == ".nnef" else "_add_member", _interrupt)
    else:
        monkeypatch.setattr("fx2nnef.stages.LoadedArchive.run", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        export_model_to_nnef(small_model(), [torch.randn(2, 8)], tmp_path / f"m{suffix}", TractNNEF())
    assert list(tmp_path.iterdir()) == []
