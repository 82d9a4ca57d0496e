"""fx2nnef's own lowerings, grouped by op family. Importing this package fills the default registry."""
from . import (advanced_indexing, attention, compaction, creation, data_sized, distance, elementwise, floating,  # noqa: F401
               histogram, indexing, nn, polynomial, quantized, random, recurrent, reduce, resample, scan, shape,
               special, spectral, statistics, strided)
