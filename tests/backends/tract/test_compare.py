"""Tests of the output comparison between tract and PyTorch."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fx2nnef.backends.tract.compare import (
    TOLERANCES,
    Tolerance,
    check_close,
    compare_outputs,
    format_report,
    resolve_tolerance,
)
from fx2nnef.errors import ExportInputError, TractCheckError


def compare_one(expected: np.ndarray, got: np.ndarray, tol="approx"):
    """Compare a single output named `out` and return its report."""
    (report,) = compare_outputs(["out"], [expected], [got], tol)
    return report


def test_presets_are_tracts_approximation_levels() -> None:
    assert TOLERANCES["exact"] == Tolerance(0.0, 0.0)
    assert TOLERANCES["approx"] == TOLERANCES["approximate"] == Tolerance(1e-4, 5e-4, Tolerance(1e-3, 5e-3))
    assert TOLERANCES["close"] == Tolerance(1e-7, 1e-7, Tolerance(1e-3, 1e-3))
    assert TOLERANCES["very"] == Tolerance(5e-2, 1e-2)
    assert TOLERANCES["super"] == Tolerance(0.1, 0.05)
    assert TOLERANCES["ultra"] == Tolerance(0.2, 0.1)


def test_f16_outputs_use_the_f16_level() -> None:
    expected = np.array([1.0], dtype=np.float16)
    assert compare_one(expected, np.array([1.004], dtype=np.float16), "approximate").ok
    assert not compare_one(expected.astype(np.float32), np.array([1.004], dtype=np.float32), "approximate").ok


def test_resolve_tolerance_accepts_names_pairs_and_tolerances() -> None:
    assert resolve_tolerance("close") == Tolerance(1e-7, 1e-7, Tolerance(1e-3, 1e-3))
    assert resolve_tolerance((1e-5, 0)) == Tolerance(1e-5, 0)
    assert resolve_tolerance(Tolerance(0.5, 0.25)) == Tolerance(0.5, 0.25)


@pytest.mark.parametrize(
    "bad, message",
    [
        ("loose", "unknown check_io_tolerance 'loose'; use one of exact, approximate, close, very, super, ultra, approx"),
        ((1e-3,), "must be a preset name"),
        ((-1.0, 0.0), "atol must be a finite number >= 0"),
        ((0.0, math.nan), "rtol must be a finite number >= 0"),
    ],
)
def test_resolve_tolerance_rejects_bad_values(bad, message: str) -> None:
    with pytest.raises(ExportInputError, match=message.replace("(", r"\(")):
        resolve_tolerance(bad)


def test_within_tolerance_passes() -> None:
    expected = np.array([1.0, 100.0, 0.0], dtype=np.float32)
    got = expected + np.array([5e-5, 5e-3, 9e-5], dtype=np.float32)
    report = compare_one(expected, got)
    assert report.ok and report.message == ""
    assert report.max_abs == pytest.approx(5e-3, rel=1e-3)
    assert report.max_rel == pytest.approx(5e-5, rel=1e-2)


def test_beyond_tolerance_fails_and_shows_the_first_difference() -> None:
    expected = np.zeros((2, 2), dtype=np.float32)
    got = np.array([[0.0, 0.0], [0.5, 0.0]], dtype=np.float32)
    report = compare_one(expected, got, "super")
    assert not report.ok
    assert report.max_abs == 0.5 and report.max_rel == 0.0  # |expected| is never > 0
    assert report.message == "1 of 4 elements differ, first at [1, 0]: expected 0.0, got 0.5"


def test_exact_tolerance_needs_equal_values() -> None:
    expected = np.array([1.0, 2.0])
    assert compare_one(expected, expected.copy(), "exact").ok
    assert not compare_one(expected, np.nextafter(expected, 3.0), "exact").ok


def test_nan_equals_nan_but_not_a_number() -> None:
    expected = np.array([np.nan, 1.0], dtype=np.float32)
    assert compare_one(expected, expected.copy()).ok
    report = compare_one(expected, np.array([0.0, 1.0], dtype=np.float32))
    assert not report.ok and report.max_abs == math.inf


def test_infinities_must_match_exactly() -> None:
    expected = np.array([np.inf, -np.inf])
    assert compare_one(expected, expected.copy(), "super").ok
    assert not compare_one(expected, np.array([1e300, -np.inf]), "super").ok
    assert not compare_one(expected, np.array([np.inf, np.inf]), "super").ok


def test_shape_mismatch_fails_without_values() -> None:
    report = compare_one(np.zeros((2, 3)), np.zeros((3, 2)))
    assert not report.ok and report.max_abs is None
    assert report.message == "shape differs: expected [2, 3], got [3, 2]"


def test_integers_compare_exactly_whatever_the_tolerance() -> None:
    expected = np.array([10, 20, 30], dtype=np.int64)
    assert compare_one(expected, expected.copy(), "super").ok
    report = compare_one(expected, np.array([10, 21, 30], dtype=np.int64), "super")
    assert not report.ok and report.max_abs == 1.0
    assert "first at [1]: expected 20, got 21" in report.message


def test_integer_dtypes_must_match() -> None:
    report = compare_one(np.array([1, 2], dtype=np.int64), np.array([1, 2], dtype=np.int32))
    assert not report.ok and report.message == "dtype differs: expected int64, got int32"


def test_bool_outputs() -> None:
    expected = np.array([True, False])
    assert compare_one(expected, expected.copy()).ok
    assert not compare_one(expected, ~expected).ok
    assert not compare_one(expected, expected.astype(np.float32)).ok


def test_float_dtypes_may_differ_and_are_compared_in_float64() -> None:
    report = compare_one(np.array([0.1], dtype=np.float32), np.array([0.1], dtype=np.float16), "very")
    assert report.ok
    assert report.message == "dtypes differ (float32 vs float16), compared as float64"
    assert report.dtype_expected == "float32" and report.dtype_got == "float16"


def test_output_count_mismatch_is_reported_per_output() -> None:
    reports = compare_outputs(["a", "b"], [np.zeros(1), np.zeros(1)], [np.zeros(1)], "exact")
    assert [r.ok for r in reports] == [True, False]
    assert reports[1].message == "tract returned no such output" and reports[1].shape_got is None
    reports = compare_outputs(["a"], [np.zeros(1)], [np.zeros(1), np.ones(2)], "exact")
    assert reports[1].name == "output #1" and reports[1].message == "tract returned an extra output"


def test_format_report_is_one_line_per_output() -> None:
    reports = compare_outputs(
        ["logits", "mask"],
        [np.zeros((1, 4), dtype=np.float32), np.zeros(3, dtype=bool)],
        [np.full((1, 4), 0.25, dtype=np.float32), np.zeros(2, dtype=bool)],
        "close",
    )
    lines = format_report(reports).splitlines()
    assert lines[0].split() == ["output", "status", "max", "abs", "err", "max", "rel", "err", "shape"]
    assert lines[1].split() == ["logits", "MISMATCH", "0.25", "0", "[1,", "4]"]
    assert lines[2].split() == ["mask", "MISMATCH", "-", "-", "[3]", "->", "[2]"]


def test_check_close_returns_reports_when_all_pass() -> None:
    reports = check_close(["y"], [np.ones(3)], [np.ones(3) + 1e-6], "approx")
    assert [r.ok for r in reports] == [True]


def test_check_close_names_every_failing_output() -> None:
    expected = [np.ones(3, dtype=np.float32), np.ones(3, dtype=np.float32), np.arange(3)]
    got = [np.ones(3, dtype=np.float32), np.full(3, 1.5, dtype=np.float32), np.arange(3) + 1]
    with pytest.raises(TractCheckError) as error:
        check_close(["ok_out", "drift", "ids"], expected, got, (1e-3, 1e-3))
    message = str(error.value)
    assert "2 of 3 tract output(s) differ from PyTorch beyond the tolerance (atol=0.001, rtol=0.001)" in message
    assert "- drift: max abs err 0.5, max rel err 0.5" in message
    assert "- ids: max abs err 1, max rel err 1" in message
    assert "- ok_out" not in message


def test_sampled_outputs_are_compared_by_shape_and_dtype() -> None:
    drawn, other = np.array([0.1, 0.9], np.float32), np.array([0.7, 0.2], np.float32)
    exact, sampled = compare_outputs(["exact", "sampled"], [drawn, drawn], [other, other], "approx",
                                     sampled={"sampled"})
    assert not exact.ok and sampled.ok and sampled.message.startswith("random")
    assert "random" in format_report([sampled])
    (shape,) = compare_outputs(["s"], [drawn], [other[:1]], "approx", sampled={"s"})
    (dtype,) = compare_outputs(["s"], [drawn], [other.astype(np.float64)], "approx", sampled={"s"})
    assert not shape.ok and not dtype.ok and "dtype differs" in dtype.message
    with pytest.raises(TractCheckError, match="shape differs"):
        check_close(["s"], [drawn], [other[:1]], "approx", sampled={"s"})
