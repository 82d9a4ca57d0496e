"""fx2nnef: PyTorch -> NNEF for tract."""
