"""Complex values as real (real, imaginary) pairs on a trailing axis of 2: the `fx2nnef::fft` and
`fx2nnef::stft` ops on that layout, and `PairWriter`, which writes real ops on pairs into an fx graph
(used by the legalize_complex pass and its rules)."""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch._dispatch.python import enable_python_dispatcher
from torch.export import ExportedProgram

from ..compiler.program import fake_mode
from ..errors import UnsupportedOpError

aten = torch.ops.aten

REAL = {torch.complex32: torch.float16, torch.complex64: torch.float32, torch.complex128: torch.float64}
# meta key: on a user-input placeholder, the complex dtype it had; on the output node, the positions of the
# outputs that were complex


PROVENANCE = ("stack_trace", "nn_module_stack", "source_fn_stack", "from_node")


def _computed(x: torch.Tensor) -> torch.Tensor:
    """Return pairs in a dtype torch's FFT computes in (half precision in f32)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


@torch.library.custom_op("fx2nnef::fft", mutates_args=())
def fft(self: torch.Tensor, dim: int, inverse: bool) -> torch.Tensor:
    """The discrete Fourier transform along `dim` of complex values stored as (real, imaginary) pairs on
    a trailing axis of 2, unnormalized both ways: tract_core_fft."""
    z = torch.view_as_complex(_computed(self).contiguous())
    out = torch.fft.ifft(z, dim=dim, norm="forward") if inverse else torch.fft.fft(z, dim=dim)
    return torch.view_as_real(out).to(self.dtype).clone()


@fft.register_fake
def _(self, dim, inverse):
    return torch.empty_like(self)


@torch.library.custom_op("fx2nnef::stft", mutates_args=())
def stft(self: torch.Tensor, dim: int, frame: int, stride: int, window: torch.Tensor | None) -> torch.Tensor:
    """The frames of `frame` values every `stride` along `dim` (frame index at `dim`, position in the frame
    at `dim + 1`), each times `window` (centred and zero-padded to `frame`) and Fourier-transformed, of
    complex values stored as (real, imaginary) pairs on a trailing axis of 2: tract_core_stft."""
    z = torch.view_as_complex(_computed(self).contiguous())
    frames = z.unfold(dim, frame, stride).movedim(-1, dim + 1)
    if window is not None:
        left = (frame - window.shape[0]) // 2
        padded = torch.nn.functional.pad(_computed(window), (left, frame - window.shape[0] - left))
        frames = frames * padded.reshape([frame] + [1] * (frames.dim() - dim - 2))
    return torch.view_as_real(torch.fft.fft(frames, dim=dim + 1)).to(self.dtype).clone()


@stft.register_fake
def _(self, dim, frame, stride, window):
    shape = list(self.shape)
    shape[dim:dim + 1] = [(shape[dim] - frame) // stride + 1, frame]
    return self.new_empty(shape)


FFT, STFT = torch.ops.fx2nnef.fft.default, torch.ops.fx2nnef.stft.default


def is_complex(value: Any) -> bool:
    """Tell whether a meta value is a complex tensor, or a list/tuple holding one."""
    if isinstance(value, (list, tuple)):
        return any(is_complex(v) for v in value)
    return isinstance(value, torch.Tensor) and value.dtype in REAL


def complex_node(x: Any) -> bool:
    return isinstance(x, torch.fx.Node) and is_complex(x.meta.get("val"))


def arguments(node: torch.fx.Node) -> dict[str, Any]:
    """Return a call's arguments by their schema names, defaults filled in."""
    found = {}
    for i, arg in enumerate(node.target._schema.arguments):
        if i < len(node.args):
            found[arg.name] = node.args[i]
        elif arg.name in node.kwargs:
            found[arg.name] = node.kwargs[arg.name]
        elif arg.has_default_value():
            found[arg.name] = arg.default_value
    return found


def is_number(x: Any) -> bool:
    return isinstance(x, (bool, int, float, complex))


class PairWriter:
    """Writes the real-pair form of complex nodes before them, keeping the map node -> pair node."""

    def __init__(self, program: ExportedProgram):
        self.program, self.graph, self.mode = program, program.graph, fake_mode(program)
        self.pairs: dict[torch.fx.Node, torch.fx.Node] = {}
        self.inputs: dict[torch.fx.Node, torch.Tensor] = {}   # complex placeholder -> its complex value
        self.known_parts: dict[torch.fx.Node, tuple] = {}      # pair node -> (real, imaginary) nodes
        self.node: torch.fx.Node | None = None

    # -- emitting ----------------------------------------------------------------------------
    def emit(self, target, *args, **kwargs) -> torch.fx.Node:
        """Insert `target(*args, **kwargs)` before the node being rewritten, with its meta computed."""
        with self.graph.inserting_before(self.node):
            new = self.graph.call_function(target, args, kwargs)
        meta = lambda a: a.meta["val"] if isinstance(a, torch.fx.Node) else a  # noqa: E731
        with self.mode, enable_python_dispatcher():  # symbolic sizes stay symbolic in C++ kernels' meta
            new.meta["val"] = target(*torch.fx.node.map_aggregate(args, meta),
                                     **torch.fx.node.map_aggregate(kwargs, meta))
        new.meta.update({k: self.node.meta[k] for k in PROVENANCE if k in self.node.meta})
        return new

    def call(self, target: torch._ops.OpOverload, named: dict[str, Any]) -> torch.fx.Node:
        """Emit `target` with arguments by schema name (positional, keyword-only ones as keywords)."""
        args, kwargs = [], {}
        for arg in target._schema.arguments:
            if arg.name in named:
                (kwargs.__setitem__(arg.name, named[arg.name]) if arg.kwarg_only else args.append(named[arg.name]))
        return self.emit(target, *args, **kwargs)

    # -- values --------------------------------------------------------------------------------
    def val(self, x: torch.fx.Node):
        """Return a node's value as the original program has it (complex for a complex input)."""
        return self.inputs.get(x, x.meta["val"])

    def rank(self, x: torch.fx.Node) -> int:
        return self.val(x).dim()

    @staticmethod
    def pval(p: torch.fx.Node):
        """Return the value of a node of the rewritten program (a pair node's has the trailing 2)."""
        return p.meta["val"]

    def is_complex(self, x: Any) -> bool:
        """Tell whether an fx value is a complex tensor of the original program (a pair node is not)."""
        return x in self.inputs or complex_node(x)

    def pair(self, x: Any, dtype: torch.dtype | None = None) -> torch.fx.Node:
        """Return the pair form of a complex node, or of a real tensor node (imaginary part 0)."""
        if x in self.pairs:
            return self.pairs[x]
        real = self.val(x)
        if dtype is not None and real.dtype != dtype:
            x = self.emit(aten._to_copy.default, x, dtype=dtype)
        return self.emit(aten.constant_pad_nd.default, self.emit(aten.unsqueeze.default, x, real.dim()), [0, 1], 0.0)

    def part(self, p: torch.fx.Node, index: int) -> torch.fx.Node:
        """Return the real (0) or imaginary (1) part of a pair node (a pair made here is not taken apart)."""
        if p not in self.known_parts:
            self.known_parts[p] = (None, None)
        known = self.known_parts[p][index]
        if known is None:
            known = self.emit(aten.select.int, p, self.pval(p).dim() - 1, index)
            self.known_parts[p] = tuple(known if k == index else v for k, v in enumerate(self.known_parts[p]))
        return known

    def parts(self, x: Any) -> tuple[Any, Any]:
        """Return (real, imaginary) of an operand: nodes for a complex node, (node, 0) for a real tensor
        node, numbers for a number."""
        if is_number(x):
            return complex(x).real, complex(x).imag
        if x in self.pairs:
            p = self.pairs[x]
            return self.part(p, 0), self.part(p, 1)
        return x, 0.0

    def make(self, re: Any, im: Any) -> torch.fx.Node:
        """Return the pair node of two real parts (nodes or numbers), broadcast to one shape."""
        nodes = [x for x in (re, im) if isinstance(x, torch.fx.Node)]
        with self.mode:
            shape = list(torch.broadcast_shapes(*[self.pval(x).shape for x in nodes]))
        parts = []
        for x in (re, im):
            if not isinstance(x, torch.fx.Node):
                x = self.emit(aten.full_like.default, nodes[0], x)
            if list(self.pval(x).shape) != shape:
                x = self.emit(aten.expand.default, x, shape)
            parts.append(x)
        pair = self.emit(aten.stack.default, parts, len(shape))
        self.known_parts[pair] = tuple(parts)
        return pair

    # -- real arithmetic on nodes and numbers (numbers folded) ---------------------------------------
    def add(self, x: Any, y: Any) -> Any:
        if is_number(y) and y == 0:
            return x
        if is_number(x):
            return x + y if is_number(y) else self.add(y, x)
        return self.emit(aten.add.Tensor, x, y)

    def neg(self, x: Any) -> Any:
        return -x if is_number(x) else self.emit(aten.neg.default, x)

    def sub(self, x: Any, y: Any) -> Any:
        if is_number(x) and x == 0:
            return self.neg(y)
        if is_number(x) and is_number(y):
            return x - y
        if is_number(x):
            return self.add(self.neg(y), x)
        return x if is_number(y) and y == 0 else self.emit(aten.sub.Tensor, x, y)

    def mul(self, x: Any, y: Any) -> Any:
        if is_number(x):
            x, y = y, x
        if is_number(y):
            if is_number(x):
                return x * y
            return 0.0 if y == 0 else x if y == 1 else self.emit(aten.mul.Tensor, x, y)
        return self.emit(aten.mul.Tensor, x, y)

    def div(self, x: Any, y: Any) -> Any:
        if is_number(y):
            return self.mul(x, 1.0 / y)
        return self.emit(aten.div.Tensor, x, y)

    # -- complex helpers -------------------------------------------------------------------------
    def norm2(self, re: Any, im: Any) -> Any:
        """Return re^2 + im^2."""
        return self.add(self.mul(re, re), self.mul(im, im))

    def scale(self, p: torch.fx.Node, sizes: list, normalization: int) -> torch.fx.Node:
        """Apply an FFT's normalization (0: none, 1: 1/sqrt(n), 2: 1/n, n the product of `sizes`)."""
        if normalization == 0:
            return p
        if not all(isinstance(s, int) for s in sizes):
            raise UnsupportedOpError("a normalized FFT along a dynamic axis: its scale must be known at export")
        n = math.prod(sizes)
        return self.mul(p, 1.0 / math.sqrt(n) if normalization == 1 else 1.0 / n)


Rule = Callable[[PairWriter, torch.fx.Node], torch.fx.Node]
