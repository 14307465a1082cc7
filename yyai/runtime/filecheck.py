"""Inspect a model file before Keras opens it: refuse what could reach outside it or explode.

* HDF5 (``.h5``, and the weights inside a ``.keras`` archive): external links,
  datasets stored in external files and virtual datasets are refused, since
  they make the loader read other files of the server.
* ``.keras`` archives: members with absolute or ``..`` paths, and archives
  whose uncompressed size exceeds the file-size cap (a zip bomb), are refused.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import h5py

from .errors import ModelLoadError

KERAS_WEIGHTS_MEMBER = "model.weights.h5"


def check_model_file(path: Path, *, max_bytes: int) -> None:
    """Raise ModelLoadError if the file at ``path`` holds anything a served model must not."""
    if path.suffix == ".h5":
        _check_hdf5(path, path)
    elif path.suffix == ".keras":
        _check_keras_archive(path, max_bytes)


def _check_keras_archive(path: Path, max_bytes: int) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelLoadError(path, f"not a valid .keras archive: {exc}") from exc
    with archive:
        members = archive.infolist()
        for member in members:
            name = member.filename
            if name.startswith("/") or ".." in Path(name).parts:
                raise ModelLoadError(path, f"the archive holds an unsafe path '{name}'")
        unpacked = sum(m.file_size for m in members)
        if unpacked > max_bytes:
            raise ModelLoadError(path, f"the archive unpacks to {unpacked} bytes; the limit is {max_bytes}")
        if KERAS_WEIGHTS_MEMBER in archive.namelist():
            _check_hdf5(io.BytesIO(archive.read(KERAS_WEIGHTS_MEMBER)), path)


def _check_hdf5(source, path: Path) -> None:
    """Walk every link of the HDF5 file without following any."""
    try:
        handle = h5py.File(source, "r")
    except OSError as exc:
        raise ModelLoadError(path, f"not a readable HDF5 file: {' '.join(str(exc).split())[:200]}") from exc
    with handle:
        problems: list[str] = []
        seen: set[int] = set()  # hard links can form cycles: visit each group once

        def visit(group: h5py.Group, prefix: str) -> None:
            if hash(group.id) in seen:
                return
            seen.add(hash(group.id))
            for name in group:
                link = group.get(name, getlink=True)
                full = f"{prefix}/{name}"
                if isinstance(link, h5py.ExternalLink):
                    problems.append(f"external link {full} -> {link.filename}")
                    continue
                if isinstance(link, h5py.SoftLink):
                    continue  # points inside this file; its target is visited on its own
                item = group.get(name)
                if isinstance(item, h5py.Dataset):
                    if item.external:
                        problems.append(f"dataset {full} is stored in external files")
                    elif item.is_virtual:
                        problems.append(f"dataset {full} is virtual (maps other files)")
                elif isinstance(item, h5py.Group):
                    visit(item, full)

        visit(handle, "")
    if problems:
        raise ModelLoadError(path, "refused: the HDF5 file reaches outside itself: " + "; ".join(problems[:3]))
