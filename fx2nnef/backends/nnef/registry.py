"""The lowering registry: one function per ATen op, keyed by its qualified name.

    @lower("aten::add.Tensor")
    def aten_add(b, self, other, alpha=1):
        "add.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor"

Keys are `namespace::op[.overload]` strings as `OpOverload.name()` prints them (the
`.default` overload has no suffix). Parameter names follow the ATen schema, so arguments
bind by name. A user gets a private copy with `LoweringRegistry.from_default()` and adds
or overrides lowerings on it without touching the package.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable, Iterable

QUALIFIED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*::[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclasses.dataclass(frozen=True)
class Lowering:
    """A registered lowering: the ATen op it handles and the function that emits NNEF."""

    target: str
    fn: Callable
    registries: tuple[str, ...] = ()   # tract registries the emitted ops need


class LoweringRegistry:
    """A mapping from qualified ATen op names to Lowerings."""

    def __init__(self, lowerings: dict[str, Lowering] | None = None, *, allow_override: bool = True):
        self._lowerings: dict[str, Lowering] = dict(lowerings or {})
        self._allow_override = allow_override

    @classmethod
    def from_default(cls) -> "LoweringRegistry":
        """Return a user-modifiable copy of the default registry."""
        from . import lowerings  # noqa: F401  (fills the default registry)
        return cls(default_registry._lowerings)

    def register(self, targets: str | Iterable[str], fn: Callable, registries: Iterable[str] = ()) -> Callable:
        """Register `fn` for one or several targets and return it."""
        for target in [targets] if isinstance(targets, str) else targets:
            if not QUALIFIED_NAME.fullmatch(target) or target.endswith(".default"):
                raise ValueError(f"lowering target {target!r} must be 'namespace::op[.overload]' "
                                 "(the default overload has no suffix)")
            if target in self._lowerings and not self._allow_override:
                raise ValueError(f"{target} already has a lowering ({self._lowerings[target].fn.__name__})")
            self._lowerings[target] = Lowering(target, fn, tuple(registries))
        return fn

    def lower(self, targets: str | Iterable[str], *, registries: Iterable[str] = ()) -> Callable:
        """Decorator form of `register`."""
        return lambda fn: self.register(targets, fn, registries)

    def get(self, target: str) -> Lowering | None:
        return self._lowerings.get(target)

    def __contains__(self, target: str) -> bool:
        return target in self._lowerings

    def targets(self) -> list[str]:
        """Return every registered op name, sorted."""
        return sorted(self._lowerings)


default_registry = LoweringRegistry(allow_override=False)


def lower(targets: str | Iterable[str], *, registries: Iterable[str] = ()) -> Callable:
    """Register a lowering in the default registry (used by fx2nnef's own lowering modules)."""
    return default_registry.lower(targets, registries=registries)
