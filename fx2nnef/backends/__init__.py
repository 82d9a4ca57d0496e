"""Backends: NNEF (lowering + serialization) and tract (running + checking)."""
