"""The NNEF backend: lowering registry, lowerings, graph model, validator and serializer."""
