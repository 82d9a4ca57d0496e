"""The fuzzer's shrunk failures, kept as regression tests: each program once aborted tract, made it
refuse the archive, crashed inside fx2nnef or gave wrong numbers (the comment says which)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import PASS, run_fx2nnef  # noqa: E402
from programs import BOOL, F16, F32, I64, Program, Step  # noqa: E402


def step(op: str, *operands: int, **params) -> Step:
    return Step(op, operands, tuple(params.items()))


CASES = {
    # tract rewrites integer mul(x, x) into Square: "Square does not support I64" at run time
    "integer_square": Program((((4,), I64),), (step("mul", 0, 0), step("pow", 0, scalar=2.0),
                                                step("to", 0, dtype=F32)), (1,)),
    # unbatched (C, L) pools were lowered as if rank 2 were (N, C): a pool on a rank-2 tensor, SIGSEGV
    "unbatched_adaptive_avg_pool1d": Program((((3, 3), F32),), (
        step("adaptive_avg_pool", 0, spatial=1, size=2), step("adaptive_avg_pool", 1, spatial=1, size=2)), (2,)),
    "unbatched_avg_pool1d": Program((((4, 3), F32),), (
        step("avg_pool", 0, spatial=1, kernel=2, stride=None, padding=0, ceil_mode=False),), (1,)),
    # unbatched (C, H, W) max_pool2d was refused (pool lists of the wrong rank)
    "unbatched_max_pool2d": Program((((2, 1, 5), F32),), (
        step("max_pool", 0, spatial=2, kernel=1, stride=None, padding=0, ceil_mode=False),), (1,)),
    # a reshape to a size-0 dim written as shape = [2, 0]: tract read 0 as "copy" ("0 should be 3")
    "reshape_to_empty": Program((((3, 0), F32),), (step("reshape", 0, shape=(2, 0)),
                                                    step("flatten", 0, start=0, end=1)), (1, 2)),
    # cat of empty parts only: IndexError in shape inference, reported as a LoweringError
    "cat_of_empties": Program((((5, 1, 2, 0), F32),), (step("cos", 0), step("transpose", 1, a=1, b=0),
                                                        step("cat", 2, 2, 2, dim=2)), (3,)),
    # an empty bool constant: tract refuses an empty bool .dat ("Shape and len mismatch ... bytes:0")
    "empty_bool_constant": Program((((5, 0, 2), BOOL),), (step("logical_xor", 0, 0),), (1,)),
    # sdpa of empty constants: ZeroDivisionError in the lowering, reported as a LoweringError
    "sdpa_of_empties": Program((((2, 1, 0), F32),), (
        step("std", 0, dim=1, keepdim=False), step("sdpa", 1, 1, causal=True), step("transpose", 1, a=1, b=0)),
        (0, 3)),
    # tract's f32 div is not correctly rounded (x / x = 1 - 2^-24): floor(x / x) was 0, x % x was x
    "remainder_of_itself": Program((((40, 30), F32), ((30,), F32)), (
        step("remainder", 0, 0), step("remainder", 0, 1), step("floor_divide", 0, 0)), (2, 3, 4), seed=3),
    "remainder_f16": Program((((40, 30), F16),), (step("remainder", 0, scalar=-1.5),), (1,), seed=3),
    # a linear resize to an output length of 1 written with pytorch_half_pixel samples index 0
    "resize_to_length_1": Program((((3, 4, 3), F32),), (
        step("interpolate", 0, size=(1,), mode="linear", align_corners=False),), (1,), seed=2),
    # a matmul whose contraction axis is a broadcast size-1 axis: tract contracted as if K were 1
    "matmul_broadcast_contraction": Program((((3, 1), F32), ((4, 2), F32)), (
        step("expand", 0, shape=(3, 4)), step("matmul", 2, 1)), (3,)),
    "linear_broadcast_contraction": Program((((3, 1), F32),), (
        step("expand", 0, shape=(3, 4)), step("exp", 1), step("linear", 2, **{"in": 4, "out": 2, "bias": False})),
        (3,)),
    "einsum_broadcast_contraction": Program((((2, 3, 1), F32), ((4, 2), F32)), (
        step("expand", 0, shape=(2, 3, 4)), step("einsum", 2, 1, equation="...ij,jk->...ik")), (3,)),
    "tile_broadcast_contraction": Program(((((), F32),)), (
        step("repeat", 0, repeats=(2,)), step("abs", 1), step("matmul", 2, 1)), (3,)),   # x.repeat(2): a tile of size 1
    # a rank-raising broadcast kept (no size-1 axis stretched) and folded by tract into the pooling
    # matmul with the wrong rank: "Condition failed" at load (found by the 3,000-program run)
    "rank_raising_broadcast_into_matmul": Program((((2,), F32),), (
        step("expand", 0, shape=(1, 2)), step("adaptive_avg_pool", 1, spatial=1, size=3)), (2,)),
    # a 0-d result written as reshape(shape = []): tract refuses it at load
    "reshape_to_0d": Program((((1,), F32),), (step("reshape", 0, shape=()), step("exp", 1)), (2,)),
    # f16 group norm statistics computed in f16: the squares of |x| ~ 300 overflow to inf
    "group_norm_f16_statistics": Program((((2, 4, 64), F16),), (
        step("mul", 0, scalar=300.0), step("group_norm", 1, groups=2, channels=4)), (2,)),
    # sdpa of rank-2 matrices with one query row went to tract's fused operator, which takes ranks 3 and 4
    "sdpa_rank_2": Program((((1, 2), F32),), (step("sdpa", 0, 0, causal=True),), (1,)),
    # sdpa with an empty head (E = 0): 1 / sqrt(0) in the lowering; torch averages the values
    "sdpa_empty_head": Program((((1, 3, 0), F32),), (step("sdpa", 0, 0, causal=False),), (1,)),
    # atan2 of signed zeros (round(-0.3) is -0): atan2(-0, -0) is -pi in torch, was 0
    "atan2_signed_zeros": Program((((8,), F32),), (step("round", 0), step("atan2", 1, 1)), (2,)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_shrunk_program(name):
    program = CASES[name]
    outcome = run_fx2nnef(program)
    assert outcome.kind == PASS, f"{outcome.kind}\n{program.source()}\n{outcome.detail}"
