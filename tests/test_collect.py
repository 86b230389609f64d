"""vla collect / replay through the command line, as a user runs them."""

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from sim.dataset import DatasetError, open_dataset, read_episode
from vla.cli import main

IMAGE = "48"


def _collect(out, *extra):
    return main(["collect", "--task", "pick-color", "--out", str(out), "--image-size", IMAGE, "--quiet", *extra])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "pick.hdf5"
    assert _collect(out, "--episodes", "2", "--seed", "20") == 0
    return out


def test_layout_matches_the_contract(dataset):
    info = open_dataset(dataset)
    assert info.env_name == "pick-color" and info.env_args["env_name"] == "ColorCubes"
    assert info.demo_names == ("demo_0", "demo_1")
    with h5py.File(dataset, "r") as f:
        demo = f["data/demo_0"]
        steps = demo.attrs["num_samples"]
        assert demo["actions"].shape == (steps, 8) and demo["actions"].dtype == np.float32
        assert demo["obs/agentview_image"].shape == (steps, 48, 48, 3)
        assert demo["obs/robot0_eye_in_hand_image"].dtype == np.uint8
        assert demo["obs/robot0_joint_pos"].shape == (steps, 7)
        assert demo["obs/robot0_gripper_qpos"].shape == (steps, 2)
        assert demo["states"].shape[0] == steps and demo["states"].dtype == np.float64
        assert demo["rewards"].shape == (steps,) and demo["dones"][-1] == 1
        subtasks = demo["subtasks"].asstr()[()]
        assert subtasks[0].startswith("reach the") and "grasp" in subtasks
        assert "cube" in demo.attrs["instruction"] and "<mujoco" in demo.attrs["model_file"]
        assert f["data"].attrs["total"] == sum(f[f"data/{d}"].attrs["num_samples"] for d in ("demo_0", "demo_1"))
        assert set(f["mask/train"][()]) | set(f["mask/valid"][()]) == {b"demo_0", b"demo_1"}


def test_replay_is_faithful(dataset, capsys):
    assert main(["replay", str(dataset), "--quiet"]) == 0
    assert "2/2 demos faithful" in capsys.readouterr().out


def test_replay_notices_tampered_actions(dataset, tmp_path, capsys):
    tampered = tmp_path / "tampered.hdf5"
    tampered.write_bytes(dataset.read_bytes())
    with h5py.File(tampered, "r+") as f:
        f["data/demo_1/actions"][5:, :7] += 0.05
    assert main(["replay", str(tampered), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "1/2 demos faithful" in out and "NO" in out


def test_existing_output_is_refused_then_appended(dataset, tmp_path, capsys):
    out = tmp_path / "copy.hdf5"
    out.write_bytes(dataset.read_bytes())
    before = out.read_bytes()
    assert _collect(out, "--episodes", "1") == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before
    assert _collect(out, "--episodes", "1", "--seed", "40", "--append") == 0
    info = open_dataset(out)
    assert info.demo_names == ("demo_0", "demo_1", "demo_2")
    assert read_episode(out, "demo_2").seed == 40


def test_parallel_workers_write_the_same_episodes_in_seed_order(dataset, tmp_path):
    out = tmp_path / "two_workers.hdf5"
    assert _collect(out, "--episodes", "2", "--seed", "20", "--workers", "2") == 0
    for name in ("demo_0", "demo_1"):
        one, two = read_episode(dataset, name), read_episode(out, name)
        assert one.seed == two.seed and one.instruction == two.instruction
        np.testing.assert_array_equal(one.actions, two.actions)


def test_unknown_task_and_corrupt_file_give_clear_errors(tmp_path, capsys):
    assert main(["collect", "--task", "pickup", "--episodes", "1", "--out", str(tmp_path / "x.hdf5")]) == 2
    assert "valid tasks: lift, stack, pick-color, place-color" in capsys.readouterr().err
    garbage = tmp_path / "garbage.hdf5"
    garbage.write_bytes(b"not an hdf5 file" * 100)
    assert main(["replay", str(garbage)]) == 2
    assert "cannot be opened as HDF5 (corrupt or not HDF5" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "missing.hdf5")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_kill_9_during_collection_keeps_every_finished_episode(tmp_path):
    out = tmp_path / "killed.hdf5"
    cmd = [sys.executable, "-m", "vla.cli", "collect", "--task", "lift", "--episodes", "50",
           "--out", str(out), "--image-size", "32", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.3)
            try:
                if open_dataset(out).num_demos >= 2:
                    break
            except DatasetError:
                pass  # not created yet, or caught between writes
        time.sleep(0.7)  # land the kill somewhere inside the next episode
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    info = open_dataset(out)
    assert info.num_demos >= 2
    for name in info.demo_names:
        episode = read_episode(out, name)
        assert episode.success and episode.observations["agentview_image"].shape[0] == episode.num_samples
