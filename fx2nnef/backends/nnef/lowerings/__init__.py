"""fx2nnef's own lowerings, grouped by op family. Importing this package fills the default registry."""
from . import (attention, compaction, creation, distance, elementwise, floating, histogram, indexing, linalg,  # noqa: F401
               nn, polynomial, reduce, resample, scan, shape, special, statistics, strided)
