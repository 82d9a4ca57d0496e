"""fx2nnef's own lowerings, grouped by op family. Importing this package fills the default registry."""
from . import (attention, creation, distance, elementwise, floating, histogram, indexing, nn, polynomial, reduce,  # noqa: F401
               resample, scan, shape, statistics)
