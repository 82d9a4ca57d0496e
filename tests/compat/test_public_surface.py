"""fx2nnef's public surface holds every name and parameter of torch_to_nnef's, in the same order."""
from __future__ import annotations

import dataclasses
import inspect

import fx2nnef
from compat import reference_surface as ref
from fx2nnef.backends.nnef.naming import SCHEMES


def positional_names(function) -> list[str]:
    """Return the names of the parameters that may be passed by position, in order."""
    return [p.name for p in inspect.signature(function).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def test_module_names():
    assert [name for name in ref.MODULE_NAMES if not hasattr(fx2nnef, name)] == []


def test_export_model_to_nnef_takes_the_reference_parameters_in_order():
    assert positional_names(fx2nnef.export_model_to_nnef)[:len(ref.EXPORT_MODEL_TO_NNEF)] == ref.EXPORT_MODEL_TO_NNEF


def test_tensor_exports_take_the_reference_parameters_in_order():
    assert positional_names(fx2nnef.export_tensors_to_nnef) == ref.EXPORT_TENSORS_TO_NNEF
    assert positional_names(fx2nnef.export_tensors_from_disk_to_nnef) == ref.EXPORT_TENSORS_FROM_DISK_TO_NNEF


def test_targets_take_the_reference_parameters_in_order():
    tract_fields = [f.name for f in dataclasses.fields(fx2nnef.TractNNEF) if not f.kw_only]
    assert tract_fields == ref.TRACT_NNEF
    khronos_fields = [f.name for f in dataclasses.fields(fx2nnef.KhronosNNEF)]
    assert khronos_fields[:len(ref.KHRONOS_NNEF)] == ref.KHRONOS_NNEF
    assert [m for m in ref.TRACT_NNEF_METHODS if not callable(getattr(fx2nnef.TractNNEF, m, None))] == []


def test_tolerance_enum_and_naming_schemes():
    assert {m.name: m.value for m in fx2nnef.TractCheckTolerance} == ref.TRACT_CHECK_TOLERANCE
    assert list(SCHEMES) == ref.NAMING_SCHEMES


def test_builders_return_changed_copies():
    target = fx2nnef.TractNNEF.latest()
    dynamic = target.with_dynamic_axes({"x": {0: "B"}})
    assert dynamic.dynamic_axes == {"x": {0: "B"}} and target.dynamic_axes is None
    assert target.with_check_io_tolerance(fx2nnef.TractCheckTolerance.ULTRA).check_io_tolerance == "ultra"
    assert target.with_specific_properties({"a": "b"}).specific_properties == {"a": "b"}
    assert target.specific_properties is None
    assert fx2nnef.TractNNEF.latest_version() == target.version
