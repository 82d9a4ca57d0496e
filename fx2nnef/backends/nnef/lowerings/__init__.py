"""fx2nnef's own lowerings, grouped by op family. Importing this package fills the default registry."""
from . import attention, creation, elementwise, indexing, nn, reduce, scan, shape, special  # noqa: F401
