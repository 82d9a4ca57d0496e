"""fx2nnef's own lowerings, grouped by op family. Importing this package fills the default registry."""
from . import (attention, compaction, creation, distance, elementwise, floating, histogram, householder, indexing,  # noqa: F401
               jacobi, linalg, nn, polynomial, reduce, resample, scan, shape, special, statistics, strided)
