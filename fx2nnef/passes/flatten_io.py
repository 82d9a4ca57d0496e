"""FlattenIOPass: the program's inputs and outputs become flat, named tensors."""
from __future__ import annotations

import re
import warnings
from typing import Sequence

import torch
import torch.utils._pytree as pytree
from torch.export import ExportedProgram
from torch.export.graph_signature import ExportGraphSignature, InputKind, OutputKind

from ..backends.nnef.graph import IDENTIFIER, LITERAL_PREFIX
from ..compiler.pass_base import Pass, PassResult
from ..compiler.program import INPUT_NAME, OUTPUT_NAMES, output_node, placeholders, replace, source_line
from ..errors import ExportInputError, UnsupportedOpError


def key_path(path: Sequence) -> str:
    """Join a pytree key path into an identifier-like name: ('a', 0) -> 'a_0'."""
    parts = []
    for key in path:
        value = getattr(key, "idx", getattr(key, "key", getattr(key, "name", key)))
        parts.append(re.sub(r"\W", "_", str(value)))
    return "_".join(parts)


def leaf_paths(spec: pytree.TreeSpec) -> list[str]:
    """Return the key path of every leaf of a pytree spec, in flattening order."""
    tree = pytree.tree_unflatten(list(range(spec.num_leaves)), spec)
    return [key_path(path) for path, _ in pytree.tree_flatten_with_path(tree)[0]]


def name_outputs(paths: list[str], names: Sequence[str] | None) -> list[str]:
    """Name flat outputs: one name each as is; one root name + key path; else key paths or output_<path>."""
    if names and len(names) == len(paths):
        return list(names)
    if names and len(names) == 1:
        return [names[0] + (f"_{p}" if p else "") for p in paths]
    if names:
        raise ExportInputError(f"output_names has {len(names)} names but the model returns {len(paths)} "
                               f"tensors ({', '.join(p or '<tensor>' for p in paths)}): give one name per "
                               "output or a single root name")
    if all(p and IDENTIFIER.fullmatch(p) and not LITERAL_PREFIX.match(p) for p in paths):
        return paths
    return ["output" + (f"_{p}" if p else "") for p in paths]


def check_names(kind: str, names: Sequence[str]) -> None:
    """Raise ExportInputError unless every name is a distinct NNEF identifier."""
    for name in names:
        if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
            raise ExportInputError(f"{kind} name {name!r} is not a valid NNEF identifier "
                                   "(letters, digits and '_', not starting with a digit)")
        if LITERAL_PREFIX.match(name):
            raise ExportInputError(f"{kind} name {name!r} starts like a literal (inf/true/false), which "
                                   f"tract's parser misreads: choose another name ({kind}_names=...)")
    dupes = sorted({n for n in names if list(names).count(n) > 1})
    if dupes:
        raise ExportInputError(f"duplicate {kind} names: {', '.join(dupes)}")


def _reject_side_effects(program: ExportedProgram) -> None:
    """Raise UnsupportedOpError naming the ops torch.export threads effect tokens through
    (e.g. linalg ops that check their input at run time): an NNEF graph has no side effects."""
    effects = [n for n in program.graph.nodes if n.op == "call_function" and
               getattr(n.target, "__name__", "") == "with_effects"]
    if effects:
        lines = "\n".join(f"  {n.args[1]}  at {source_line(n) or n.format_node()}" for n in effects)
        raise UnsupportedOpError(f"the model calls op(s) with side effects (run-time checks; not expressible: "
                                 f"an NNEF graph has no side effects):\n{lines}")


class FlattenIOPass(Pass):
    """After it, the program takes a flat tuple of tensors and returns a flat tuple of tensors;
    each user-input placeholder's meta[INPUT_NAME] is its NNEF name (every tensor input stays, used
    or not: the archive takes what the user declared), non-tensor inputs are gone (they are trace
    constants), and the output node's meta[OUTPUT_NAMES] names every output (at least one). An
    output may share an input's name only with `allow_same_io_names` and only when it returns that
    very input (NNEF names each tensor once)."""

    def __init__(self, input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
                 allow_same_io_names: bool = False):
        self.input_names = list(input_names) if input_names else None
        self.output_names = list(output_names) if output_names else None
        self.allow_same_io_names = allow_same_io_names

    def call(self, program: ExportedProgram) -> PassResult:
        graph = program.graph
        _reject_side_effects(program)
        specs, tensor_inputs = [], []
        for node, spec in placeholders(program):
            if spec.kind == InputKind.USER_INPUT and not isinstance(node.meta.get("val"), torch.Tensor):
                if node.users:
                    raise ExportInputError(f"input {node.name} is not a tensor but the graph reads it")
                graph.erase_node(node)
                continue
            if spec.kind == InputKind.USER_INPUT:
                tensor_inputs.append(node)
            specs.append(spec)
        names = self._input_names([n.name for n in tensor_inputs])
        for node, name in zip(tensor_inputs, names):
            node.meta[INPUT_NAME] = name
            if not node.users:
                warnings.warn(f"input {name} is not used by the model: it stays an input of the archive (a "
                              "runtime feeds every declared input)")

        out = output_node(program)
        values, out_specs = list(out.args[0]), program.graph_signature.output_specs
        mutated = [spec.target for spec in out_specs if spec.kind == OutputKind.USER_INPUT_MUTATION]
        if mutated:
            raise UnsupportedOpError(f"the model writes into its input(s) {', '.join(mutated)} in place: an NNEF graph "
                                     "cannot mutate its inputs; return a new tensor instead")
        paths = leaf_paths(program.call_spec.out_spec)
        keep = [i for i, v in enumerate(values)
                if isinstance(v, torch.fx.Node) and isinstance(v.meta.get("val"), torch.Tensor)]
        for i in set(range(len(values))) - set(keep):
            warnings.warn(f"output {paths[i] or i} = {values[i]!r} is not a tensor: it is left out of the NNEF graph")
        if not keep:
            raise ExportInputError(f"the model returns no tensor (its outputs: {values!r}): an NNEF graph needs at "
                                   "least one output tensor")
        out_names = name_outputs([paths[i] for i in keep], self.output_names)
        check_names("output", out_names)
        clash = set(out_names) & set(names)
        if clash and self.allow_same_io_names:
            by_name = dict(zip(names, tensor_inputs))
            clash = {name for name, i in zip(out_names, keep) if name in clash and values[i] is not by_name[name]}
            if clash:
                raise ExportInputError(f"output(s) {', '.join(sorted(clash))} share an input's name but are not that "
                                       "input returned as is: NNEF names each tensor once, so rename them")
            warnings.warn(f"inputs returned as outputs under the same name: {', '.join(sorted(set(out_names) & set(names)))}")
        if clash:
            raise ExportInputError(f"names used for both an input and an output: {', '.join(sorted(clash))} "
                                   "(allow_same_io_names=True permits it for an input returned as is)")
        out.args = (tuple(values[i] for i in keep),)
        out.meta[OUTPUT_NAMES] = out_names
        signature = ExportGraphSignature(specs, [out_specs[i] for i in keep])
        graph.lint()
        flat_in = pytree.tree_structure((tuple(range(len(names))), {}))
        flat_out = pytree.tree_structure(tuple(range(len(keep))))
        return PassResult(replace(program, graph_signature=signature, in_spec=flat_in, out_spec=flat_out,
                                          forward_arg_names=names), True)

    def _input_names(self, defaults: list[str]) -> list[str]:
        """Return the NNEF input names: the user's (checked) or the ones torch.export derived."""
        if self.input_names is None:
            check_names("input", defaults)
            return defaults
        if len(self.input_names) != len(defaults):
            raise ExportInputError(f"input_names has {len(self.input_names)} names but the model takes "
                                   f"{len(defaults)} tensor inputs ({', '.join(defaults)})")
        for i, (given, bound) in enumerate(zip(self.input_names, defaults)):
            if given != bound and given in defaults:
                raise ExportInputError(
                    f"input_names[{i}] is {given!r} but that position is bound to forward() parameter "
                    f"{bound!r} (while {given!r} is another parameter): the args are probably in the wrong "
                    "order (e.g. list(inputs.values()) of a dict in another order). Pass the dict itself "
                    "as args to bind inputs by name, or reorder args to forward()'s order")
        check_names("input", self.input_names)
        return list(self.input_names)
