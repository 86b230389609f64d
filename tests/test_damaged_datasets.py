"""Damaged dataset files: every command that reads them answers in one line naming the file and what
cannot be read (training's loader, vla/data.py, and the journal-aware reader, sim/dataset.py)."""

import re
import shutil

import h5py
import numpy as np
import pytest
from test_vla_model import SIZE, SMALL, data_file  # noqa: F401  (fixture)

from sim.dataset import open_dataset, read_episode
from vla.cli import main
from vla.data import load_demos

DAMAGED_IMAGE = "/data/demo_1/obs/agentview_image"


def _copy(data_file, tmp_path, name: str):
    path = tmp_path / name
    shutil.copyfile(data_file, path)
    return path


def _overwrite(path, offset: int, length: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset:offset + length] = b"\xab" * length
    path.write_bytes(bytes(raw))


def _object_header(path, name: str) -> int:
    with h5py.File(path, "r") as f:
        return h5py.h5o.get_info(f[name].id).addr


@pytest.fixture
def bit_rotted(data_file, tmp_path):  # noqa: F811
    """The dataset with bytes overwritten inside one compressed frame of demo_1's agentview images."""
    path = _copy(data_file, tmp_path, "rotted.hdf5")
    with h5py.File(path, "r") as f:
        frame = f[DAMAGED_IMAGE].id.get_chunk_info(2)
    _overwrite(path, frame.byte_offset + 10, 64)
    return path


@pytest.fixture
def bad_superblock(data_file, tmp_path):  # noqa: F811
    path = _copy(data_file, tmp_path, "superblock.hdf5")
    _overwrite(path, 0, 8)
    return path


@pytest.fixture
def unreadable_data_group(data_file, tmp_path):  # noqa: F811
    """/data is still listed in the root group, but its object header is garbage."""
    path = _copy(data_file, tmp_path, "no_data_header.hdf5")
    _overwrite(path, _object_header(path, "data"), 16)
    return path


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vla {command}: error: ") and "\n" not in err, err
    return err


def test_training_loader_names_the_file_and_the_unreadable_demo(bit_rotted):
    with pytest.raises(ValueError, match=rf"{re.escape(str(bit_rotted))}: {DAMAGED_IMAGE} cannot be read "
                                         r"\(OSError: .*\); the file is damaged"):
        load_demos([str(bit_rotted)], SMALL.data)


def test_vla_train_on_a_bit_rotted_file_answers_in_one_line(bit_rotted, tmp_path, capsys):
    assert main(["train", "--data", str(bit_rotted), "--out", str(tmp_path / "ck"), "--image-size", str(SIZE),
                 "--steps", "1", "--quiet"]) == 2
    assert f"{bit_rotted}: {DAMAGED_IMAGE} cannot be read" in _one_line_error(capsys, "train")


def test_replay_names_the_file_and_the_unreadable_demo(bit_rotted, capsys):
    with pytest.raises(ValueError, match=rf"{re.escape(str(bit_rotted))}: {DAMAGED_IMAGE} cannot be read"):
        read_episode(bit_rotted, "demo_1")
    assert main(["replay", str(bit_rotted), "--demo", "demo_1", "--quiet"]) == 2
    assert f"{bit_rotted}: {DAMAGED_IMAGE} cannot be read" in _one_line_error(capsys, "replay")


def test_a_damaged_superblock_is_not_hdf5_for_every_reader(bad_superblock, tmp_path, capsys):
    opened = rf"{re.escape(str(bad_superblock))} cannot be opened as HDF5 \(corrupt or not HDF5"
    with pytest.raises(ValueError, match=opened):
        load_demos([str(bad_superblock)], SMALL.data)
    with pytest.raises(ValueError, match=opened):
        open_dataset(bad_superblock)
    assert main(["train", "--data", str(bad_superblock), "--out", str(tmp_path / "ck"), "--quiet"]) == 2
    assert re.search(opened, _one_line_error(capsys, "train"))


def test_an_unreadable_data_group_is_damage_not_another_kind_of_file(unreadable_data_group):
    damaged = rf"{re.escape(str(unreadable_data_group))}: /data cannot be read \(KeyError: .*\); the file is damaged"
    with pytest.raises(ValueError, match=damaged):
        load_demos([str(unreadable_data_group)], SMALL.data)
    with pytest.raises(ValueError, match=damaged):
        open_dataset(unreadable_data_group)


def test_a_damaged_mask_is_named(data_file, tmp_path):  # noqa: F811
    path = _copy(data_file, tmp_path, "mask.hdf5")
    _overwrite(path, _object_header(path, "mask/valid"), 16)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: /mask/valid cannot be read"):
        load_demos([str(path)], SMALL.data)


def test_an_hdf5_file_without_data_is_not_a_dataset_for_training(tmp_path):
    path = tmp_path / "other.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))} has no /data group: not a vla-stack dataset"):
        load_demos([str(path)], SMALL.data)

