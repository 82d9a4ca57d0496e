"""Tests of the tract runner on tiny hand-written NNEF archives."""
from __future__ import annotations

import importlib.metadata
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from fx2nnef.backends.tract import runner
from fx2nnef.backends.tract.runner import LoadedArchive, input_facts, load, run, run_isolated, tract_version
from fx2nnef.errors import TractCheckError

ADD_ONE = """version 1.0;
extension tract_registry tract_core;
graph network(x) -> (y) { x = tract_core_external(shape = [2, 3], datum_type = 'f32'); y = add(x, 1.0); }
"""

# graph inputs (keep, ids) but tract orders inputs by their external statements: ids, keep.
INT_BOOL = """version 1.0;
extension tract_registry tract_core;
graph network(keep, ids) -> (picked, dropped) {
  ids = tract_core_external(shape = [2, 3], datum_type = 'i64');
  keep = tract_core_external(shape = [2, 3], datum_type = 'bool');
  picked = select(keep, ids, ids * 0.0);
  dropped = not(keep);
}
"""

SYMBOLIC = """version 1.0;
extension tract_registry tract_core;
extension tract_symbol S;
graph network(a, b) -> (y) {
  a = tract_core_external(shape = [1, S], datum_type = 'f32');
  b = tract_core_external(shape = [1, S], datum_type = 'f32');
  y = mul(a, b);
}
"""

TRANSFORMERS = """version 1.0;
extension tract_registry tract_transformers;
graph network(x) -> (y) { x = external<scalar>(shape = [2]); y = add(x, 1.0); }
"""

TDIM_OUTPUT = """version 1.0;
extension tract_registry tract_core;
graph network(x) -> (y) { x = tract_core_external(shape = [2], datum_type = 'i64'); y = add(x, 2); }
"""

# A negative reduce axis makes tract panic while loading, which aborts the process.
ABORTS = """version 1.0;
graph network(x) -> (y) { x = external<scalar>(shape = [2, 3]); y = sum_reduce(x, axes = [-1]); }
"""


def write_archive(directory: Path, graph: str) -> Path:
    """Write `graph` as the graph.nnef of an archive directory and return the directory."""
    directory.mkdir(parents=True)
    (directory / "graph.nnef").write_text(graph)
    return directory


def write_tgz(path: Path, graph: str) -> Path:
    """Write `graph` as the only member of a .nnef.tgz archive and return its path."""
    source = write_archive(path.parent / (path.name + ".src"), graph)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source / "graph.nnef", arcname="graph.nnef")
    return path


@pytest.fixture
def add_one(tmp_path: Path) -> Path:
    """A directory archive computing x + 1 on a [2, 3] f32 input."""
    return write_archive(tmp_path / "add_one", ADD_ONE)


def test_runs_a_directory_archive(add_one: Path) -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    (y,) = run(add_one, [x])
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x + 1)


def test_runs_a_tgz_archive(tmp_path: Path) -> None:
    archive = write_tgz(tmp_path / "add_one.nnef.tgz", ADD_ONE)
    x = np.full((2, 3), -2.5, dtype=np.float32)
    np.testing.assert_array_equal(run(archive, [x])[0], x + 1)


def test_int_and_bool_inputs_in_external_order(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "int_bool", INT_BOOL)
    ids = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
    keep = np.array([[True, False, True], [False, True, False]])
    picked, dropped = run(archive, [ids, keep])
    assert picked.dtype == np.int64 and dropped.dtype == np.bool_
    np.testing.assert_array_equal(picked, np.where(keep, ids, 0))
    np.testing.assert_array_equal(dropped, ~keep)


def test_input_facts_are_read_from_the_model(tmp_path: Path) -> None:
    model = load(write_archive(tmp_path / "sym", SYMBOLIC))
    facts = input_facts(model)
    assert [(fact.name, fact.dims, fact.dtype) for fact in facts] == [("a", (1, "S"), "f32"), ("b", (1, "S"), "f32")]


@pytest.mark.parametrize("size", [3, 17])
def test_symbolic_dim_runs_at_several_sizes(tmp_path: Path, size: int) -> None:
    archive = write_archive(tmp_path / "sym", SYMBOLIC)
    a = np.linspace(-1, 1, size, dtype=np.float32)[None]
    b = np.full((1, size), 3.0, dtype=np.float32)
    (y,) = run(archive, [a, b])
    assert y.shape == (1, size)
    np.testing.assert_allclose(y, a * b)


def test_loaded_archive_loads_once_for_every_size(tmp_path: Path, monkeypatch) -> None:
    archive = LoadedArchive(write_archive(tmp_path / "sym", SYMBOLIC))
    loads = []
    monkeypatch.setattr(runner, "load", lambda *args: loads.append(args) or load(*args))
    for size in (3, 17, 5):
        a = np.linspace(-1, 1, size, dtype=np.float32)[None]
        (y,) = archive.run([a, np.full((1, size), 3.0, dtype=np.float32)])
        np.testing.assert_allclose(y, a * 3.0)
    assert len(loads) == 1
    with pytest.raises(TractCheckError, match=r"axis 1 is S, which input 'a' axis 1 set to 3"):
        archive.run([np.zeros((1, 3), dtype=np.float32), np.zeros((1, 4), dtype=np.float32)])


def test_wrong_input_count_lists_the_expected_inputs(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "int_bool", INT_BOOL)
    with pytest.raises(TractCheckError, match=r"takes 2 input\(s\) but 1 were given") as error:
        run(archive, [np.zeros((2, 3), dtype=np.int64)])
    assert "ids: shape [2, 3] dtype i64; keep: shape [2, 3] dtype bool" in str(error.value)


def test_wrong_dtype_names_the_input_and_its_fact(add_one: Path) -> None:
    with pytest.raises(TractCheckError) as error:
        run(add_one, [np.zeros((2, 3), dtype=np.float64)])
    message = str(error.value)
    assert "input 0 'x'" in message and "pass a float32 array" in message
    assert "expected shape [2, 3] dtype f32, got shape [2, 3] dtype float64" in message


def test_wrong_static_dim_names_the_axis(add_one: Path) -> None:
    with pytest.raises(TractCheckError, match=r"input 0 'x' .*axis 1 has size 4, not 3"):
        run(add_one, [np.zeros((2, 4), dtype=np.float32)])


def test_wrong_rank_is_reported(add_one: Path) -> None:
    with pytest.raises(TractCheckError, match="wrong rank 1"):
        run(add_one, [np.zeros(6, dtype=np.float32)])


def test_symbol_must_have_one_size_across_inputs(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "sym", SYMBOLIC)
    a, b = np.zeros((1, 3), dtype=np.float32), np.zeros((1, 4), dtype=np.float32)
    with pytest.raises(TractCheckError, match=r"input 1 'b' .*axis 1 is S, which input 'a' axis 1 set to 3"):
        run(archive, [a, b])


def test_load_error_keeps_tracts_message_without_backtrace(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "transformers", TRANSFORMERS)
    with pytest.raises(TractCheckError) as error:
        load(archive)
    message = str(error.value)
    assert str(archive) in message and 'Registry not found Identifier("tract_transformers")' in message
    assert "Stack backtrace" not in message


def test_registry_switch_enables_the_registry(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "transformers", TRANSFORMERS)
    (y,) = run(archive, [np.array([1.0, 2.0], dtype=np.float32)], registries=["tract_transformers", "tract_core"])
    np.testing.assert_array_equal(y, [2.0, 3.0])


def test_unknown_registry_is_an_error(add_one: Path) -> None:
    with pytest.raises(TractCheckError, match="cannot enable the registries \\['tract_resource'\\]"):
        load(add_one, ["tract_resource"])


def test_missing_archive_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TractCheckError, match="there is no file or directory there"):
        run(tmp_path / "nope.nnef.tgz", [])


def test_tdim_output_explains_the_fix(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "tdim", TDIM_OUTPUT)
    with pytest.raises(TractCheckError, match="TDim.*tract_core_cast"):
        run(archive, [np.array([1, 2], dtype=np.int64)])


def test_tract_version_is_the_installed_one() -> None:
    assert tract_version() == importlib.metadata.version("tract")


def test_run_isolated_matches_run(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "int_bool", INT_BOOL)
    ids = np.arange(6, dtype=np.int64).reshape(2, 3)
    keep = ids % 2 == 0
    isolated = run_isolated(archive, [ids, keep])
    for got, expected in zip(isolated, run(archive, [ids, keep]), strict=True):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_run_isolated_reports_tract_errors_like_run(add_one: Path) -> None:
    bad = [np.zeros((2, 3), dtype=np.int32)]
    with pytest.raises(TractCheckError) as in_process:
        run(add_one, bad)
    with pytest.raises(TractCheckError) as isolated:
        run_isolated(add_one, bad)
    assert str(isolated.value) == str(in_process.value)


def test_run_isolated_turns_an_abort_into_an_error(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "aborts", ABORTS)
    with pytest.raises(TractCheckError) as error:
        run_isolated(archive, [np.zeros((2, 3), dtype=np.float32)])
    message = str(error.value)
    assert f"tract aborted while loading {archive}" in message
    assert "SIGABRT" in message and "index out of bounds" in message


def test_run_isolated_times_out(add_one: Path) -> None:
    start = time.monotonic()
    with pytest.raises(TractCheckError, match=r"did not finish .* within 0.01 s"):
        run_isolated(add_one, [np.zeros((2, 3), dtype=np.float32)], timeout=0.01)
    assert time.monotonic() - start < 5
