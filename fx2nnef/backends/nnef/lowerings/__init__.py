"""fx2nnef's own lowerings, grouped by op family. Importing this package fills the default registry."""
from . import (attention, creation, distance, elementwise, floating, indexing, nn, polynomial, reduce, resample,  # noqa: F401
               scan, shape, statistics)
