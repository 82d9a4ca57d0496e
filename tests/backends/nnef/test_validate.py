"""Tests of the NNEF graph checks that run before tract sees a graph."""
from __future__ import annotations

import numpy as np
import pytest

from fx2nnef.backends.nnef.graph import Expr, Graph, Operation, Tensor
from fx2nnef.backends.nnef.validate import remove_dead_operations, validate
from fx2nnef.errors import InvalidGraphError


def external(name: str, shape: tuple, dtype: str = "f32") -> Operation:
    """Return a tract_core_external operation defining the input `name`."""
    return Operation("tract_core_external", (), {"shape": list(shape), "datum_type": dtype},
                     (Tensor(name, dtype, shape),))


def graph_of(*ops: Operation, inputs: int = 1) -> Graph:
    """Return a graph of `ops` whose first `inputs` ops are inputs and last op is the output."""
    return Graph(
        inputs=[op.outputs[0] for op in ops[:inputs]],
        outputs=[ops[-1].outputs[0]],
        operations=list(ops),
    )


def single(name: str, *args, shape: tuple | None = None, **attribs) -> Graph:
    """Return `y = name(x, *args, **attribs)` on an f32 input x of `shape` (default [2,3,4,5])."""
    x = external("x", shape or (2, 3, 4, 5))
    op = Operation(name, (x.outputs[0], *args), attribs, (Tensor("y"),))
    return graph_of(x, op)


def assert_invalid(graph: Graph, *fragments: str) -> None:
    """Assert that validate rejects `graph` with a message holding every fragment."""
    with pytest.raises(InvalidGraphError) as info:
        validate(graph)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_valid_graph_passes():
    x = external("x", (2, 3))
    w = Tensor("w", "f32", (3, 4), data=np.ones((3, 4), np.float32), label="w")
    h, y = Tensor("h", "f32", (2, 4)), Tensor("y", "f32", (2, 4))
    graph = graph_of(
        x,
        Operation("variable", (), {"shape": [3, 4], "label": "w"}, (w,)),
        Operation("matmul", (x.outputs[0], w), {}, (h,)),
        Operation("add", (h, 0.5), {}, (y,)),
    )
    graph.properties = {"s": "v", "i": 3, "f": 1.5, "b": True, "l": [1, 2], "n": np.int64(4)}
    validate(graph)


# --------------------------------------------------------------------------------------------
# Axes


@pytest.mark.parametrize("name, attribs", [
    ("sum_reduce", {"axes": [-1]}), ("mean_reduce", {"axes": [0, -2]}), ("max_reduce", {"axes": [-1]}),
    ("min_reduce", {"axes": [-1]}), ("any_reduce", {"axes": [-1]}), ("all_reduce", {"axes": [-1]}),
    ("argmax_reduce", {"axes": [-1]}), ("argmin_reduce", {"axes": [-1]}),
    ("squeeze", {"axes": [-1]}), ("unsqueeze", {"axes": [-1]}), ("softmax", {"axes": [-1]}),
    ("slice", {"axes": [-1], "begin": [0], "end": [1]}),
    ("tract_core_gather", {"axis": -1}), ("tract_core_gather_elements", {"axis": np.int64(-2)}),
])
def test_negative_axes_rejected(name, attribs):
    extra = ([0, 1],) if name.startswith("tract_core_gather") else ()
    assert_invalid(single(name, *extra, **attribs), f"y = {name}(...)", "negative")


@pytest.mark.parametrize("name", ["concat", "stack"])
def test_negative_axis_in_concat_and_stack(name):
    x = external("x", (2, 3))
    op = Operation(name, ([x.outputs[0], x.outputs[0]],), {"axis": -1}, (Tensor("y"),))
    assert_invalid(graph_of(x, op), f"y = {name}(...)", "axis = -1 is negative")
    op.attribs["axis"] = 1
    validate(graph_of(x, op))


def test_non_negative_axes_pass():
    validate(single("sum_reduce", axes=[0, 3]))
    validate(single("tract_core_gather", [0, 1], axis=1))
    validate(single("softmax", axes=[Expr("1")]))


# --------------------------------------------------------------------------------------------
# slice


@pytest.mark.parametrize("begin, end, message", [
    (3, 2, "begin 3 > end 2"),
    (-1, 4, "begin -1 on axis 3 is negative"),
    (1, 9223372036854775807, "open-end sentinel"),
    (0, 2**31, "open-end sentinel"),
    (1, 6, "end 6 on axis 3 is beyond the dim size 5"),
    (4, -2, "begin 4 > end -2"),   # end <= 0 counts from the end: 5 - 2 = 3 < 4
    (2, 0, "end 0 on axis 3 means the end of the axis"),
])
def test_slice_bounds_rejected(begin, end, message):
    assert_invalid(single("slice", axes=[3], begin=[begin], end=[end]), "y = slice(...)", message)


@pytest.mark.parametrize("begin, end", [(0, 5), (1, 4), (2, 2), (1, -1), (3, -2), (0, 0)])
def test_slice_bounds_accepted(begin, end):
    validate(single("slice", axes=[3], begin=[begin], end=[end]))


def test_slice_symbolic_bounds_pass():
    validate(single("slice", axes=[1], begin=[Expr("S - 2")], end=[Expr("S")],
                    shape=(1, Expr("S"), 4)))
    validate(single("slice", axes=[1], begin=[1], end=[100], shape=(1, Expr("S"), 4)))
    assert_invalid(single("slice", axes=[1], begin=[1], end=[2**63 - 1], shape=(1, Expr("S"), 4)),
                   "sentinel")


# --------------------------------------------------------------------------------------------
# pools and borders


@pytest.mark.parametrize("name", ["max_pool", "avg_pool", "box", "max_pool_with_index", "rms_pool"])
def test_pool_lists_must_be_full_rank(name):
    full = {"size": [1, 1, 2, 2], "stride": [1, 1, 2, 2], "dilation": [1, 1, 1, 1],
            "padding": [(0, 0)] * 4, "border": "ignore"}
    validate(single(name, **full))
    assert_invalid(single(name, **{**full, "padding": [(0, 0), (0, 0)]}),
                   f"y = {name}(...)", "padding has 2 entries, expected 4")
    assert_invalid(single(name, **{**full, "size": [2, 2]}), "size has 2 entries, expected 4")
    validate(single(name, size=[1, 1, 2, 2], padding=[]))   # empty list: not given


@pytest.mark.parametrize("name", ["max_pool", "avg_pool", "box"])
def test_pool_input_needs_a_spatial_axis(name):
    # shrunk by the fuzzer: F.adaptive_avg_pool1d(F.adaptive_avg_pool1d(x, 2), 2) on an unbatched (3, 3)
    # x was written as avg_pool(size = [1, 1]) on a rank-2 tensor, which aborts tract's run (SIGSEGV)
    assert_invalid(single(name, shape=(3, 4), size=[1, 1], stride=[1, 1], padding=[(0, 0)] * 2, border="ignore"),
                   f"y = {name}(...)", "rank 2", "abort")
    validate(single(name, shape=(1, 3, 4), size=[1, 1, 1], stride=[1, 1, 1], padding=[(0, 0)] * 3, border="ignore"))


def test_pool_rank_from_size_when_input_rank_unknown():
    x = external("x", (2, 3, 4, 5))
    x.outputs[0].shape = None
    op = Operation("max_pool", (x.outputs[0],), {"size": [1, 1, 2, 2], "stride": [2, 2]},
                   (Tensor("y"),))
    assert_invalid(graph_of(x, op), "stride has 2 entries, expected 4")


@pytest.mark.parametrize("name, border, ok", [
    ("conv", "constant", True), ("conv", "reflect", False), ("deconv", "ignore", False),
    ("max_pool", "constant", True), ("avg_pool", "ignore", True), ("box", "reflect", False),
    ("pad", "constant", True), ("pad", "reflect", True), ("pad", "replicated", True),
    ("pad", "replicate", False), ("pad", "reflect-even", False),
])
def test_borders(name, border, ok):
    attribs = {"border": border}
    if name in ("max_pool", "avg_pool", "box"):
        attribs["size"] = [1, 1, 2, 2]
    graph = single(name, **attribs)
    if ok:
        validate(graph)
    else:
        assert_invalid(graph, f"y = {name}(...)", f"border {border!r} is not one of")


# --------------------------------------------------------------------------------------------
# argument counts and ranks


@pytest.mark.parametrize("name", [
    "add", "sub", "mul", "div", "pow", "min", "max", "lt", "gt", "le", "ge", "eq", "ne",
    "and", "or", "tract_core_xor", "tract_core_bitand", "tract_core_bitor", "tract_core_bitxor",
    "tract_shl", "tract_shr",
])
def test_binary_ops_need_two_arguments(name):
    assert_invalid(single(name), f"y = {name}(...)", "exactly 2 arguments, got 1")
    assert_invalid(single(name, 1.0, 2.0), "exactly 2 arguments, got 3")
    validate(single(name, 1.0))


def test_select_needs_three_arguments():
    assert_invalid(single("select", 1.0), "y = select(...)", "exactly 3 arguments, got 2")
    validate(single("select", 1.0, 0.0))


def test_broadcast_ranks_must_match():
    x = external("x", (2, 2))
    v = external("v", (2,))
    rank0 = external("s", ())
    op = Operation("add", (x.outputs[0], v.outputs[0]), {}, (Tensor("y"),))
    assert_invalid(graph_of(x, v, op, inputs=2), "y = add(...)", "trailing unit axes")
    op.args = (x.outputs[0], rank0.outputs[0])
    validate(graph_of(x, rank0, op, inputs=2))
    select = Operation("select", (v.outputs[0], x.outputs[0], 0.0), {}, (Tensor("y"),))
    assert_invalid(graph_of(x, v, select, inputs=2), "y = select(...)", "ranks")


def test_matmul_ranks_must_match():
    x = external("x", (2, 3, 4))
    w = external("w", (4, 5))
    op = Operation("matmul", (x.outputs[0], w.outputs[0]), {}, (Tensor("y"),))
    assert_invalid(graph_of(x, w, op, inputs=2), "y = matmul(...)", "ranks 3 and 2 differ")
    w.outputs[0].shape = (1, 4, 5)
    validate(graph_of(x, w, op, inputs=2))


# --------------------------------------------------------------------------------------------
# variables and properties


def test_variable_attributes():
    def graph(attribs, data=np.ones((3, 4), np.float32), label="w"):
        w = Tensor("w", "f32", (3, 4), data=data, label=label)
        return graph_of(Operation("variable", (), attribs, (w,)), inputs=0)

    validate(graph({"shape": [3, 4], "label": "w"}))
    assert_invalid(graph({"shape": [3, 4]}), "w = variable(...)", "label")
    assert_invalid(graph({"shape": [3, 4], "label": "v"}), "differs from the tensor label 'w'")
    assert_invalid(graph({"label": "w"}), "shape")
    assert_invalid(graph({"shape": [4, 3], "label": "w"}), "differs from the data shape [3, 4]")


@pytest.mark.parametrize("value", [Tensor("x"), Expr("S"), [], None, float("nan"), [1, "a"], (1, 2)])
def test_properties_must_be_literals(value):
    graph = single("add", 1.0)
    graph.properties = {"bad": value}
    assert_invalid(graph, "property 'bad'", "not a literal")


# --------------------------------------------------------------------------------------------
# structure


def test_duplicate_output_names():
    x = external("x", (2,))
    a = Operation("neg", (x.outputs[0],), {}, (Tensor("y"),))
    b = Operation("exp", (a.outputs[0],), {}, (Tensor("y"),))
    assert_invalid(graph_of(x, a, b), "y = exp(...)", "'y' is already defined by y = neg(...)")


def test_argument_defined_later_or_never():
    x = external("x", (2,))
    ghost = Operation("neg", (Tensor("ghost"),), {}, (Tensor("y"),))
    assert_invalid(graph_of(x, ghost), "y = neg(...)", "'ghost' is not defined")
    late = Operation("neg", (x.outputs[0],), {}, (Tensor("y"),))
    assert_invalid(graph_of(late, x, inputs=0), "y = neg(...)", "'x' is not defined")


def test_nested_argument_must_be_defined():
    x = external("x", (2,))
    op = Operation("concat", ([x.outputs[0], Tensor("z")],), {"axis": 0}, (Tensor("y"),))
    assert_invalid(graph_of(x, op), "y = concat(...)", "'z' is not defined")


def test_graph_output_must_be_defined():
    graph = single("neg")
    graph.outputs.append(Tensor("nowhere"))
    assert_invalid(graph, "graph output 'nowhere'")


def test_graph_inputs_come_from_external():
    graph = single("neg")
    graph.inputs.append(graph.outputs[0])
    assert_invalid(graph, "graph input 'y'", "found y = neg(...)")
    graph.inputs[-1] = Tensor("free")
    assert_invalid(graph, "graph input 'free'", "no operation")
    plain = Operation("external", (), {"shape": [2]}, (Tensor("x"),))
    validate(graph_of(plain, Operation("neg", (plain.outputs[0],), {}, (Tensor("y"),))))


def test_cycle_detected():
    a, b = Tensor("a"), Tensor("b")
    graph = graph_of(
        Operation("neg", (b,), {}, (a,)),
        Operation("neg", (a,), {}, (b,)),
        inputs=0,
    )
    assert_invalid(graph, "cycle", "a -> b -> a")


def test_all_rule_problems_are_reported_together():
    x = external("x", (2, 3))
    graph = graph_of(
        x,
        Operation("sum_reduce", (x.outputs[0],), {"axes": [-1]}, (Tensor("s"),)),
        Operation("add", (x.outputs[0],), {}, (Tensor("y"),)),
    )
    assert_invalid(graph, "s = sum_reduce(...)", "y = add(...)")


# --------------------------------------------------------------------------------------------
# remove_dead_operations


def test_remove_dead_operations():
    x = external("x", (2,))
    unused_input = external("u", (2,))
    live = Operation("neg", (x.outputs[0],), {}, (Tensor("a"),))
    dead = Operation("exp", (live.outputs[0],), {}, (Tensor("d"),))
    dead_too = Operation("exp", (dead.outputs[0],), {}, (Tensor("d2"),))
    out = Operation("abs", (live.outputs[0],), {}, (Tensor("y"),))
    graph = Graph(inputs=[x.outputs[0], unused_input.outputs[0]], outputs=[out.outputs[0]],
                  operations=[x, unused_input, live, dead, dead_too, out])
    assert remove_dead_operations(graph) == 2
    assert graph.operations == [x, unused_input, live, out]
    assert remove_dead_operations(graph) == 0
    validate(graph)


def test_remove_dead_operations_keeps_multi_output_ops():
    x = external("x", (1, 1, 2, 2))
    pool = Operation("max_pool_with_index", (x.outputs[0],), {"size": [1, 1, 2, 2]},
                     (Tensor("v"), Tensor("i")))
    graph = Graph(inputs=[x.outputs[0]], outputs=[pool.outputs[1]], operations=[x, pool])
    assert remove_dead_operations(graph) == 0
    assert graph.operations == [x, pool]


@pytest.mark.parametrize("name", ["sum_reduce", "mean_reduce", "max_reduce", "argmax_reduce"])
def test_reduction_over_an_empty_axis_rejected(name):
    assert_invalid(single(name, shape=(3, 0), axes=[1]), f"y = {name}(...)", "size 0")
    validate(single(name, shape=(3, 0), axes=[0]))


@pytest.mark.parametrize("index, ok", [([0, 4, -5], True), ([5], False), ([-6], False), ([], True)])
def test_constant_gather_indices_must_be_in_range(index, ok):
    data = np.array(index, dtype=np.int64)
    indices = Tensor("i", "i64", data.shape, data=data, label="i")
    graph = single("tract_core_gather", indices, shape=(5, 3), axis=0)
    graph.operations.insert(0, Operation("variable", (), {"shape": list(data.shape), "label": "i"}, (indices,)))
    if ok:
        validate(graph)
    else:
        assert_invalid(graph, "outside axis 0 of size 5", "aborts the process")
