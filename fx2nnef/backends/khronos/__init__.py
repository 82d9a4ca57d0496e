"""The Khronos backend: validate an archive with the `nnef` parser and run it with the `nnef_tools`
PyTorch interpreter (the KhronosNNEF target's check)."""
from fx2nnef.backends.khronos.checker import check, parse, run

__all__ = ["check", "parse", "run"]
