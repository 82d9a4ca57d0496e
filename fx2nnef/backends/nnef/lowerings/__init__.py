"""fx2nnef's own lowerings, grouped by op family. Importing this package fills the default registry."""
from . import (attention, compaction, creation, distance, elementwise, floating, histogram, indexing, nn,  # noqa: F401
               polynomial, quantized, recurrent, reduce, resample, scan, shape, special, spectral, statistics,
               strided)
