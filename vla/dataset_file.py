"""Opening and reading HDF5 dataset files so that a damaged file is reported in one line.

h5py reports damage as an OSError, KeyError, ValueError or RuntimeError that names neither the
file nor what was being read ("Can't synchronously read data (filter returned failure during
read)"). Every dataset reader (training's vla/data.py, the journal-aware sim/dataset.py,
sim/convert.py) opens files and reads their parts through these functions, so that such damage
becomes one DatasetError naming the file and the part (/data/demo_3/obs/agentview_image, /data,
/mask/valid), and a file that is not HDF5 at all, or whose superblock is damaged, is told apart
from a readable HDF5 file that is not a vla-stack dataset.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from vla.dataset_journal import PagedFile, journal_path, load_journal

H5PY_ERRORS = (OSError, KeyError, ValueError, RuntimeError)  # what h5py raises on a damaged file
RESTORE = "re-collect it or restore it from a backup"
_REQUIRED = object()  # attribute(): no default
DEMO_NAME = re.compile(r"^demo_(\d+)$")
VALID_EVERY = 10  # demo_9, demo_19, ... go to the validation split


class DatasetError(ValueError):
    """A dataset file is missing, damaged, or does not follow the layout (sim.dataset raises it too)."""


def require_file(path: str | Path) -> None:
    path = Path(path)
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "does not exist"
        raise DatasetError(f"{path} {what}: check the path or run `vla collect` first")


def open_hdf5(path: str | Path) -> h5py.File:
    """`path`'s last committed state, opened read-only without HDF5 file locking: a rollback journal left
    by a writer killed mid-episode (vla.dataset_journal) is overlaid, so every reader sees the same bytes."""
    require_file(path)
    path = Path(path)
    try:
        journal = load_journal(path, path.stat().st_ino)
    except OSError as error:
        raise DatasetError(f"{journal_path(path)} cannot be read ({error}): move it away to read {path} as last "
                           "written, or restore both from a backup") from error
    source = path if journal is None else PagedFile(os.open(path, os.O_RDONLY), journal[0], pages=journal[1])
    try:
        return h5py.File(source, "r", locking=False)
    except OSError as error:
        raise DatasetError(f"{path} cannot be opened as HDF5 (corrupt or not HDF5: {error}); check the path "
                           "or restore the file from a backup") from error


def demo_index(name: str) -> int:
    """i for a group name "demo_<i>"; ValueError otherwise."""
    match = DEMO_NAME.match(name)
    if match is None:
        raise ValueError(f"not a demo group name: {name!r} (expected 'demo_<i>')")
    return int(match.group(1))


def split_masks(demo_names: list[str]) -> tuple[list[str], list[str]]:
    """(train, valid) demo names as the writer records them in /mask: demo_9, demo_19, ... are valid."""
    is_valid = {n: demo_index(n) % VALID_EVERY == VALID_EVERY - 1 for n in demo_names}
    return [n for n in demo_names if not is_valid[n]], [n for n in demo_names if is_valid[n]]


def validation_names(path: str | Path, f: h5py.File) -> set[str]:
    """The validation split, one definition for every reader: the file's /mask/valid (robomimic's layout,
    which vla-stack's writer fills with split_masks), or split_masks of its demo names when it has none."""
    if has(path, f, "mask/valid"):
        return {n.decode() if isinstance(n, bytes) else str(n) for n in read(path, f, "mask/valid")}
    names = [n for n in member_names(path, data_group(path, f)) if DEMO_NAME.match(n)]
    return set(split_masks(names)[1])


@contextlib.contextmanager
def reading(path: str | Path, part: str) -> Iterator[None]:
    """Inside, an h5py error (a damaged file) becomes one DatasetError naming the file and `part`;
    DatasetErrors pass unchanged."""
    try:
        yield
    except DatasetError:
        raise
    except H5PY_ERRORS as error:
        raise DatasetError(f"{path}: {part} cannot be read ({type(error).__name__}: {error}); "
                           f"the file is damaged: {RESTORE}") from error


def member_name(node: h5py.Group, key: str) -> str:
    """The HDF5 path of node[key]: /data/demo_3/obs/agentview_image."""
    return f"{node.name.rstrip('/')}/{key}"


def has(path: str | Path, node: h5py.Group, key: str) -> bool:
    with reading(path, member_name(node, key)):
        return key in node


def child(path: str | Path, node: h5py.Group, key: str) -> h5py.Group | h5py.Dataset:
    """node[key]; a DatasetError naming it when it is missing or cannot be read."""
    if not has(path, node, key):
        raise DatasetError(f"{path}: {member_name(node, key)} is missing; pass files made by `vla collect`")
    with reading(path, member_name(node, key)):
        return node[key]


def read(path: str | Path, node: h5py.Group, key: str) -> np.ndarray:
    """Every value of the dataset node[key]."""
    dataset = child(path, node, key)
    with reading(path, dataset.name):
        return dataset[()]


def attribute(path: str | Path, node: h5py.Group | h5py.Dataset, name: str, default=_REQUIRED):
    """node.attrs[name] (`default` when it has none); a DatasetError naming it when it is required and missing
    or cannot be read."""
    with reading(path, f"{node.name} attribute {name!r}"):
        value = node.attrs.get(name, default)
    if value is _REQUIRED:
        raise DatasetError(f"{path}: {node.name} has no attribute {name!r}; pass files made by `vla collect`")
    return value


def member_names(path: str | Path, group: h5py.Group) -> list[str]:
    with reading(path, group.name):
        return list(group)


def data_group(path: str | Path, f: h5py.File) -> h5py.Group:
    """/data, telling a file without it (not a dataset) from one whose /data cannot be read (damaged)."""
    data = child(path, f, "data") if has(path, f, "data") else None
    if not isinstance(data, h5py.Group):
        raise DatasetError(f"{path} has no /data group: not a vla-stack dataset; pass files made by `vla collect`")
    return data
