"""fx2nnef's own lowerings, grouped by op family. Importing this package fills the default registry."""
from . import (attention, creation, distance, elementwise, indexing, nn, polynomial, reduce, resample, scan,  # noqa: F401
               shape, statistics)
