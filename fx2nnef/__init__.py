"""fx2nnef: export PyTorch models to NNEF for the tract inference engine, and prove it by running them.

    from fx2nnef import export_model_to_nnef, TractNNEF
    export_model_to_nnef(model, args, "model.nnef.tgz", TractNNEF(check_io=True))

Compiler engineers use the layers: `compile()` returns the program after each pass, passes
subclass `Pass`, and lowerings register on a `LoweringRegistry`.
"""
from .api import ExportReport, export_model_to_nnef
from .backends.nnef.registry import LoweringRegistry, lower
from .compiler.dynamic import DynamicDim
from .compiler.pass_base import Pass, PassManager, PassResult
from .compiler.pipeline import CompileResult, compile, default_passes
from .compiler.weights import compare_with_checkpoint
from .errors import (CaptureError, ExportInputError, FX2NNEFError, InvalidGraphError, KhronosCheckError,
                     LoweringError, PassError, SerializationError, TractCheckError, UnsupportedOpError)
from .targets import KhronosNNEF, TractCheckTolerance, TractFeatureFlag, TractNNEF
from .tensors import export_tensors_from_disk_to_nnef, export_tensors_to_nnef

__all__ = [
    "export_model_to_nnef", "export_tensors_to_nnef", "export_tensors_from_disk_to_nnef", "ExportReport",
    "TractNNEF", "TractCheckTolerance", "TractFeatureFlag", "KhronosNNEF", "DynamicDim", "compile", "CompileResult",
    "default_passes", "compare_with_checkpoint",
    "Pass", "PassResult", "PassManager", "LoweringRegistry", "lower",
    "FX2NNEFError", "ExportInputError", "CaptureError", "PassError", "UnsupportedOpError", "LoweringError",
    "InvalidGraphError", "SerializationError", "TractCheckError", "KhronosCheckError",
]
