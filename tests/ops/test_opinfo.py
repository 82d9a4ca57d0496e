"""OpInfo-driven operator tests: every entry of opinfo_table.py, on its first samples, through tract."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

import opinfo_harness as h  # noqa: E402
from opinfo_table import DEFAULT_EXTENDED, DTYPE_XFAIL, EXTENDED, TABLE  # noqa: E402

SAMPLES = 1  # per entry and dtype in the default run (each takes ~1-2 s); the benchmark sweeps more


def _cases():
    for name, spec in TABLE.items():
        for dtype in spec.dtypes:
            marks = []
            if spec.skip:
                marks.append(pytest.mark.skip(reason=spec.skip))
            elif spec.xfail or (name, dtype) in DTYPE_XFAIL:
                marks.append(pytest.mark.xfail(reason=spec.xfail or DTYPE_XFAIL[name, dtype], strict=True))
            if dtype in EXTENDED and name not in DEFAULT_EXTENDED:
                marks.append(pytest.mark.slow)
            yield pytest.param(name, dtype, marks=marks, id=f"{name}-{str(dtype).replace('torch.', '')}")


@pytest.mark.parametrize("name,dtype", list(_cases()))
def test_opinfo(name, dtype):
    opinfo = h.op_db()[name]
    if dtype not in opinfo.supported_dtypes("cpu"):
        pytest.skip(f"{name} does not support {dtype}")
    spec = TABLE[name]
    results = h.run_entry(opinfo, dtypes=(dtype,), limit=SAMPLES, tolerance=spec.tolerance,
                          statistical=bool(spec.statistical))
    status = h.entry_status([o for _, o in results])
    if status.category in h.EXCLUDED:
        pytest.skip(f"no sample torch.export can capture: {status.message}")
    assert status.category == h.PASSED, f"{status.category}: {status.message}"


def test_not_expressible_error_gives_the_reason(tmp_path):
    import fx2nnef

    class Sparse(torch.nn.Module):
        def forward(self, x):
            return x.to_sparse()

    with pytest.raises(fx2nnef.errors.UnsupportedOpError, match="sparse tensors have no NNEF representation"):
        fx2nnef.export_model_to_nnef(Sparse(), (torch.ones(3),), tmp_path / "m")


def test_op_support_doc_is_up_to_date():
    sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
    import gen_op_support
    assert gen_op_support.main(["--check"]) == 0, "run: python scripts/gen_op_support.py"
