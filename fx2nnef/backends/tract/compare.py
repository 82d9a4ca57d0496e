"""Compare tract's outputs with PyTorch's, output by output, under a named or explicit tolerance."""
from __future__ import annotations

import math
import numbers
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from fx2nnef.errors import ExportInputError, TractCheckError


@dataclass(frozen=True)
class Tolerance:
    """An element passes when |got - expected| <= atol + rtol * |expected|; f16 outputs use `half`
    when it is set (tract's levels are looser for f16)."""

    atol: float
    rtol: float
    half: "Tolerance | None" = None

    def __str__(self) -> str:
        text = f"atol={self.atol:g}, rtol={self.rtol:g}"
        return text + (f" (f16: {self.half})" if self.half else "")

    def for_dtype(self, dtype: np.dtype) -> "Tolerance":
        """Return the tolerance that applies to outputs of `dtype`."""
        return self.half if self.half is not None and dtype == np.float16 else self


# Presets for the target option `check_io_tolerance`: tract's own approximation levels (tract's
# `--approx` and torch_to_nnef's TractCheckTolerance), without tract's outlier allowance.
TOLERANCES: dict[str, Tolerance] = {
    "exact": Tolerance(0.0, 0.0),
    "approximate": Tolerance(1e-4, 5e-4, Tolerance(1e-3, 5e-3)),
    "close": Tolerance(1e-7, 1e-7, Tolerance(1e-3, 1e-3)),
    "very": Tolerance(5e-2, 1e-2),
    "super": Tolerance(0.1, 0.05),
    "ultra": Tolerance(0.2, 0.1),
}
TOLERANCES["approx"] = TOLERANCES["approximate"]

ToleranceLike = str | tuple[float, float] | Tolerance


def resolve_tolerance(tolerance: ToleranceLike) -> Tolerance:
    """Turn a preset name, an (atol, rtol) pair or a Tolerance into a Tolerance."""
    if isinstance(tolerance, Tolerance):
        resolved = tolerance
    elif isinstance(tolerance, str):  # a TractCheckTolerance member is a str too
        tolerance = str(getattr(tolerance, "value", tolerance))
        if tolerance not in TOLERANCES:
            raise ExportInputError(
                f"unknown check_io_tolerance {tolerance!r}; use one of {', '.join(TOLERANCES)} "
                f"or an (atol, rtol) pair"
            )
        resolved = TOLERANCES[tolerance]
    elif isinstance(tolerance, tuple) and len(tolerance) == 2:
        resolved = Tolerance(*tolerance)
    else:
        raise ExportInputError(
            f"check_io_tolerance must be a preset name ({', '.join(TOLERANCES)}), an (atol, rtol) pair "
            f"or a Tolerance, not {tolerance!r}"
        )
    _validate(resolved)
    return resolved


def _validate(tolerance: Tolerance) -> None:
    """Raise ExportInputError unless atol and rtol are finite, non-negative numbers."""
    for field in ("atol", "rtol"):
        value = getattr(tolerance, field)
        if isinstance(value, (np.floating, np.integer)):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
            raise ExportInputError(f"check_io_tolerance {field} must be a finite number >= 0, not {value!r}")


@dataclass
class OutputReport:
    """How one tract output compares with the expected one."""

    name: str
    ok: bool
    max_abs: float | None
    max_rel: float | None
    shape_expected: tuple[int, ...] | None
    shape_got: tuple[int, ...] | None
    dtype_expected: str | None
    dtype_got: str | None
    message: str


def compare_outputs(
    names: Sequence[str],
    expected: Sequence[np.ndarray],
    got: Sequence[np.ndarray],
    tol: ToleranceLike,
    sampled: Collection[str] = (),
) -> list[OutputReport]:
    """Compare each output of `got` with the one of `expected` at the same position; the outputs
    named in `sampled` depend on random draws, whose values tract and PyTorch draw from different
    generators: only their shape and dtype are compared."""
    tolerance = resolve_tolerance(tol)
    count = max(len(names), len(expected), len(got))
    reports = []
    for index in range(count):
        name = names[index] if index < len(names) else f"output #{index}"
        reports.append(_compare_one(
            name,
            np.asarray(expected[index]) if index < len(expected) else None,
            np.asarray(got[index]) if index < len(got) else None,
            tolerance,
            name in sampled,
        ))
    return reports


def _compare_one(name: str, exp: np.ndarray | None, got: np.ndarray | None, tol: Tolerance,
                 sampled: bool = False) -> OutputReport:
    """Compare one output pair; either side may be missing."""
    report = OutputReport(
        name,
        ok=False,
        max_abs=None,
        max_rel=None,
        shape_expected=None if exp is None else exp.shape,
        shape_got=None if got is None else got.shape,
        dtype_expected=None if exp is None else str(exp.dtype),
        dtype_got=None if got is None else str(got.dtype),
        message="",
    )
    if exp is None or got is None:
        report.message = "tract returned no such output" if got is None else "tract returned an extra output"
    elif exp.shape != got.shape:
        report.message = f"shape differs: expected {list(exp.shape)}, got {list(got.shape)}"
    elif sampled:
        report.ok = exp.dtype == got.dtype
        report.message = RANDOM_NOTE if report.ok else f"dtype differs: expected {exp.dtype}, got {got.dtype}"
    elif _is_exact_kind(exp) or _is_exact_kind(got):
        _compare_exact(report, exp, got)
    else:
        _compare_float(report, exp, got, tol.for_dtype(got.dtype if got.dtype == np.float16 else exp.dtype))
    return report


RANDOM_NOTE = "random: values not compared (tract's generator is not PyTorch's); shape and dtype match"


def _is_exact_kind(array: np.ndarray) -> bool:
    """Return True for bool and integer arrays, which must match exactly."""
    return array.dtype.kind in "biu"


def _compare_exact(report: OutputReport, exp: np.ndarray, got: np.ndarray) -> None:
    """Fill `report` for bool/int outputs: same dtype and equal values."""
    if exp.dtype != got.dtype:
        report.message = f"dtype differs: expected {exp.dtype}, got {got.dtype}"
        return
    differs = exp != got
    abs_err = np.abs(got.astype(np.float64) - exp.astype(np.float64))
    _set_errors(report, np.where(differs, abs_err, 0.0), np.abs(exp.astype(np.float64)))
    report.ok = not differs.any()
    if not report.ok:
        report.message = _first_difference(differs, exp, got)


def _compare_float(report: OutputReport, exp: np.ndarray, got: np.ndarray, tol: Tolerance) -> None:
    """Fill `report` for float outputs, compared in float64; NaN equals NaN, inf only equals itself."""
    exp64, got64 = exp.astype(np.float64), got.astype(np.float64)
    same = (exp64 == got64) | (np.isnan(exp64) & np.isnan(got64))
    with np.errstate(invalid="ignore"):
        abs_err = np.nan_to_num(np.where(same, 0.0, np.abs(got64 - exp64)), nan=np.inf)
        within = np.isfinite(exp64) & (abs_err <= tol.atol + tol.rtol * np.abs(exp64))
    _set_errors(report, abs_err, np.abs(exp64))
    differs = ~(same | within)
    report.ok = not differs.any()
    notes = [] if exp.dtype == got.dtype else [f"dtypes differ ({exp.dtype} vs {got.dtype}), compared as float64"]
    if not report.ok:
        notes.insert(0, _first_difference(differs, exp, got))
    report.message = "; ".join(notes)


def _set_errors(report: OutputReport, abs_err: np.ndarray, exp_magnitude: np.ndarray) -> None:
    """Store the largest absolute error, and the largest relative one where |expected| > 0."""
    report.max_abs = float(abs_err.max(initial=0.0))
    usable = (exp_magnitude > 0) & np.isfinite(exp_magnitude)
    report.max_rel = float((abs_err[usable] / exp_magnitude[usable]).max(initial=0.0))


def _first_difference(differs: np.ndarray, exp: np.ndarray, got: np.ndarray) -> str:
    """Say how many elements differ and show the first one."""
    index = tuple(int(i) for i in np.argwhere(differs)[0])
    return (
        f"{int(differs.sum())} of {differs.size} elements differ, first at {list(index)}: "
        f"expected {exp[index].item()!r}, got {got[index].item()!r}"
    )


def format_report(reports: Sequence[OutputReport]) -> str:
    """Render the reports as a table: output, status, max abs err, max rel err, shape."""
    header = ("output", "status", "max abs err", "max rel err", "shape")
    rows = [header] + [_row(report) for report in reports]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def _row(report: OutputReport) -> tuple[str, str, str, str, str]:
    """Return the table cells of one report."""
    shape = _shape_text(report.shape_expected)
    if report.shape_got != report.shape_expected:
        shape += f" -> {_shape_text(report.shape_got)}"
    return (
        report.name,
        ("random" if report.message == RANDOM_NOTE else "ok") if report.ok else "MISMATCH",
        _error_text(report.max_abs),
        _error_text(report.max_rel),
        shape,
    )


def _shape_text(shape: tuple[int, ...] | None) -> str:
    """Return `[2, 3]`, or `missing` for an absent output."""
    return "missing" if shape is None else str(list(shape))


def _error_text(error: float | None) -> str:
    """Return an error in short scientific notation, or `-` when it was not computed."""
    return "-" if error is None else f"{error:.3g}"


def check_close(
    names: Sequence[str],
    expected: Sequence[np.ndarray],
    got: Sequence[np.ndarray],
    tol: ToleranceLike,
    sampled: Collection[str] = (),
) -> list[OutputReport]:
    """Compare the outputs (see compare_outputs) and return the reports; raise TractCheckError naming
    every failing output."""
    tolerance = resolve_tolerance(tol)
    reports = compare_outputs(names, expected, got, tolerance, sampled)
    failing = [report for report in reports if not report.ok]
    if failing:
        lines = [
            f"- {report.name}: max abs err {_error_text(report.max_abs)}, "
            f"max rel err {_error_text(report.max_rel)}: {report.message}"
            for report in failing
        ]
        raise TractCheckError(
            f"{len(failing)} of {len(reports)} tract output(s) differ from PyTorch beyond the tolerance "
            f"({tolerance}):\n" + "\n".join(lines) + "\n\n" + format_report(reports)
        )
    return reports
