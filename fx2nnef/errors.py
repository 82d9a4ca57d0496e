"""The fx2nnef error tree: every failure a user can meet is one of these, with a message that
says what went wrong and what to do instead."""
from __future__ import annotations


class FX2NNEFError(Exception):
    """Base class of every error fx2nnef raises on purpose."""


class ExportInputError(FX2NNEFError, ValueError):
    """The model's example inputs, names or target options are not usable as given."""


class CaptureError(FX2NNEFError):
    """torch.export could not capture the model (step 1: capture)."""


class PassError(FX2NNEFError):
    """A compiler pass failed or left an invalid graph (step 2: passes)."""


class UnsupportedOpError(FX2NNEFError):
    """The graph holds ops that have no NNEF lowering (step 3: lowering). Lists every one."""


class LoweringError(FX2NNEFError):
    """A lowering failed on a node it claims to support (step 3: lowering)."""


class InvalidGraphError(FX2NNEFError):
    """The NNEF graph breaks a rule of the NNEF dialect tract accepts (step 4: serialization)."""


class SerializationError(FX2NNEFError):
    """Writing the NNEF archive failed (step 4: serialization)."""


class TractCheckError(FX2NNEFError):
    """tract failed to load or run the archive, or its outputs differ from PyTorch (step 5: check)."""


class KhronosCheckError(FX2NNEFError):
    """The Khronos nnef parser rejected the archive, or the nnef_tools interpreter failed or its
    outputs differ from PyTorch (KhronosNNEF target, step 5: check)."""
