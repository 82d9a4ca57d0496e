"""The passes, one per file. Each establishes the invariant its docstring states."""
from .decompose import DecomposePass
from .flatten_io import FlattenIOPass
from .fold_primitives import FoldPrimitivesPass
from .legalize_dtypes import LegalizeDtypesPass

__all__ = ["DecomposePass", "FlattenIOPass", "FoldPrimitivesPass", "LegalizeDtypesPass"]
