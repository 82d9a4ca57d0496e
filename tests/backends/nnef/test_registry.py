"""The default registry: every lowering takes the argument names of every ATen schema it is registered for."""
import inspect

import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401  (defines the quantized_decomposed:: ops lowered too)
import torch.nn.modules.linear_cross_entropy  # noqa: F401  (defines the torch_nn:: custom ops lowered too)
import transformers.integrations.moe  # noqa: F401  (defines transformers::grouped_mm_fallback, lowered too)

from fx2nnef.backends.nnef.registry import LoweringRegistry


def _overload(name: str) -> torch._ops.OpOverload:
    """Return the OpOverload a qualified name ('aten::add.Tensor') designates."""
    namespace, rest = name.split("::")
    op, _, overload = rest.partition(".")
    return getattr(getattr(getattr(torch.ops, namespace), op), overload or "default")


def test_lowerings_bind_every_schema_argument_by_name():
    registry = LoweringRegistry.from_default()
    mismatches = []
    for name in registry.targets():
        params = inspect.signature(registry.get(name).fn).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            continue
        missing = [a.name for a in _overload(name)._schema.arguments if a.name not in params]
        if missing:
            mismatches.append(f"{name} -> {registry.get(name).fn.__name__} lacks {missing}")
    assert not mismatches, "\n".join(mismatches)
