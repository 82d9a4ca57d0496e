"""A minimal NNEF graph whose tract load time grows with the square of its size (benchmarks/README.md,
"Load time"): one weight read by N operations through N equal constant expressions.

    python benchmarks/tract_load_repro.py

Three graphs of N chained `matmul`s, for N = 8 .. 64, loaded with `tract.nnef().load(dir).into_runnable()`:
a `transpose` of one shared weight per use (tract folds each into an equal constant: quadratic), one
shared `transpose` (linear), and a `transpose` of a distinct weight per use (unequal constants: linear).
Then, for scale, a chain of N `add`s written in both formats (NNEF by hand, ONNX with onnx.helper):
tract's NNEF loader costs more per operation than its ONNX loader on the same graph. Last, the
parser: 20 statements each carrying a literal nested D deep (`relu(y, unused = [[1]])` for D = 2),
whose parse time doubles with each level of D.
Written with numpy, onnx and tract only; no fx2nnef graph is involved.
"""
from __future__ import annotations

import struct
import tempfile
import time
from pathlib import Path

import numpy as np
import tract

SIZE = 256


def write_dat(path: Path, array: np.ndarray) -> None:
    """Write a float32 array as an NNEF tensor file (128-byte header, then the data)."""
    header = struct.pack("<2BBBII", 0x4E, 0xEF, 1, 0, array.nbytes, array.ndim)
    header += struct.pack(f"<{8}I", *array.shape, *[0] * (8 - array.ndim))
    header += struct.pack("<II", 32, 0)   # 32-bit float, "code" 0: IEEE float
    path.write_bytes(header + bytes(128 - len(header)) + array.astype("<f4").tobytes())


def graph(directory: Path, uses: int, form: str) -> Path:
    """Write the graph of `uses` matmuls in `form` ('per use', 'shared' or 'distinct') into `directory`."""
    rng = np.random.default_rng(0)
    labels = [f"w{i}" for i in range(uses)] if form == "distinct" else ["w"]
    lines = ["version 1.0;", "", "graph G(x) -> (y)", "{", f"  x = external<scalar>(shape = [1, {SIZE}]);"]
    lines += [f"  {label} = variable<scalar>(shape = [{SIZE}, {SIZE}], label = '{label}');" for label in labels]
    if form == "shared":
        lines.append("  t = transpose(w, axes = [1, 0]);")
    previous = "x"
    for i in range(uses):
        operand = "t" if form == "shared" else f"t{i}"
        if form != "shared":
            lines.append(f"  {operand} = transpose({labels[i % len(labels)]}, axes = [1, 0]);")
        lines.append(f"  y{i} = matmul({previous}, {operand});")
        previous = f"y{i}"
    lines += [f"  y = copy({previous});", "}"]
    (directory / "graph.nnef").write_text("\n".join(lines) + "\n")
    for label in labels:
        write_dat(directory / f"{label}.dat", rng.standard_normal((SIZE, SIZE)).astype(np.float32) / 16)
    return directory


def add_chain(directory: Path, n: int) -> tuple[Path, Path]:
    """Write a chain of `n` adds of a [1, 64] input as an NNEF directory and as an ONNX file."""
    import onnx
    from onnx import TensorProto, helper

    lines = ["version 1.0;", "", "graph G(x) -> (y)", "{", "  x = external<scalar>(shape = [1, 64]);"]
    lines += [f"  a{i} = add({f'a{i - 1}' if i else 'x'}, {float(i)});" for i in range(n)]
    lines += [f"  y = copy(a{n - 1});", "}"]
    (directory / "graph.nnef").write_text("\n".join(lines) + "\n")
    nodes = [helper.make_node("Add", [f"a{i - 1}" if i else "x", f"c{i}"], [f"a{i}"]) for i in range(n)]
    constants = [helper.make_tensor(f"c{i}", TensorProto.FLOAT, [], [float(i)]) for i in range(n)]
    graph_proto = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                                    [helper.make_tensor_value_info(f"a{n - 1}", TensorProto.FLOAT, [1, 64])], constants)
    onnx.save(helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 17)]), directory / "chain.onnx")
    return directory, directory / "chain.onnx"


def nested_literals(directory: Path, depth: int) -> Path:
    """Write 20 chained `relu`s, each with an ignored argument holding a literal nested `depth` deep."""
    literal = "[" * depth + "1" + "]" * depth
    lines = ["version 1.0;", "", "graph G(x) -> (y)", "{", "  x = external<scalar>(shape = [1]);"]
    lines += [f"  r{i} = relu({f'r{i - 1}' if i else 'x'}, unused = {literal});" for i in range(20)]
    lines += ["  y = copy(r19);", "}"]
    (directory / "graph.nnef").write_text("\n".join(lines) + "\n")
    return directory


def best_ms(fn, repeats: int = 5) -> float:
    """Return the best of `repeats` wall times of fn(), in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def main() -> None:
    loader = tract.nnef()
    print("| graph | " + " | ".join(f"{n} uses" for n in (8, 16, 32, 64)) + " |")
    print("|---|---|---|---|---|")
    for form in ("per use", "shared", "distinct"):
        cells = []
        for uses in (8, 16, 32, 64):
            directory = graph(Path(tempfile.mkdtemp(prefix="tract-load-")), uses, form)
            cells.append(f"{best_ms(lambda: loader.load(str(directory)).into_runnable()):.1f} ms")
        print(f"| transpose {form} | " + " | ".join(cells) + " |", flush=True)
    print("\n| adds | NNEF load | NNEF load + runnable | ONNX load + runnable |\n|---|---|---|---|")
    for n in (150, 600):
        nnef, onnx_path = add_chain(Path(tempfile.mkdtemp(prefix="tract-chain-")), n)
        print(f"| {n} | {best_ms(lambda: loader.load(str(nnef))):.1f} ms "
              f"| {best_ms(lambda: loader.load(str(nnef)).into_runnable()):.1f} ms "
              f"| {best_ms(lambda: tract.onnx().load(str(onnx_path)).into_model().into_runnable()):.1f} ms |", flush=True)
    depths = range(0, 9, 2)
    print("\n| literal depth | " + " | ".join(str(d) for d in depths) + " |\n|---|" + "---|" * len(depths))
    directories = [nested_literals(Path(tempfile.mkdtemp(prefix="tract-nested-")), d) for d in depths]
    cells = [f"{best_ms(lambda: loader.load(str(directory)), 15):.2f} ms" for directory in directories]
    print("| 20 statements, NNEF load | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
