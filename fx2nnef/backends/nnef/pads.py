"""Zero pads folded into the convolutions they feed, on the finished NNEF graph.

A model that pads explicitly before a convolution (Hugging Face's MobileNetV2, EfficientNet and
MobileViT pad like TensorFlow's "same": `F.pad(x, (0, 1, 0, 1))` then `conv2d(padding=0)`) lowers
to `pad` then `conv(padding = [(0, 0), (0, 0)])`. tract folds the pair into one convolution when it
loads the archive; written folded, the archive has one statement less to parse and to declutter
per convolution (benchmarks/README.md "Load time"). No torch import.
"""
from __future__ import annotations

from .graph import Graph, Operation, Tensor

FLOAT_DTYPES = frozenset({"f16", "f32", "f64"})


def fold_zero_pads_into_convs(graph: Graph) -> int:
    """Fold each constant-zero `pad` of the spatial axes of a float tensor whose every use is the
    input of a `conv` with explicit constant padding into those convolutions' padding, and drop the
    `pad`. Return how many pads were folded."""
    outputs = {id(t) for t in graph.outputs}
    uses = graph.uses()
    folded: set[int] = set()
    for op in graph.operations:
        padded = op.outputs[0] if op.name == "pad" and len(op.outputs) == 1 else None
        if padded is None or id(padded) in outputs or not _is_zero_spatial_pad(op):
            continue
        convs = uses.get(id(padded), [])
        if not convs or not all(_takes_as_input_only(conv, padded) for conv in convs):
            continue
        spatial = op.attribs["padding"][2:]
        for conv in convs:
            conv.args = (op.args[0], *conv.args[1:])
            conv.attribs["padding"] = [(a + c, b + d) for (a, b), (c, d) in zip(conv.attribs["padding"], spatial)]
        folded.add(id(op))
    if folded:
        graph.operations[:] = [op for op in graph.operations if id(op) not in folded]
    return len(folded)


def _is_zero_spatial_pad(op: Operation) -> bool:
    """Tell whether `op` pads a float tensor with zeros on its spatial axes only (no crop)."""
    source = op.args[0] if op.args else None
    padding = op.attribs.get("padding")
    return (isinstance(source, Tensor) and source.dtype in FLOAT_DTYPES and source.quant is None
            and op.attribs.get("border", "constant") == "constant" and op.attribs.get("value", 0.0) == 0
            and isinstance(padding, list) and len(padding) >= 3 and padding[0] == padding[1] == (0, 0)
            and all(isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(p, int) and p >= 0 for p in pair)
                    for pair in padding))


def _takes_as_input_only(conv: Operation, tensor: Tensor) -> bool:
    """Tell whether `conv` is a convolution with explicit constant padding that reads `tensor` as its
    input and nowhere else."""
    padding = conv.attribs.get("padding")
    return (conv.name == "conv" and bool(conv.args) and conv.args[0] is tensor
            and conv.attribs.get("border", "constant") == "constant" and isinstance(padding, list) and len(padding) > 0
            and sum(t is tensor for t in conv.reads()) == 1)
