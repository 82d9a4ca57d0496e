"""Tests of the debug bundle written when a tract check fails."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from fx2nnef.backends.tract.bundle import write_debug_bundle

ADD_ONE = """version 1.0;
extension tract_registry tract_core;
graph network(x) -> (y) { x = tract_core_external(shape = [2, 3], datum_type = 'f32'); y = add(x, 1.0); }
"""

X = np.arange(6, dtype=np.float32).reshape(2, 3)
IR_DUMPS = {"capture": "graph():\n  ...", "fold_primitives": "graph(): folded", "lower/nnef": "graph network"}


def write_archive_dir(directory: Path) -> Path:
    """Write the x + 1 graph as an archive directory and return it."""
    directory.mkdir()
    (directory / "graph.nnef").write_text(ADD_ONE)
    return directory


def write_bundle(bundle_path: Path, archive_path: Path | None, **overrides) -> Path | None:
    """Write a bundle for the x + 1 model with a fake mismatch in its output."""
    arguments = dict(
        archive_path=archive_path,
        inputs={"x": X},
        expected={"output_y": X + 1},
        got={"output_y": X + 2},
        ir_dumps=IR_DUMPS,
        error_text="TractCheckError: 1 of 1 tract output(s) differ",
        extra={"tolerance": "approx"},
    )
    return write_debug_bundle(bundle_path, **(arguments | overrides))


def extract(bundle: Path, into: Path) -> Path:
    """Extract a .tgz bundle and return its top directory."""
    with tarfile.open(bundle) as tar:
        tar.extractall(into, filter="data")
    (top,) = into.iterdir()
    return top


def run_readme_command(directory: Path) -> str:
    """Run the reproduce command of the bundle's README in `directory` and return its stdout."""
    readme = (directory / "README.txt").read_text()
    (command,) = [line.strip() for line in readme.splitlines() if line.strip().startswith("python -c")]
    command = command.replace("python", f'"{sys.executable}"', 1)
    done = subprocess.run(command, shell=True, cwd=directory, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_tgz_bundle_holds_every_member(tmp_path: Path) -> None:
    archive = write_archive_dir(tmp_path / "model_dir")
    bundle = write_bundle(tmp_path / "debug.tgz", archive)
    assert bundle == tmp_path / "debug.tgz"
    with tarfile.open(bundle) as tar:
        names = set(tar.getnames())
    assert names >= {
        "debug/model/graph.nnef",
        "debug/inputs.npz",
        "debug/expected.npz",
        "debug/got.npz",
        "debug/ir/00_capture.txt",
        "debug/ir/01_fold_primitives.txt",
        "debug/ir/02_lower_nnef.txt",
        "debug/error.txt",
        "debug/versions.json",
        "debug/extra.json",
        "debug/README.txt",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["debug.tgz", "model_dir"]  # no temporary left


def test_bundle_contents_round_trip(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "debug.tar.gz", write_archive_dir(tmp_path / "model_dir"))
    top = extract(bundle, tmp_path / "out")
    assert top.name == "debug"
    with np.load(top / "got.npz") as got:
        np.testing.assert_array_equal(got["output_y"], X + 2)
    assert (top / "ir" / "01_fold_primitives.txt").read_text() == "graph(): folded"
    assert (top / "error.txt").read_text().startswith("TractCheckError")
    versions = json.loads((top / "versions.json").read_text())
    assert versions["tract"] == "0.23.9" and versions["numpy"] == np.__version__
    assert {"python", "platform", "torch"} <= versions.keys()
    assert json.loads((top / "extra.json").read_text()) == {"tolerance": "approx"}


def test_readme_command_reproduces_the_run_from_a_directory_archive(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "debug.tgz", write_archive_dir(tmp_path / "model_dir"))
    output = run_readme_command(extract(bundle, tmp_path / "out"))
    assert output.split() == ["output_y", "(2,", "3)", "float32", "max", "abs", "err", "0.0"]


def test_readme_command_reproduces_the_run_from_a_tgz_archive(tmp_path: Path) -> None:
    archive = tmp_path / "model.nnef.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(write_archive_dir(tmp_path / "src") / "graph.nnef", arcname="graph.nnef")
    directory = write_bundle(tmp_path / "bundle_dir", archive, registries=["tract_core", "tract_transformers"])
    assert (directory / "model.nnef.tgz").is_file()
    assert ".with_tract_transformers().load('model.nnef.tgz')" in (directory / "README.txt").read_text()
    assert "max abs err 0.0" in run_readme_command(directory)


def test_directory_bundle_replaces_a_previous_one_and_skips_missing_parts(tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    write_bundle(target, write_archive_dir(tmp_path / "model_dir"))
    write_bundle(target, None, got=None, extra=None, inputs={"file": X})  # np.savez reserves "file"
    assert sorted(p.name for p in target.iterdir()) == [
        "README.txt", "error.txt", "expected.npz", "inputs.npz", "ir", "versions.json",
    ]
    with np.load(target / "inputs.npz") as inputs:
        assert inputs.files == ["file"]
    assert "nothing to run" in (target / "README.txt").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "model_dir"]


def test_failure_is_logged_and_returns_none(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING):
        assert write_bundle(blocker / "debug.tgz", None) is None
    assert "could not write the debug bundle" in caplog.text


def test_failure_while_filling_leaves_nothing_behind(tmp_path: Path) -> None:
    assert write_bundle(tmp_path / "debug.tgz", tmp_path / "missing_archive.nnef.tgz") is None
    assert list(tmp_path.iterdir()) == []
