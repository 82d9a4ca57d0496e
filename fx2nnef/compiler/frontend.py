"""Capture: bind the user's example inputs to `forward()` and run `torch.export` on the model.

The user's model is left as it was: its training flags are restored after capture, and
nothing else is touched (torch.export does not write parameters, buffers or hooks).
"""
from __future__ import annotations

import contextlib
import inspect
import logging
import threading
import traceback
import types
import warnings
from collections.abc import Generator, Iterator, Mapping, MappingView
from typing import Any

import torch
from torch.export import ExportedProgram

from ..errors import CaptureError, ExportInputError, FX2NNEFError

log = logging.getLogger("fx2nnef")

PRIMITIVES = (bool, int, float, str, type(None))
# torch.export keeps process-wide state (its mode stacks, patchers, module hierarchy), so two captures
# in two threads break each other ("Trying to pop empty mode stack"); and a model's training flags are
# shared. Capture, the passes and every eager run of a model under `eval_mode` hold this lock: exports
# in parallel threads are safe (their serialization and tract checks still run in parallel).
TORCH_LOCK = threading.RLock()
# torch.ao's eager / FX quantization: modules torch.export cannot capture (packed weights, observers)
TORCH_AO_QUANTIZATION = {
    "torch.ao.nn.quantized.dynamic": "dynamically quantized (torch.ao.quantization.quantize_dynamic)",
    "torch.ao.nn.quantized": "quantized with torch.ao's eager or FX mode (convert / convert_fx)",
    "torch.ao.nn.intrinsic.quantized": "quantized with torch.ao's eager or FX mode (convert / convert_fx)",
    "torch.ao.nn.qat": "prepared for torch.ao's quantization-aware training",
    "torch.ao.nn.intrinsic.qat": "prepared for torch.ao's quantization-aware training",
    "torch.ao.quantization.observer": "prepared for torch.ao's eager or FX quantization (observers)",
    "torch.ao.quantization.fake_quantize": "prepared for torch.ao's eager or FX quantization (fake quantizers)",
}
USE_PT2E = ("Quantize the float model with PT2E instead, then export the result: "
            "m = torch.export.export(float_model, args).module(); m = prepare_pt2e(m, X86InductorQuantizer()"
            ".set_global(get_default_x86_inductor_quantization_config())); m(*args); m = convert_pt2e(m) "
            "(from torchao.quantization.pt2e; pip install 'fx2nnef[quant]'; see docs/quantization.md)")


class TraceConstantWarning(UserWarning):
    """A Python value among the inputs is baked into the exported graph as a constant."""


def _normalize(value: Any, path: str) -> Any:
    """Turn mappings (BatchEncoding, ...) into dicts and check every leaf is exportable."""
    if isinstance(value, torch.Tensor):
        problem = _unsupported_tensor(value)
        if problem:
            raise ExportInputError(f"input '{path}' is {problem}")
        return value
    if isinstance(value, Mapping):
        return {k: _normalize(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_normalize(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, PRIMITIVES):
        warnings.warn(f"input '{path}' = {value!r} is a Python {type(value).__name__}: it becomes a "
                      "constant of the exported graph", TraceConstantWarning, stacklevel=4)
        return value
    if isinstance(value, (MappingView, Generator, Iterator, types.GeneratorType)):
        raise ExportInputError(f"input '{path}' is a {type(value).__name__}, which can be read only once "
                               "and has no names: pass a list/tuple, or the mapping itself")
    raise ExportInputError(f"input '{path}' has type {type(value).__name__}; fx2nnef takes tensors, "
                           "lists/tuples/dicts of tensors and Python scalars")


def _unsupported_tensor(t: torch.Tensor) -> str | None:
    """Say why an example input tensor cannot be exported, or return None when it can."""
    if t.is_nested:
        return ("a nested tensor: NNEF tensors are dense with one shape; pass a padded tensor (t.to_padded_tensor(0)) "
                "and a mask")
    if t.layout != torch.strided:
        return (f"a sparse tensor ({t.layout}): NNEF has no sparse tensors; pass t.to_dense()")
    if t.is_quantized:
        return (f"a quantized tensor ({t.dtype}): pass the float tensor (t.dequantize()); quantized weights are "
                "exported from the model, not from its inputs")
    if t.is_meta:
        return "on the meta device (it has no data to trace and check with): pass a CPU tensor with values"
    return None


def bind_inputs(model: torch.nn.Module, args: Any, kwargs: Mapping[str, Any] | None = None
                ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Bind example inputs to model.forward's parameters and return (args, kwargs) for capture.

    A tensor is the single positional input; a list/tuple holds positional inputs; a Mapping
    (dict, BatchEncoding, ...) is bound by name, whatever its order.
    """
    if not isinstance(model, torch.nn.Module):
        raise ExportInputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(args, (MappingView, Generator, Iterator)):
        hint = "list(...) of it in forward() order, or the dict itself" if isinstance(args, MappingView) else "a list or tuple"
        raise ExportInputError(f"args is a {type(args).__name__}: pass {hint} (a mapping is bound by name)")
    kwargs = dict(kwargs or {})
    if isinstance(args, torch.Tensor):
        args = (args,)
    elif isinstance(args, Mapping):
        kwargs = {**dict(args), **kwargs}
        args = ()
    elif isinstance(args, (list, tuple)):
        args = tuple(args)
    elif args is None:
        args = ()
    else:
        raise ExportInputError(f"args has type {type(args).__name__}: pass a tensor, a list/tuple of "
                               "inputs in forward() order, or a mapping of forward() parameter names")
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        params = signature.parameters
        takes_var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
        unknown = [k for k in kwargs if k not in params and not takes_var_kw]
        if unknown:
            raise ExportInputError(f"{type(model).__name__}.forward() has no parameter {', '.join(map(repr, unknown))}; "
                                   f"it takes {', '.join(p for p in params if params[p].kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD))}")
        try:
            signature.bind(*args, **kwargs)
        except TypeError as e:
            raise ExportInputError(f"the inputs do not fit {type(model).__name__}.forward{signature}: {e}") from None
        names = list(params)
        kwargs = {**{k: kwargs[k] for k in names if k in kwargs}, **kwargs}  # forward()'s order
        positional = [names[i] if i < len(names) else f"args[{i}]" for i in range(len(args))]
    else:
        positional = [f"args[{i}]" for i in range(len(args))]
    args = tuple(_normalize(a, name) for a, name in zip(args, positional))
    kwargs = {k: _normalize(v, k) for k, v in kwargs.items()}
    if signature is not None and _returns_a_cache(model, signature, args, kwargs):
        kwargs["use_cache"] = False
        log.info("%s: use_cache=False (an NNEF graph has no key/value cache state; pass use_cache "
                 "explicitly to choose)", type(model).__name__)
    return args, kwargs


def _returns_a_cache(model: torch.nn.Module, signature: inspect.Signature, args: tuple, kwargs: dict) -> bool:
    """Tell whether a Hugging Face model would return its key/value cache object (its config says
    use_cache and the inputs do not set it): such objects are no tensors and cannot be exported."""
    names = list(signature.parameters)
    return ("use_cache" in names and "use_cache" not in kwargs and len(args) <= names.index("use_cache")
            and bool(getattr(getattr(model, "config", None), "use_cache", False)))


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module, warn: bool = True):
    """Put every submodule in eval mode for the duration, then restore each training flag (holding
    TORCH_LOCK, so that no other thread sees or restores the flags meanwhile). The flags are set
    directly: a PT2E-converted module refuses `eval()`."""
    with TORCH_LOCK:
        flags = [(m, m.training) for m in model.modules()]
        if model.training and warn and not _is_pt2e(model):
            log.warning("model is in training mode: exporting it in eval mode (its flag is restored after)")
        for m, _ in flags:
            m.training = False
        try:
            yield
        finally:
            for m, flag in flags:
                m.training = flag


def _is_pt2e(model: torch.nn.Module) -> bool:
    """Tell whether `model` is a graph module made by PT2E quantization (convert_pt2e), whose
    training flag means nothing."""
    return isinstance(model, torch.fx.GraphModule) and any(
        n.op == "call_function" and getattr(n.target, "namespace", None) == "quantized_decomposed"
        for n in model.graph.nodes)


def user_frame(exc: BaseException) -> str:
    """Return the innermost traceback frame outside torch and fx2nnef as 'file:line: code'."""
    frames = traceback.extract_tb(exc.__traceback__)
    seen = exc
    while seen.__cause__ or seen.__context__:
        seen = seen.__cause__ or seen.__context__
        frames += traceback.extract_tb(seen.__traceback__)
    mine = [f for f in frames if "/torch/" not in f.filename and "/fx2nnef/" not in f.filename
            and "<frozen" not in f.filename and "/contextlib.py" not in f.filename]
    if not mine:
        return ""
    f = mine[-1]
    return f"{f.filename}:{f.lineno} in {f.name}: {f.line}"


@contextlib.contextmanager
def stack_traces(record: bool):
    """Tell torch.export whether to record each node's Python stack (node.meta["stack_trace"],
    which names the user's source line in errors) for the duration; recording costs about a
    third of the capture time of a 12-layer transformer."""
    saved = torch.fx.config.do_not_emit_stack_traces
    torch.fx.config.do_not_emit_stack_traces = saved or not record
    try:
        yield
    finally:
        torch.fx.config.do_not_emit_stack_traces = saved


def reject_torch_ao_quantization(model: torch.nn.Module) -> None:
    """Raise ExportInputError, saying to use PT2E, for a model quantized (or prepared) with torch.ao's
    eager, FX or dynamic quantization, which torch.export cannot capture."""
    for path, module in model.named_modules():
        where = type(module).__module__
        kind = next((v for k, v in TORCH_AO_QUANTIZATION.items() if where == k or where.startswith(k + ".")), None)
        if kind is None and isinstance(module, torch.fx.GraphModule):
            if any(n.op == "call_function" and n.target in (torch.quantize_per_tensor, torch.quantize_per_channel)
                   for n in module.graph.nodes):
                kind = "quantized with torch.ao's FX mode (convert_fx)"
        if kind is not None:
            raise ExportInputError(
                f"the model is {kind}: {type(module).__name__} at '{path or '<root>'}' is a torch.ao quantized "
                f"module that torch.export cannot capture. {USE_PT2E}")


def capture(model: torch.nn.Module, args: tuple, kwargs: dict, dynamic_shapes: Any = None,
            record_stack_traces: bool = True) -> ExportedProgram:
    """Run torch.export.export(strict=False) and turn any failure into a CaptureError. The trace
    runs under no_grad (an inference graph: the same graph, ~0.1 s sooner on ALBERT-base). A model
    quantized with torch.ao's eager/FX/dynamic modes is refused first (use PT2E)."""
    reject_torch_ao_quantization(model)
    with eval_mode(model), stack_traces(record_stack_traces), torch.no_grad():
        try:
            return torch.export.export(model, args, kwargs, dynamic_shapes=dynamic_shapes, strict=False)
        except FX2NNEFError:
            raise
        except Exception as e:
            reason = str(e).strip().splitlines()
            where = user_frame(e)
            message = (f"torch.export could not capture {type(model).__name__} (step 1/5: capture): "
                       f"{type(e).__name__}: {reason[0] if reason else ''}")
            if len(reason) > 1:
                message += "\n  " + "\n  ".join(reason[1:12])
            if where:
                message += f"\n  at {where}"
            if "cache_utils" in str(e):
                message += "\n  (a transformers cache object is no tensor: pass use_cache=False in the inputs)"
            raise CaptureError(message) from e
