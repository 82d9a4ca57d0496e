"""fx2nnef's own lowerings, grouped by op family. Importing this package fills the default registry."""
from . import attention, creation, distance, elementwise, indexing, nn, reduce, resample, scan, shape, statistics  # noqa: F401
