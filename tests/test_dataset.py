"""Tests for sim.dataset: layout contract, round trips, append, errors, crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import sim.dataset as dataset_mod
import vla.dataset_journal as journal
from sim.dataset import (
    DatasetError,
    DatasetWriter,
    demo_index,
    iter_episodes,
    open_dataset,
    read_episode,
)
from sim.episode import Episode
from vla.config import DataConfig
from vla.data import load_demos
from vla.dataset_file import validation_names

REPO = Path(__file__).resolve().parents[1]
ENV_ARGS = {"env_name": "color_cubes", "type": 1, "env_kwargs": {"camera_heights": 16}}


def make_episode(seed: int, img: int = 16, model_file: str | None = None) -> Episode:
    """Deterministic synthetic episode; T depends on the seed."""
    rng = np.random.default_rng(seed)
    t = 3 + seed % 5
    return Episode(
        seed=seed,
        instruction=f"put the red cube on the blue cube #{seed}",
        goal={"pick": "red", "place": "blue", "pos": [0.1, 0.2, float(seed)]},
        actions=rng.standard_normal((t, 7)).astype(np.float32),
        observations={
            "agentview_image": rng.integers(0, 256, (t, img, img, 3), dtype=np.uint8),
            "robot0_joint_pos": rng.standard_normal((t, 7)),
            "robot0_gripper_qpos": rng.standard_normal((t, 2)),
        },
        states=rng.standard_normal((t, 1 + 9 + 8)),
        rewards=np.linspace(0.0, 1.0, t),
        dones=(np.arange(t) == t - 1).astype(np.int64),
        subtasks=["reach", "grasp", "lift", "place", "release", "done", "done"][:t],
        model_file=model_file if model_file is not None else f"<mujoco model='m{seed}'/>",
        success=seed % 2 == 0,
        extra_attrs={"expert": "scripted", "noise": 0.05},
    )


def assert_episode_equal(a: Episode, b: Episode) -> None:
    for name in ("seed", "instruction", "goal", "model_file", "success", "subtasks", "extra_attrs"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("actions", "states", "rewards", "dones"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.observations.keys() == b.observations.keys()
    for key in a.observations:
        np.testing.assert_array_equal(a.observations[key], b.observations[key], err_msg=key)
        assert a.observations[key].dtype == b.observations[key].dtype


def write_n(path: Path, n: int, start: int = 0, append: bool = False) -> list[str]:
    """Write episodes with seeds start..start+n-1; return their demo names."""
    with DatasetWriter(path, "color_cubes", ENV_ARGS, append=append) as w:
        return [w.write(make_episode(s)) for s in range(start, start + n)]


def test_demo_index():
    assert demo_index("demo_0") == 0 and demo_index("demo_123") == 123
    with pytest.raises(ValueError):
        demo_index("mask")


def test_layout_and_attrs(tmp_path):
    path = tmp_path / "d.hdf5"
    assert write_n(path, 2) == ["demo_0", "demo_1"]
    eps = [make_episode(0), make_episode(1)]
    with h5py.File(path, "r") as f:
        data = f["data"]
        assert data.attrs["env"] == "color_cubes"
        assert json.loads(data.attrs["env_args"]) == ENV_ARGS
        assert data.attrs["total"] == sum(e.num_samples for e in eps)
        assert set(f.keys()) == {"data", "mask"}
        assert set(data.keys()) == {"demo_0", "demo_1"}
        g, ep = data["demo_1"], eps[1]
        t = ep.num_samples
        assert g.attrs["num_samples"] == t
        assert g.attrs["model_file"] == ep.model_file
        assert g.attrs["instruction"] == ep.instruction
        assert g.attrs["seed"] == 1
        assert json.loads(g.attrs["goal"]) == ep.goal
        assert g.attrs["expert"] == "scripted" and g.attrs["noise"] == 0.05
        assert g["actions"].shape == (t, 7) and g["actions"].dtype == np.float32
        assert g["states"].shape == (t, 18) and g["states"].dtype == np.float64
        assert g["rewards"].shape == (t,) and g["dones"].shape == (t,)
        assert h5py.check_string_dtype(g["subtasks"].dtype).encoding == "utf-8"
        assert list(g["subtasks"].asstr()[()]) == ep.subtasks
        img = g["obs/agentview_image"]
        assert img.shape == (t, 16, 16, 3) and img.dtype == np.uint8
        assert img.compression == "gzip" and img.chunks == (1, 16, 16, 3)
        assert g["obs/robot0_joint_pos"].shape == (t, 7)
        assert f["mask/train"].dtype.kind == "S"


def test_round_trip_and_iter(tmp_path):
    path = tmp_path / "d.hdf5"
    write_n(path, 3)
    info = open_dataset(path)
    assert info.env_name == "color_cubes" and info.env_args == ENV_ARGS
    assert info.demo_names == ("demo_0", "demo_1", "demo_2") and info.num_demos == 3
    assert info.total == sum(make_episode(s).num_samples for s in range(3))
    for s in range(3):
        assert_episode_equal(read_episode(path, f"demo_{s}"), make_episode(s))
    assert [e.seed for e in iter_episodes(path)] == [0, 1, 2]
    with pytest.raises(DatasetError, match="no demo 'demo_7'"):
        read_episode(path, "demo_7")


def test_success_attr_defaults_true(tmp_path):
    path = tmp_path / "d.hdf5"
    write_n(path, 2)
    with h5py.File(path, "r+") as f:
        del f["data/demo_1"].attrs["success"]
    assert read_episode(path, "demo_1").success is True


def test_masks_split(tmp_path):
    path = tmp_path / "d.hdf5"
    write_n(path, 12)
    write_n(path, 9, start=12, append=True)  # masks are rewritten on append
    with h5py.File(path, "r") as f:
        train = [n.decode() for n in f["mask/train"][()]]
        valid = [n.decode() for n in f["mask/valid"][()]]
    assert valid == ["demo_9", "demo_19"]
    assert train == [f"demo_{i}" for i in range(21) if i not in (9, 19)]


def test_append_continues_numbering(tmp_path):
    path = tmp_path / "d.hdf5"
    write_n(path, 2)
    w = DatasetWriter(path, "color_cubes", ENV_ARGS, append=True)
    assert w.num_demos == 2
    assert w.write(make_episode(5)) == "demo_2"
    assert w.num_demos == 3
    info = open_dataset(path)
    assert info.demo_names == ("demo_0", "demo_1", "demo_2")
    assert info.total == sum(make_episode(s).num_samples for s in (0, 1, 5))
    with h5py.File(path, "r") as f:
        assert f["data"].attrs["total"] == info.total


def test_append_refuses_other_env(tmp_path):
    path = tmp_path / "d.hdf5"
    write_n(path, 1)
    with pytest.raises(DatasetError, match="'color_cubes'.*choose another --out"):
        DatasetWriter(path, "stack_cubes", ENV_ARGS, append=True)


def test_refuses_existing_file_without_append(tmp_path):
    path = tmp_path / "d.hdf5"
    write_n(path, 1)
    before = path.read_bytes()
    with pytest.raises(DatasetError, match="already exists.*--append.*--out"):
        DatasetWriter(path, "color_cubes", ENV_ARGS)
    assert path.read_bytes() == before


def test_missing_parent_dir(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        DatasetWriter(tmp_path / "nope" / "d.hdf5", "color_cubes", ENV_ARGS)


def test_large_model_file_attr(tmp_path):
    path = tmp_path / "d.hdf5"
    big = "<mujoco>" + "<geom name='g' size='0.1'/>" * 12000 + "</mujoco>"
    assert len(big) > 300_000
    with DatasetWriter(path, "color_cubes", ENV_ARGS) as w:
        w.write(make_episode(0, model_file=big))
    assert read_episode(path, "demo_0").model_file == big


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "missing.hdf5")


def test_garbage_file(tmp_path):
    path = tmp_path / "garbage.hdf5"
    path.write_bytes(b"this is not an hdf5 file\n" * 100)
    with pytest.raises(DatasetError, match=r"garbage.hdf5 cannot be opened as HDF5 \(corrupt or not HDF5"):
        open_dataset(path)
    with pytest.raises(DatasetError, match="cannot be opened as HDF5"):
        DatasetWriter(path, "color_cubes", ENV_ARGS, append=True)


def test_truncated_file(tmp_path):
    path = tmp_path / "d.hdf5"
    write_n(path, 3)
    cut = tmp_path / "cut.hdf5"
    raw = path.read_bytes()
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match="cut.hdf5.*(truncated|corrupt)"):
        info = open_dataset(cut)
        for name in info.demo_names:
            read_episode(cut, name)


def test_not_a_dataset(tmp_path):
    path = tmp_path / "other.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(DatasetError, match="no /data group"):
        open_dataset(path)


def test_inconsistent_lengths(tmp_path):
    path = tmp_path / "d.hdf5"
    write_n(path, 2)
    with h5py.File(path, "r+") as f:
        del f["data/demo_1/obs/robot0_joint_pos"]
        f["data/demo_1/obs"].create_dataset("robot0_joint_pos", data=np.zeros((1, 7)))
    with pytest.raises(DatasetError, match="demo_1/obs/robot0_joint_pos has length 1"):
        open_dataset(path)


def test_leftover_temp_group_ignored_and_removed(tmp_path):
    path = tmp_path / "d.hdf5"
    write_n(path, 1)
    with h5py.File(path, "r+") as f:
        f.create_group("_incomplete_demo_1").create_dataset("actions", data=np.zeros((2, 7)))
    assert open_dataset(path).demo_names == ("demo_0",)
    assert write_n(path, 1, start=1, append=True) == ["demo_1"]
    with h5py.File(path, "r") as f:
        assert set(f.keys()) == {"data", "mask"}


def test_bad_episode_rejected_before_writing(tmp_path):
    path = tmp_path / "d.hdf5"
    ep = make_episode(0)
    ep.subtasks = ep.subtasks[:-1]
    with DatasetWriter(path, "color_cubes", ENV_ARGS) as w:
        with pytest.raises(ValueError, match="subtasks"):
            w.write(ep)
        assert w.num_demos == 0
    assert open_dataset(path).demo_names == ()


def test_exception_mid_write_leaves_file_unchanged(tmp_path):
    path = tmp_path / "d.hdf5"
    write_n(path, 2)
    before = path.read_bytes()
    ep = make_episode(2)
    ep.extra_attrs = {"bad": object()}  # h5py cannot store this; fails after datasets are written
    with DatasetWriter(path, "color_cubes", ENV_ARGS, append=True) as w:
        with pytest.raises(TypeError):
            w.write(ep)
        assert w.num_demos == 2
    assert path.read_bytes() == before
    assert not (tmp_path / "d.hdf5-journal").exists()


def test_second_writer_refused(tmp_path):
    path = tmp_path / "d.hdf5"
    write_n(path, 1)
    with journal.write_session(path, dataset_mod.LIBVER):
        assert (tmp_path / "d.hdf5-journal").exists()
        assert open_dataset(path).demo_names == ("demo_0",)  # readers still work
        with pytest.raises(DatasetError, match="being written by another process"):
            DatasetWriter(path, "color_cubes", ENV_ARGS, append=True).write(make_episode(1))
    assert not (tmp_path / "d.hdf5-journal").exists()


def _run_child(mode: str, path: Path) -> subprocess.Popen:
    pythonpath = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=pythonpath)
    return subprocess.Popen([sys.executable, __file__, mode, str(path)], cwd=REPO, env=env)


def _kill_in_commit_child(path: str) -> None:
    """Child process: write 2 demos, then die by SIGKILL inside the 3rd commit."""
    w = DatasetWriter(path, "color_cubes", ENV_ARGS)
    w.write(make_episode(0))
    w.write(make_episode(1))
    update = dataset_mod._update_summary

    def update_and_die(f):
        update(f)
        f.flush()  # metadata of /data, /mask and the superblock partly rewritten in place
        os.kill(os.getpid(), signal.SIGKILL)

    dataset_mod._update_summary = update_and_die
    w.write(make_episode(2))


def test_sigkill_inside_commit_is_rolled_back(tmp_path):
    path = tmp_path / "d.hdf5"
    proc = _run_child("--kill-in-commit", path)
    assert proc.wait(timeout=20) == -signal.SIGKILL
    assert (tmp_path / "d.hdf5-journal").exists()  # a "hot" journal is left behind
    info = open_dataset(path)  # readers see the last committed state
    assert info.demo_names == ("demo_0", "demo_1")
    for i in range(2):
        assert_episode_equal(read_episode(path, f"demo_{i}"), make_episode(i))
    train, valid = load_demos([str(path)], DataConfig(cameras=("agentview",), image_size=16, action_dim=7))
    assert [d.instruction for d in train] == [make_episode(i).instruction for i in range(2)] and not valid
    assert write_n(path, 1, start=2, append=True) == ["demo_2"]  # the writer rolls back first
    assert not (tmp_path / "d.hdf5-journal").exists()
    assert [e.seed for e in iter_episodes(path)] == [0, 1, 2]
    with h5py.File(path, "r") as f:  # plain h5py (robomimic) reads it too
        assert set(f["data"].keys()) == {"demo_0", "demo_1", "demo_2"}
        assert set(f.keys()) == {"data", "mask"}


def _crash_child(path: str) -> None:
    """Child process: write episodes forever (seed == demo index)."""
    w = DatasetWriter(path, "color_cubes", ENV_ARGS)
    seed = 0
    while True:
        w.write(make_episode(seed, img=64))
        seed += 1


@pytest.mark.parametrize("delay", [0.0, 0.013, 0.037])
def test_crash_safety_sigkill(tmp_path, delay):
    path = tmp_path / "crash.hdf5"
    proc = _run_child("--crash-child", path)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, "writer child died on its own"
            assert time.monotonic() < deadline, "child did not write 2 demos in time"
            try:
                if path.exists() and open_dataset(path).num_demos >= 2:
                    break
            except DatasetError:
                pass  # being written right now
            time.sleep(0.005)
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    info = open_dataset(path)
    assert info.num_demos >= 2
    assert info.demo_names == tuple(f"demo_{i}" for i in range(info.num_demos))
    for i, name in enumerate(info.demo_names):
        assert_episode_equal(read_episode(path, name), make_episode(i, img=64))
    # the file stays appendable after the crash
    assert write_n(path, 1, start=info.num_demos, append=True) == [f"demo_{info.num_demos}"]
    assert open_dataset(path).num_demos == info.num_demos + 1


if __name__ == "__main__":
    children = {"--crash-child": _crash_child, "--kill-in-commit": _kill_in_commit_child}
    children[sys.argv[1]](sys.argv[2])


def test_one_validation_split_for_every_reader(tmp_path):
    """The writer's /mask/valid when a file has one (robomimic's layout), else demo_9, demo_19, ...: training
    (vla.data) and offline error (DatasetInfo.valid_names) hold out the same demos."""
    path = tmp_path / "d.hdf5"
    write_n(path, 12)
    with h5py.File(path, "r") as f:
        assert validation_names(path, f) == {"demo_9"}
    assert open_dataset(path).valid_names == ("demo_9",)
    with h5py.File(path, "a") as f:  # another tool's file: no /mask, or its own choice of validation demos
        del f["mask"]
    with h5py.File(path, "r") as f:
        assert validation_names(path, f) == {"demo_9"}
    with h5py.File(path, "a") as f:
        f["mask/valid"] = np.array([b"demo_3", b"demo_4"])
    assert open_dataset(path).valid_names == ("demo_3", "demo_4")
