"""PassManager: runs passes in order, records IR, names the failing pass and the ones before it."""
from __future__ import annotations

import pytest
import torch

from fx2nnef import PassError, PassManager
from fx2nnef.passes import FlattenIOPass, FoldPrimitivesPass
from testing_utils import captured


def broken_pass(program):
    raise RuntimeError("boom")


def test_error_names_failing_pass_and_previous_ones():
    program = captured(torch.nn.Linear(2, 2), torch.randn(1, 2))
    with pytest.raises(PassError, match=r"broken_pass failed after passes \[FlattenIOPass, FoldPrimitivesPass\].*boom"):
        PassManager([FlattenIOPass(), FoldPrimitivesPass(), broken_pass]).run(program)


def test_verify_catches_a_graph_without_meta():
    def drop_meta(program):
        for node in program.graph.nodes:
            if node.op == "call_function":
                node.meta.pop("val")
        return program

    program = captured(torch.nn.Linear(2, 2), torch.randn(1, 2))
    with pytest.raises(PassError, match="has no meta"):
        PassManager([drop_meta]).run(program)


def test_records_and_dumps(tmp_path):
    program = captured(torch.nn.Linear(2, 2), torch.randn(1, 2))
    records = []
    PassManager([FlattenIOPass(), FoldPrimitivesPass()], dump_dir=tmp_path).run(program, records)
    assert [r.name for r in records] == ["FlattenIOPass", "FoldPrimitivesPass"]
    assert [r.modified for r in records] == [True, False]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_FlattenIOPass.txt", "02_FoldPrimitivesPass.txt"]
