"""The passes, one per file. Each establishes the invariant its docstring states."""
from .common_subexpression import CommonSubexpressionPass
from .decompose import DecomposePass
from .dedupe_constants import DedupeConstantsPass
from .flatten_io import FlattenIOPass
from .fold_primitives import FoldPrimitivesPass
from .fuse_conv_batch_norm import FuseConvBatchNormPass
from .fuse_quantized_ops import FuseQuantizedOpsPass
from .legalize_complex import LegalizeComplexPass
from .legalize_dtypes import LegalizeDtypesPass
from .quantize_weights import QuantizeWeightsPass
from .roll_cell_loops import RollCellLoopsPass

__all__ = ["CommonSubexpressionPass", "DecomposePass", "DedupeConstantsPass", "FlattenIOPass", "FoldPrimitivesPass",
           "FuseConvBatchNormPass", "FuseQuantizedOpsPass", "LegalizeComplexPass", "LegalizeDtypesPass",
           "QuantizeWeightsPass", "RollCellLoopsPass"]
