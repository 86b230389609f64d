"""A command that fails before writing its first episode removes the dataset file it created, so the
rerun is not refused ('already exists'); a file it did not create, or one holding episodes, stays."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import sim.collect
import sim.convert
from sim.collect import collect
from sim.convert import convert_robosuite_demos
from sim.dataset import DatasetWriter, open_dataset
from sim.episode import Episode
from sim.rollout import RolloutResult

STEPS = 3


def _episode() -> Episode:
    images = np.zeros((STEPS, 8, 8, 3), np.uint8)
    return Episode(seed=0, instruction="lift the red cube", goal={}, actions=np.zeros((STEPS, 8), np.float32),
                   observations={"agentview_image": images, "robot0_joint_pos": np.zeros((STEPS, 7))},
                   states=np.zeros((STEPS, 5)), rewards=np.zeros(STEPS), dones=np.zeros(STEPS, np.uint8),
                   subtasks=["lift"] * STEPS, model_file="<mujoco/>", success=True)


def _fake_run_seeds(outcomes: list[bool], error: BaseException | None = None):
    """A stand-in for sim.parallel.run_seeds: one result per outcome (True: a successful episode), then
    `error` if given."""
    def run_seeds(spec, seeds, workers):
        for seed, success in zip(seeds, outcomes):
            yield RolloutResult(seed=seed, success=success, steps=STEPS, instruction="",
                                episode=_episode() if success else None)
        if error is not None:
            raise error
    return run_seeds


@pytest.mark.parametrize("error", [RuntimeError("worker crashed"), KeyboardInterrupt()])
def test_collect_failing_before_its_first_episode_leaves_no_file(tmp_path, monkeypatch, error):
    out = tmp_path / "demos.hdf5"
    monkeypatch.setattr(sim.collect, "run_seeds", _fake_run_seeds([False], error))
    with pytest.raises(type(error)):
        collect("lift", 2, str(out), progress=False)
    assert not out.exists()
    monkeypatch.setattr(sim.collect, "run_seeds", _fake_run_seeds([True, True]))
    assert collect("lift", 2, str(out), progress=False).kept == 2  # the rerun is not refused


def test_collect_whose_every_attempt_fails_leaves_no_file(tmp_path, monkeypatch):
    out = tmp_path / "demos.hdf5"
    monkeypatch.setattr(sim.collect, "run_seeds", _fake_run_seeds([False] * 3))
    with pytest.raises(RuntimeError, match="only 0 of 1 episodes succeeded in 3 attempts .3 failed.; none was saved"):
        collect("lift", 1, str(out), progress=False)
    assert not out.exists()


def test_collect_with_bad_workers_leaves_no_file(tmp_path):
    out = tmp_path / "demos.hdf5"
    with pytest.raises(ValueError, match="--workers"):
        collect("lift", 1, str(out), workers=0, progress=False)
    assert not out.exists()


def test_collect_keeps_the_episodes_it_wrote_before_failing(tmp_path, monkeypatch):
    out = tmp_path / "demos.hdf5"
    monkeypatch.setattr(sim.collect, "run_seeds", _fake_run_seeds([True], RuntimeError("worker crashed")))
    with pytest.raises(RuntimeError, match="worker crashed"):
        collect("lift", 2, str(out), progress=False)
    assert open_dataset(out).num_demos == 1


def test_collect_never_removes_a_file_it_appends_to(tmp_path, monkeypatch):
    out = tmp_path / "demos.hdf5"
    DatasetWriter(out, "lift", sim.collect.env_args("lift", sim.collect.EnvConfig()))
    monkeypatch.setattr(sim.collect, "run_seeds", _fake_run_seeds([], KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        collect("lift", 1, str(out), append=True, progress=False)
    assert out.exists() and open_dataset(out).num_demos == 0


def _robosuite_source(path) -> str:
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env"] = "Lift"
        demo = data.create_group("demo_1")
        demo["states"], demo["actions"] = np.zeros((2, 5)), np.zeros((2, 7))
        demo.attrs["model_file"] = "<mujoco/>"
    return str(path)


def test_convert_failing_before_its_first_demo_leaves_no_file(tmp_path, monkeypatch):
    def no_scene(*args, **kwargs):
        raise RuntimeError("no scene")

    out = tmp_path / "converted.hdf5"
    monkeypatch.setattr(sim.convert, "VlaEnv", no_scene)
    with pytest.raises(RuntimeError, match="no scene"):
        convert_robosuite_demos(_robosuite_source(tmp_path / "demo.hdf5"), str(out), progress=False)
    assert not out.exists()
