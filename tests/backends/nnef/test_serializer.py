"""Tests of the NNEF text printer, the .dat writer and the atomic archive writer."""
from __future__ import annotations

import gzip
import io
import os
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from fx2nnef.backends.nnef import serializer
from fx2nnef.backends.nnef.graph import Expr, Graph, Operation, Tensor
from fx2nnef.backends.nnef.serializer import (
    dat_size, format_argument, format_document, format_invocation, save, write_dat,
)
from fx2nnef.errors import SerializationError

tract = pytest.importorskip("tract")

WEIGHT = (np.arange(12, dtype=np.float32).reshape(3, 4) - 5.0) / 7.0


def tiny_graph(label: str = "w") -> Graph:
    """Return external x[2,3] -> variable w[3,4] -> matmul -> add 0.5 -> output y."""
    x = Tensor("x", "f32", (2, 3))
    w = Tensor("w", "f32", (3, 4), data=WEIGHT, label=label)
    h = Tensor("h", "f32", (2, 4))
    y = Tensor("y", "f32", (2, 4))
    return Graph(
        inputs=[x],
        outputs=[y],
        registries={"tract_core"},
        operations=[
            Operation("tract_core_external", (), {"shape": [2, 3], "datum_type": "f32"}, (x,)),
            Operation("variable", (), {"shape": [3, 4], "label": label}, (w,)),
            Operation("matmul", (x, w), {}, (h,)),
            Operation("add", (h, 0.5), {}, (y,)),
        ],
    )


def run_tract(path: Path, *inputs: np.ndarray) -> list[np.ndarray]:
    """Load `path` with tract and return the outputs of one run."""
    runnable = tract.nnef().load(str(path)).into_runnable()
    return [output.to_numpy() for output in runnable.run(list(inputs))]


def leftovers(directory: Path, keep: set[str]) -> list[str]:
    """Return the names in `directory` other than `keep` (temporaries, backups)."""
    return sorted(set(os.listdir(directory)) - keep)


# --------------------------------------------------------------------------------------------
# format_argument / format_invocation / format_document


@pytest.mark.parametrize("value, text", [
    (True, "true"), (False, "false"), (np.bool_(True), "true"),
    (3, "3"), (-3, "-3"), (np.int64(7), "7"), (np.uint8(255), "255"),
    (2.0, "2.0"), (0.5, "0.5"), (-1.25, "-1.25"), (1e-05, "1e-05"), (1e20, "1e20"),
    (float("inf"), "inf"), (float("-inf"), "-inf"),
    (np.float32(0.1), "0.1"), (np.float64(2), "2.0"), (np.float16(1.5), "1.5"),
    ("f32", "'f32'"), ("it's", "'it\\'s'"), ("a\\b", "'a\\\\b'"),
    ([1, 2], "[1, 2]"), ((0, 1), "(0, 1)"), ([], "[]"),
    ([(0, 1), (2, 3)], "[(0, 1), (2, 3)]"),
    (Expr("S - 1"), "S - 1"), ([Expr("S"), 4], "[S, 4]"),
])
def test_format_argument_literals(value, text):
    assert format_argument(value) == text


def test_format_argument_tensor_is_its_name():
    assert format_argument([Tensor("a"), Tensor("b")]) == "[a, b]"


def test_format_argument_rejects_nan_and_unknown_types():
    with pytest.raises(ValueError, match="NaN"):
        format_argument(float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        format_argument(np.float32("nan"))
    with pytest.raises(TypeError, match="dict"):
        format_argument({"a": 1})


def test_format_argument_rejects_non_identifier_tensor_name():
    with pytest.raises(SerializationError, match="'x.1'"):
        format_argument(Tensor("x.1"))


def test_format_invocation_single_and_multiple_outputs():
    x, y, i = Tensor("x"), Tensor("y"), Tensor("i")
    op = Operation("max_pool_with_index", (x,), {"size": [1, 1, 2, 2], "border": "ignore"}, (y, i))
    assert format_invocation(op) == (
        "(y, i) = max_pool_with_index(x, size = [1, 1, 2, 2], border = 'ignore');"
    )
    assert format_invocation(Operation("add", (x, 1.0), {}, (y,))) == "y = add(x, 1.0);"


def test_format_invocation_rejects_bad_names():
    with pytest.raises(SerializationError, match="'bad-op'"):
        format_invocation(Operation("bad-op", (), {}, (Tensor("y"),)))
    with pytest.raises(SerializationError, match="'2y'"):
        format_invocation(Operation("add", (), {}, (Tensor("2y"),)))
    with pytest.raises(SerializationError, match="no output"):
        format_invocation(Operation("add", (), {}, ()))


def test_format_document_golden():
    assert format_document(tiny_graph()) == """\
version 1.0;
extension tract_registry tract_core;

graph network(x) -> (y)
{
  x = tract_core_external(shape = [2, 3], datum_type = 'f32');
  w = variable(shape = [3, 4], label = 'w');
  h = matmul(x, w);
  y = add(h, 0.5);
}
"""


def test_format_document_declarations_golden():
    graph = tiny_graph()
    graph.registries = {"tract_transformers", "tract_core"}
    graph.symbols = ["S"]
    graph.assertions = ["S >= 1"]
    graph.fragments = {"twice": "fragment twice(x: tensor<scalar>) -> (y: tensor<scalar>) { y = x * 2.0; }\n"}
    graph.properties = {"name": "tiny", "n": 3, "f": 1.5, "l": [1, 2], "b": True}
    graph.name = "main"
    head = format_document(graph).split("graph main(x) -> (y)")[0]
    assert head == """\
version 1.0;
extension tract_registry tract_core;
extension tract_registry tract_transformers;
extension tract_symbol S;
extension tract_assert S >= 1;

fragment twice(x: tensor<scalar>) -> (y: tensor<scalar>) { y = x * 2.0; }

fragment tract_core_properties() -> (properties: (string, tensor<scalar>)[])
{
  properties = [('name', 'tiny'), ('n', 3), ('f', 1.5), ('l', [1, 2]), ('b', true)];
}

"""


# --------------------------------------------------------------------------------------------
# .dat files


def test_write_dat_header_matches_tract_reference():
    array = np.zeros((10, 4), np.float32)
    f = io.BytesIO()
    assert write_dat(f, array) == 128 + 160 == dat_size(array)
    expected = bytearray(128)
    expected[0:20] = bytes.fromhex("4eef0100" "a0000000" "02000000" "0a000000" "04000000")
    expected[44:52] = bytes.fromhex("20000000" "0000" "0000")
    assert f.getvalue()[:128] == bytes(expected)
    assert len(f.getvalue()) == 288


@pytest.mark.parametrize("dtype, bits, item_type", [
    ("float16", 16, 0), ("float64", 64, 0), ("int8", 8, 4), ("int64", 64, 4),
    ("uint8", 8, 1), ("uint32", 32, 1), ("bool", 8, 5),
])
def test_write_dat_item_types(dtype, bits, item_type):
    f = io.BytesIO()
    write_dat(f, np.ones((2, 3), dtype))
    header = f.getvalue()[:128]
    assert int.from_bytes(header[44:48], "little") == bits
    assert int.from_bytes(header[48:50], "little") == item_type
    assert header[50:52] == b"\0\0"
    assert f.getvalue()[128:] == np.ones((2, 3), dtype).tobytes()


def test_write_dat_rank0_big_endian_and_non_contiguous():
    f = io.BytesIO()
    write_dat(f, np.float32(2.5))
    assert f.getvalue()[8:12] == b"\0\0\0\0" and f.getvalue()[128:] == np.float32(2.5).tobytes()
    f = io.BytesIO()
    write_dat(f, np.arange(3, dtype=">i4"))
    assert f.getvalue()[128:] == np.arange(3, dtype="<i4").tobytes()
    f = io.BytesIO()
    transposed = np.arange(6, dtype=np.float32).reshape(2, 3).T
    write_dat(f, transposed)
    assert f.getvalue()[12:20] == bytes.fromhex("03000000" "02000000")
    assert f.getvalue()[128:] == np.ascontiguousarray(transposed).tobytes()


def test_write_dat_streams_a_view_of_the_array():
    class Recorder:
        def __init__(self):
            self.chunks = []

        def write(self, chunk):
            self.chunks.append(chunk)

    array = np.arange(1000, dtype=np.float32)
    recorder = Recorder()
    write_dat(recorder, array)
    data = recorder.chunks[-1]
    assert isinstance(data, memoryview)
    assert np.shares_memory(np.asarray(data), array)


@pytest.mark.parametrize("array, message", [
    (np.array([object()]), "object"),
    (np.zeros(2, np.complex64), "complex64"),
    (np.zeros(2, "V2"), "void"),
    (np.zeros([1] * 9, np.float32), "rank 9"),
])
def test_write_dat_rejects_unsupported_arrays(array, message):
    with pytest.raises(SerializationError, match=message):
        write_dat(io.BytesIO(), array)


def test_write_dat_rejects_bfloat16():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    with pytest.raises(SerializationError, match="bfloat16"):
        write_dat(io.BytesIO(), np.zeros(2, ml_dtypes.bfloat16))


def test_tar_member_is_written_from_pieces(tmp_path):
    with open(tmp_path / "a.tar", "wb") as f:
        size = serializer._add_member(f, "x.dat", 8, [b"abc", memoryview(np.arange(4, dtype=np.uint8)), b"", b"z"])
        f.write(bytes(1024))
    assert size == 1024
    with tarfile.open(tmp_path / "a.tar") as tar:
        assert tar.extractfile("x.dat").read() == b"abc\x00\x01\x02\x03z"
    with open(tmp_path / "b.tar", "wb") as f, pytest.raises(SerializationError, match="declared size of 9"):
        serializer._add_member(f, "x.dat", 9, [b"abc"])


# --------------------------------------------------------------------------------------------
# save: containers, round trip through tract


@pytest.mark.parametrize("name", ["model", "model.nnef.tar", "model.nnef.tgz", "model.tar.gz"])
def test_save_round_trips_through_tract(tmp_path, name):
    path = save(tiny_graph(), tmp_path / name)
    assert path == tmp_path / name
    assert leftovers(tmp_path, {name}) == []
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    (y,) = run_tract(path, x)
    np.testing.assert_allclose(y, x @ WEIGHT + 0.5, rtol=1e-6)


def test_save_layouts(tmp_path):
    save(tiny_graph(), tmp_path / "dir")
    assert sorted(os.listdir(tmp_path / "dir")) == ["graph.nnef", "w.dat"]
    assert (tmp_path / "dir" / "graph.nnef").read_text() == format_document(tiny_graph())
    assert (tmp_path / "dir" / "w.dat").stat().st_size == dat_size(WEIGHT)
    save(tiny_graph(), tmp_path / "a.tar")
    with tarfile.open(tmp_path / "a.tar") as tar:
        assert tar.getnames() == ["graph.nnef", "w.dat"]
        assert tar.extractfile("w.dat").read() == (tmp_path / "dir" / "w.dat").read_bytes()
    save(tiny_graph(), tmp_path / "a.tgz")
    with gzip.open(tmp_path / "a.tgz") as stream:
        assert stream.read() == (tmp_path / "a.tar").read_bytes()


@pytest.mark.parametrize("coded", [True, False])
def test_tgz_of_many_chunks_is_one_gzip_member_tract_reads(tmp_path, coded):
    """12 chunks deflated in parallel: Huffman-coded (small integers), or stored (random floats
    save too little to pay for the coding time)."""
    from fx2nnef.backends.nnef.serializer import GZIP_CHUNK, worth_coding
    big = np.random.default_rng(0).standard_normal((3, GZIP_CHUNK), dtype=np.float32)
    if coded:
        big = np.round(big * 2)
    assert worth_coding(big) == coded
    graph = tiny_graph()
    graph.operations[1].outputs[0].data = big[:, :4].copy()
    extra = Tensor("big", "f32", big.shape, data=big, label="big")
    graph.operations.insert(0, Operation("variable", (), {"shape": list(big.shape), "label": "big"}, (extra,)))
    save(graph, tmp_path / "a.tar")
    save(graph, tmp_path / "a.tgz")
    compressed = (tmp_path / "a.tgz").read_bytes()
    member = zlib.decompressobj(31)  # one gzip member: the decoder reaches its end with no data left over
    assert member.decompress(compressed) == (tmp_path / "a.tar").read_bytes()
    assert member.eof and member.unused_data == b""
    ratio = len(compressed) / (tmp_path / "a.tar").stat().st_size
    assert ratio < 0.5 if coded else 0.99 < ratio < 1.001
    x = np.ones((2, 3), np.float32)
    (y,) = run_tract(tmp_path / "a.tgz", x)
    np.testing.assert_allclose(y, x @ big[:, :4] + 0.5, rtol=1e-5)


def test_save_is_deterministic(tmp_path):
    save(tiny_graph(), tmp_path / "a.tgz")
    save(tiny_graph(), tmp_path / "b.tgz")
    assert (tmp_path / "a.tgz").read_bytes() == (tmp_path / "b.tgz").read_bytes()


def test_save_label_with_slashes_and_shared_variable(tmp_path):
    graph = tiny_graph(label="enc/layer.0/w")
    x, h = graph.inputs[0], graph.operations[2].outputs[0]
    w2 = Tensor("w2", "f32", (3, 4), data=WEIGHT.copy(), label="enc/layer.0/w")
    h2, z = Tensor("h2"), Tensor("z")
    graph.operations += [
        Operation("variable", (), {"shape": [3, 4], "label": "enc/layer.0/w"}, (w2,)),
        Operation("matmul", (x, w2), {}, (h2,)),
        Operation("sub", (h, h2), {}, (z,)),
    ]
    graph.outputs.append(z)
    for name in ["dir", "m.tar"]:
        path = save(graph, tmp_path / name)
        x_value = np.ones((2, 3), np.float32)
        y, zero = run_tract(path, x_value)
        np.testing.assert_allclose(y, x_value @ WEIGHT + 0.5, rtol=1e-6)
        np.testing.assert_array_equal(zero, np.zeros((2, 4), np.float32))
    assert sorted(p.relative_to(tmp_path / "dir").as_posix() for p in (tmp_path / "dir").rglob("*.dat")) == [
        "enc/layer.0/w.dat"
    ]
    with tarfile.open(tmp_path / "m.tar") as tar:
        assert tar.getnames() == ["graph.nnef", "enc/layer.0/w.dat"]


def test_save_rejects_one_label_with_two_arrays(tmp_path):
    graph = tiny_graph()
    other = Tensor("w2", "f32", (3, 4), data=WEIGHT + 1, label="w")
    graph.operations.insert(2, Operation("variable", (), {"shape": [3, 4], "label": "w"}, (other,)))
    with pytest.raises(SerializationError, match="'w'.*different data"):
        save(graph, tmp_path / "m.tar")
    assert leftovers(tmp_path, set()) == []


@pytest.mark.parametrize("label", ["../evil", "/abs", ".hidden", "a//b", "a/./b", ""])
def test_save_rejects_unsafe_labels(tmp_path, label):
    with pytest.raises(SerializationError, match="label"):
        save(tiny_graph(label=label), tmp_path / "m")
    assert leftovers(tmp_path, set()) == []


def test_save_rejects_variable_without_data(tmp_path):
    graph = tiny_graph()
    graph.operations[1].outputs[0].data = None
    with pytest.raises(SerializationError, match="no data"):
        save(graph, tmp_path / "m")


def test_save_with_properties_loads_in_tract(tmp_path):
    graph = tiny_graph()
    graph.properties = {"name": "tiny", "n": 3, "f": 1.5, "l": [1, 2], "b": True}
    model = tract.nnef().load(str(save(graph, tmp_path / "m.tgz")))
    assert {"name", "n", "f", "l", "b"} <= set(model.property_keys())
    assert model.property("n").to_numpy() == 3
    np.testing.assert_array_equal(model.property("l").to_numpy(), [1, 2])


# --------------------------------------------------------------------------------------------
# save: atomicity


def bad_graph() -> Graph:
    """Return the tiny graph with an object array as weight (fails while collecting weights)."""
    graph = tiny_graph()
    graph.operations[1].outputs[0].data = np.array([object()] * 12).reshape(3, 4)
    return graph


@pytest.mark.parametrize("name", ["m", "m.tar", "m.tgz"])
def test_failed_save_leaves_nothing(tmp_path, name):
    with pytest.raises(SerializationError, match="object"):
        save(bad_graph(), tmp_path / name)
    assert leftovers(tmp_path, set()) == []


def test_failed_directory_save_midway_keeps_previous_target(tmp_path, monkeypatch):
    target = tmp_path / "m"
    save(tiny_graph(), target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    graph = tiny_graph()
    graph.operations.insert(2, Operation("variable", (), {"shape": [2], "label": "v"},
                                         (Tensor("v", data=np.ones(2, np.float32)),)))
    calls = []

    def failing_write_dat(f, array, progress=None):
        calls.append(array)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return write_dat(f, array, progress)

    monkeypatch.setattr(serializer, "write_dat", failing_write_dat)
    with pytest.raises(SerializationError, match=f"{target} \\(writing the tensor .*\\): .*No space left"):
        save(graph, target)
    assert len(calls) == 2
    assert leftovers(tmp_path, {"m"}) == []
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before


@pytest.mark.parametrize("name", ["m.tar", "m.tgz"])
def test_failed_tar_save_midway_keeps_previous_target(tmp_path, monkeypatch, name):
    target = tmp_path / name
    target.write_bytes(b"previous")
    original = serializer._add_member

    def failing_add_member(stream, name, *args, **kwargs):
        if name.endswith(".dat"):
            raise OSError(5, "Input/output error")
        return original(stream, name, *args, **kwargs)

    monkeypatch.setattr(serializer, "_add_member", failing_add_member)
    with pytest.raises(SerializationError, match="Input/output error"):
        save(tiny_graph(), target)
    assert leftovers(tmp_path, {name}) == []
    assert target.read_bytes() == b"previous"


@pytest.mark.parametrize("existing", ["file", "directory"])
@pytest.mark.parametrize("name", ["m", "m.tar"])
def test_save_replaces_existing_target(tmp_path, existing, name):
    target = tmp_path / name
    if existing == "file":
        target.write_bytes(b"old")
    else:
        (target / "sub").mkdir(parents=True)
        (target / "sub" / "old.dat").write_bytes(b"old")
    save(tiny_graph(), target)
    assert leftovers(tmp_path, {name}) == []
    (y,) = run_tract(target, np.zeros((2, 3), np.float32))
    np.testing.assert_allclose(y, np.full((2, 4), 0.5, np.float32))


def test_save_missing_parent_is_a_serialization_error(tmp_path):
    with pytest.raises(SerializationError, match="missing"):
        save(tiny_graph(), tmp_path / "missing" / "m.tar")


def test_save_logs_byte_counts(tmp_path, caplog):
    with caplog.at_level("DEBUG", logger="fx2nnef"):
        save(tiny_graph(), tmp_path / "m.tar")
    assert f"1 tensor files {dat_size(WEIGHT)} bytes" in caplog.text
