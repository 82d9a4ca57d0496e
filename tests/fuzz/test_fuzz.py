"""Property-based fuzzing: random small programs export, run in tract (in a child process, so an
abort is a failure, not a crash of the run) and match eager PyTorch.

The default run checks a fixed-seed sample (`CASES`, ~1 minute on 2 cores); `-m slow` a larger
one. A failure is shrunk by hypothesis to a minimal program, printed as Python-like source.
`python benchmarks/fuzz.py --cases N` reports the outcome table (with the torch.onnx route).
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).parent))

from harness import run_fx2nnef  # noqa: E402
from programs import programs  # noqa: E402

CASES = 300


def fuzz_settings(cases: int) -> settings:
    """A fixed seed (derandomize), no example database, no deadline: the same programs every run."""
    return settings(max_examples=cases, derandomize=True, database=None, deadline=None, print_blob=False,
                    suppress_health_check=list(HealthCheck))


def check(program) -> None:
    """Fail on anything but a pass or a clear export error, showing the program."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outcome = run_fx2nnef(program)
    assert not outcome.failed, f"{outcome.kind}\n{program.source()}\n{outcome.detail}"


@fuzz_settings(CASES)
@given(programs())
def test_random_programs(program):
    check(program)


@pytest.mark.slow
@fuzz_settings(3000)
@given(programs(max_steps=16))
def test_random_programs_long(program):
    check(program)
