"""Write a debug bundle: everything needed to reproduce a failed tract check on another machine."""
from __future__ import annotations

import functools
import importlib.metadata
import json
import logging
import os
import platform
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from fx2nnef.backends.tract.runner import REGISTRY_SWITCHES, tract_version

logger = logging.getLogger(__name__)

_TARBALL_SUFFIXES = (".tgz", ".tar.gz")
_GZIP_MAGIC = b"\x1f\x8b"


def write_debug_bundle(
    bundle_path: str | os.PathLike,
    *,
    archive_path: str | os.PathLike | None = None,
    inputs: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    got: Mapping[str, np.ndarray] | None,
    ir_dumps: Mapping[str, str],
    error_text: str,
    extra: Mapping | None = None,
    registries: Iterable[str] = (),
    onnx_got: Mapping[str, np.ndarray] | None = None,
) -> Path | None:
    """Write the bundle as a .tgz (or a directory when the path has another suffix); None if that fails.

    The bundle documents an error that is about to be raised, so its own failure is only
    logged as a warning: it must never replace the original error.
    """
    try:
        fill = functools.partial(
            _fill,
            archive_path=None if archive_path is None else Path(archive_path),
            inputs=inputs,
            expected=expected,
            got=got,
            ir_dumps=ir_dumps,
            error_text=error_text,
            extra=extra,
            registries=tuple(registries),
            onnx_got=onnx_got,
        )
        return _write_atomically(Path(bundle_path), fill)
    except Exception:  # whatever went wrong, the original error must still be raised
        logger.warning("could not write the debug bundle %s", bundle_path, exc_info=True)
        return None


def _fill(
    directory: Path,
    *,
    archive_path: Path | None,
    inputs: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    got: Mapping[str, np.ndarray] | None,
    ir_dumps: Mapping[str, str],
    error_text: str,
    extra: Mapping | None,
    registries: tuple[str, ...],
    onnx_got: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write every member of the bundle into `directory`."""
    model_name = _copy_archive(archive_path, directory)
    _write_npz(directory / "inputs.npz", inputs)
    _write_npz(directory / "expected.npz", expected)
    if got is not None:
        _write_npz(directory / "got.npz", got)
    if onnx_got is not None:
        _write_npz(directory / "onnx_got.npz", onnx_got)
    _write_ir_dumps(directory / "ir", ir_dumps)
    (directory / "error.txt").write_text(error_text)
    (directory / "versions.json").write_text(json.dumps(_versions(), indent=2) + "\n")
    if extra is not None:
        (directory / "extra.json").write_text(json.dumps(extra, indent=2, default=str) + "\n")
    (directory / "README.txt").write_text(_readme(directory, model_name, registries))


def _write_atomically(bundle_path: Path, fill: Callable[[Path], None]) -> Path:
    """Fill a temporary directory next to `bundle_path`, then move it (or its .tgz) into place."""
    bundle_path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{bundle_path.name}.", dir=bundle_path.parent))
    try:
        fill(staging)
        if bundle_path.name.endswith(_TARBALL_SUFFIXES):
            _publish_tarball(staging, bundle_path)
        else:
            _publish_directory(staging, bundle_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return bundle_path


def _publish_tarball(staging: Path, bundle_path: Path) -> None:
    """Pack `staging` under a top directory named after the bundle, and rename it to `bundle_path`."""
    top = _strip_suffix(bundle_path.name)
    handle, partial = tempfile.mkstemp(prefix=f".{bundle_path.name}.", suffix=".partial", dir=bundle_path.parent)
    os.close(handle)
    try:
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(staging, arcname=top)
        os.replace(partial, bundle_path)
    finally:
        Path(partial).unlink(missing_ok=True)


def _publish_directory(staging: Path, bundle_path: Path) -> None:
    """Rename `staging` to `bundle_path`, replacing a previous bundle there."""
    if not bundle_path.exists():
        os.replace(staging, bundle_path)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{bundle_path.name}.old.", dir=bundle_path.parent))
    os.replace(bundle_path, trash / "previous")
    os.replace(staging, bundle_path)
    shutil.rmtree(trash, ignore_errors=True)


def _strip_suffix(name: str) -> str:
    """Return `name` without its .tgz / .tar.gz suffix."""
    for suffix in _TARBALL_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _copy_archive(archive_path: Path | None, directory: Path) -> str | None:
    """Copy the NNEF archive into the bundle; return its name there (None when there is none)."""
    if archive_path is None:
        return None
    if archive_path.is_dir():
        shutil.copytree(archive_path, directory / "model")
        return "model"
    with archive_path.open("rb") as archive:
        gzipped = archive.read(2) == _GZIP_MAGIC
    name = "model.nnef.tgz" if gzipped else "model.nnef.tar"
    shutil.copyfile(archive_path, directory / name)
    return name


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write `arrays` to an .npz in their order; any name is a valid key (np.savez reserves some)."""
    with zipfile.ZipFile(path, "w") as npz:
        for name, array in arrays.items():
            with npz.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)


def _write_ir_dumps(directory: Path, ir_dumps: Mapping[str, str]) -> None:
    """Write each IR dump to `<NN>_<pass>.txt`, numbered in the order given."""
    directory.mkdir()
    for index, (pass_name, text) in enumerate(ir_dumps.items()):
        safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", pass_name)
        (directory / f"{index:02d}_{safe_name}.txt").write_text(text)


def _versions() -> dict[str, str | None]:
    """Return the versions that matter to reproduce a tract run (torch is not imported)."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "tract": tract_version(),
        "tract_python_package": _distribution_version("tract"),
        "torch": _distribution_version("torch"),
        "fx2nnef": _distribution_version("fx2nnef"),
    }


def _distribution_version(name: str) -> str | None:
    """Return the installed version of the distribution `name`, or None if it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _loader_code(registries: Iterable[str]) -> str:
    """Return the Python expression that builds a tract NNEF loader with `registries` enabled."""
    methods = dict.fromkeys(REGISTRY_SWITCHES.get(name) for name in registries)
    return "tract.nnef()" + "".join(f".{method}()" for method in methods if method)


def reproduce_command(model_name: str, registries: Iterable[str]) -> str:
    """Return a shell command, run in the bundle, that runs the model and prints the error per output."""
    code = (
        f"import tract, numpy as np; m = {_loader_code(registries)}.load('{model_name}').into_runnable(); "
        "i = np.load('inputs.npz'); e = np.load('expected.npz'); "
        "o = [t.to_numpy() for t in m.run([i[k] for k in i.files])]; "
        "[print(k, a.shape, a.dtype, 'max abs err', np.abs(a.astype('f8') - e[k].astype('f8')).max(initial=0)) "
        "for k, a in zip(e.files, o)]"
    )
    return f'python -c "{code}"'


_MEMBER_DESCRIPTIONS = {
    "model": "the exported NNEF archive (a directory), as tract loads it",
    "model.nnef.tgz": "the exported NNEF archive, as tract loads it",
    "model.nnef.tar": "the exported NNEF archive, as tract loads it",
    "inputs.npz": "the example inputs, in the order of the graph inputs",
    "expected.npz": "the outputs of the PyTorch model",
    "got.npz": "the outputs tract returned",
    "onnx_got.npz": "the outputs of the torch.onnx.export model in tract (check_io_onnx)",
    "ir": "the program after each compiler pass, in order",
    "error.txt": "the error fx2nnef raised",
    "versions.json": "python, platform, numpy, tract and torch versions",
    "extra.json": "more context from the exporter",
}


def _readme(directory: Path, model_name: str | None, registries: tuple[str, ...]) -> str:
    """Return README.txt: what each member of `directory` is and how to reproduce the tract run."""
    listing = "\n".join(
        f"  {name:<16} {what}" for name, what in _MEMBER_DESCRIPTIONS.items() if (directory / name).exists()
    )
    if model_name is None:
        how = "The archive was not written, so there is nothing to run: see error.txt and ir/."
    else:
        how = (
            "Reproduce the tract run from this directory, with the tract version in versions.json\n"
            "(it prints each output's shape, dtype and max abs error against expected.npz):\n\n"
            f"  {reproduce_command(model_name, registries)}"
        )
    return f"fx2nnef debug bundle for a failed tract check\n\n{listing}\n\n{how}\n"
