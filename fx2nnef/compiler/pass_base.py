"""The pass interface and the pass manager.

A pass maps an ExportedProgram to a `PassResult(program, modified)`. A plain function
`fn(program) -> program | PassResult` is a pass too. The manager runs passes in order,
checks the graph after each one, keeps the IR text after each one and names the failing
pass, and the ones before it, in its error.
"""
from __future__ import annotations

import abc
import dataclasses
import logging
import time
from pathlib import Path
from typing import Callable, Sequence, Union

import torch
from torch.export import ExportedProgram

from ..errors import FX2NNEFError, PassError

log = logging.getLogger("fx2nnef")


@dataclasses.dataclass(frozen=True)
class PassResult:
    """What a pass returns: the rewritten program and whether it changed anything."""

    program: ExportedProgram
    modified: bool


class Pass(abc.ABC):
    """Base of the passes. A subclass's docstring states the invariant it establishes."""

    @property
    def name(self) -> str:
        return type(self).__name__

    def __call__(self, program: ExportedProgram) -> PassResult:
        self.requires(program)
        result = self.call(program)
        self.ensures(result.program)
        return result

    @abc.abstractmethod
    def call(self, program: ExportedProgram) -> PassResult:
        """Rewrite the program."""

    def requires(self, program: ExportedProgram) -> None:
        """Check the pass's preconditions (optional)."""

    def ensures(self, program: ExportedProgram) -> None:
        """Check the invariant the pass establishes (optional)."""


PassLike = Union[Pass, Callable[[ExportedProgram], Union[ExportedProgram, PassResult]]]


def pass_name(p: PassLike) -> str:
    """Return the display name of a pass object or function."""
    return p.name if isinstance(p, Pass) else getattr(p, "__name__", type(p).__name__)


@dataclasses.dataclass
class PassRecord:
    """One step of a pipeline run: the pass, its time, whether it changed the IR, the IR after it
    (None when the run did not record IR: printing it costs ~50 ms per pass on a BERT)."""

    name: str
    seconds: float
    modified: bool
    ir: str | None


def verify(program: ExportedProgram) -> None:
    """Check the IR invariants every pass must keep: a well-formed graph and meta["val"] on used values."""
    program.graph.lint()
    for node in program.graph.nodes:
        if node.op in ("placeholder", "call_function") and node.users and "val" not in node.meta:
            raise AssertionError(f"node {node.format_node()} has no meta['val']")


def format_ir(program: ExportedProgram) -> str:
    """Return the printable IR of a program: its signature then its graph."""
    return f"{program.graph_signature}\n{program.graph_module.print_readable(print_output=False)}"


class PassManager:
    """Runs passes in order, verifying and recording the IR after each."""

    def __init__(self, passes: Sequence[PassLike], *, verify_each: bool = True,
                 dump_dir: str | Path | None = None, record_ir: bool = True):
        self.passes = list(passes)
        self.verify_each = verify_each
        self.dump_dir = Path(dump_dir) if dump_dir else None
        self.record_ir = record_ir or self.dump_dir is not None

    def run(self, program: ExportedProgram, records: list[PassRecord] | None = None) -> ExportedProgram:
        """Run every pass on the program and return the result; append a PassRecord per pass."""
        records = [] if records is None else records
        done: list[str] = []
        for p in self.passes:
            name = pass_name(p)
            start = time.perf_counter()
            try:
                result = p(program)
                if isinstance(result, ExportedProgram):
                    result = PassResult(result, True)
                if not isinstance(result, PassResult):
                    raise TypeError(f"a pass must return a PassResult or an ExportedProgram, got {type(result).__name__}")
                if self.verify_each:
                    verify(result.program)
            except FX2NNEFError as e:
                e.add_note(f"in pass {name} (after {', '.join(done) or 'capture'})")
                raise
            except Exception as e:
                raise PassError(f"pass {name} failed after passes [{', '.join(done) or 'capture'}]: "
                                f"{type(e).__name__}: {e}") from e
            program = result.program
            seconds = time.perf_counter() - start
            records.append(PassRecord(name, seconds, result.modified, format_ir(program) if self.record_ir else None))
            log.info("pass %-24s %6.3fs %s", name, seconds, "modified" if result.modified else "unchanged")
            if self.dump_dir:
                self.dump_dir.mkdir(parents=True, exist_ok=True)
                (self.dump_dir / f"{len(done) + 1:02d}_{name}.txt").write_text(records[-1].ir)
            done.append(name)
        return program


def count_ops(program: ExportedProgram) -> dict[str, int]:
    """Count call_function nodes per target name (used by tests and benchmarks)."""
    counts: dict[str, int] = {}
    for node in program.graph.nodes:
        if node.op == "call_function":
            key = node.target.name() if isinstance(node.target, torch._ops.OpOverload) else str(node.target)
            counts[key] = counts.get(key, 0) + 1
    return counts
