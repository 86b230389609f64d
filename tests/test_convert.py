"""Tests for sim.convert: a file made by robosuite's own demonstration tooling
(DataCollectionWrapper + gather_demonstrations_as_hdf5: states, actions, model_file, no
observations) becomes a full dataset by re-rendering observations from its states."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from sim.convert import convert_robosuite_demos
from sim.dataset import DatasetError, open_dataset, read_episode
from sim.replay import replay_file
from sim.tasks import TASKS

IMAGE = 64
EPISODES = 2
HOLD_STEPS = 10  # robosuite's collect_human_demonstrations keeps recording 10 steps after success


def _record_robosuite_demos(root) -> tuple[str, list[int]]:
    """Record EPISODES scripted-expert episodes through robosuite's DataCollectionWrapper and
    gather them with robosuite's gather_demonstrations_as_hdf5; return (file, arm qpos indexes)."""
    from robosuite.scripts.collect_human_demonstrations import gather_demonstrations_as_hdf5
    from robosuite.wrappers import DataCollectionWrapper

    from sim.env import VlaEnv
    from sim.experts.scripted import ScriptedExpert

    raw, out = root / "raw", root / "out"
    out.mkdir()
    # No cameras: observations are not recorded by robosuite, and the wrapper rebuilds the
    # sim on every reset (reset_from_xml_string), which a camera renderer would not follow.
    env = VlaEnv("lift", image_size=IMAGE, cameras=())
    env.suite_env = DataCollectionWrapper(env.suite_env, str(raw))
    expert = ScriptedExpert(env)  # built after wrapping: reads the robot through the wrapper
    arm = [int(i) for i in env.robot._ref_joint_pos_indexes]
    try:
        for seed in range(EPISODES):
            obs, _ = env.reset(seed=seed)
            expert.reset(obs["instruction"])
            hold = -1
            while hold != 0:  # like collect_human_demonstrations: stop 10 steps after success
                obs, _, terminated, truncated, _ = env.step(expert.act(obs).actions[0])
                if truncated:
                    raise AssertionError(f"scripted expert failed lift with seed {seed}")
                hold = (hold - 1 if hold > 0 else HOLD_STEPS) if terminated else -1
    finally:
        env.close()  # flushes the last episode to disk
    env_info = json.dumps({"robots": ["Panda"], "controller_configs": {"type": "BASIC"}})
    gather_demonstrations_as_hdf5(str(raw), str(out), env_info=env_info)
    return str(out / "demo.hdf5"), arm


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("robosuite_demos")
    src, arm = _record_robosuite_demos(root)
    dst = str(root / "converted.hdf5")
    report = convert_robosuite_demos(src, dst, image_size=IMAGE, progress=False)
    return src, dst, arm, report


def _source_demos(src: str) -> list[tuple[np.ndarray, np.ndarray]]:
    with h5py.File(src, "r") as f:
        data = f["data"]
        names = sorted(data, key=lambda n: int(n.split("_")[1]))
        return [(data[n]["states"][()], data[n]["actions"][()]) for n in names]


def test_source_is_robosuite_format(converted):
    src, _, _, _ = converted
    with h5py.File(src, "r") as f:
        data = f["data"]
        assert data.attrs["env"] == "Lift"
        assert len(data) == EPISODES
        for demo in data.values():
            assert set(demo) == {"states", "actions"}  # no observations
            assert "model_file" in demo.attrs


def test_converted_dataset_matches_source(converted):
    src, dst, arm, report = converted
    source = _source_demos(src)
    info = open_dataset(dst)
    assert info.num_demos == len(source) == EPISODES
    assert report == {"demos": EPISODES, "samples": sum(len(s) for s, _ in source), "unsuccessful": 0}
    assert info.env_args["task"] == "lift" and info.env_args["converted_from"] == src

    for name, (states, src_actions) in zip(info.demo_names, source):
        ep = read_episode(dst, name)
        t = len(states)
        assert t > HOLD_STEPS

        image = ep.observations["agentview_image"]
        assert image.shape == (t, IMAGE, IMAGE, 3) and image.dtype == np.uint8
        assert ep.observations["robot0_eye_in_hand_image"].shape == (t, IMAGE, IMAGE, 3)
        assert image.std() > 0 and all(frame.std() > 0 for frame in image)  # not blank
        assert np.abs(image[0].astype(int) - image[-1].astype(int)).mean() > 0  # the arm moved

        np.testing.assert_array_equal(ep.states, states)
        np.testing.assert_allclose(ep.observations["robot0_joint_pos"], states[:, 1:][:, arm], atol=1e-12)

        assert ep.actions.shape == (t, 8)
        assert set(np.unique(ep.actions[:, -1])) <= {0.0, 1.0}
        np.testing.assert_array_equal(ep.actions[:, -1], (src_actions[:, -1] > 0).astype(np.float32))
        np.testing.assert_allclose(ep.actions[:-1, :7], states[1:, 1:][:, arm], atol=1e-6)  # float32
        np.testing.assert_allclose(json.loads(ep.extra_attrs["source_actions"]), src_actions)

        assert ep.success is True
        assert ep.rewards[-1] == 1.0 and ep.dones[-1] == 1 and ep.dones[:-1].sum() == 0
        assert ep.extra_attrs["source_file"] == src


def test_converted_demos_replay_faithfully(converted):
    _, dst, _, _ = converted
    results = replay_file(dst, mode="states", progress=False)
    assert len(results) == EPISODES
    assert all(r.faithful and r.replayed_success for r in results), [r.to_dict() for r in results]


def test_existing_output_is_not_overwritten(converted, tmp_path):
    src, _, _, _ = converted
    dst = tmp_path / "exists.hdf5"
    dst.write_bytes(b"keep me")
    with pytest.raises(DatasetError, match="already exists"):
        convert_robosuite_demos(src, str(dst), image_size=IMAGE, progress=False)
    assert dst.read_bytes() == b"keep me"


def test_non_robosuite_file_is_rejected(tmp_path):
    src = tmp_path / "other.hdf5"
    with h5py.File(src, "w") as f:
        f.create_dataset("x", data=np.arange(3))
    dst = tmp_path / "out.hdf5"
    with pytest.raises(DatasetError, match="robosuite"):
        convert_robosuite_demos(str(src), str(dst), image_size=IMAGE, progress=False)
    assert not dst.exists()


def test_not_hdf5_is_rejected(tmp_path):
    src = tmp_path / "text.hdf5"
    src.write_text("not hdf5")
    with pytest.raises(DatasetError, match=r"text.hdf5 cannot be opened as HDF5 \(corrupt or not HDF5"):
        convert_robosuite_demos(str(src), str(tmp_path / "out.hdf5"), progress=False)


def _robosuite_file(path, env: str, states: np.ndarray, **storage) -> str:
    """A robosuite-format file with one demo (demo_1) of these states, stored with h5py's `storage` options."""
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env"] = env
        demo = data.create_group("demo_1")
        demo.attrs["model_file"] = "<mujoco/>"
        demo.create_dataset("states", data=states, **storage)
        demo.create_dataset("actions", data=np.zeros((len(states), 7)))
    return str(path)


def test_unknown_robosuite_env_needs_task(tmp_path):
    src = _robosuite_file(tmp_path / "door.hdf5", "Door", np.zeros((2, 5)))
    dst = tmp_path / "out.hdf5"
    with pytest.raises(ValueError, match="--task") as error:
        convert_robosuite_demos(src, str(dst), image_size=IMAGE, progress=False)
    assert "Door" in str(error.value)
    assert all(task in str(error.value) for task in TASKS)
    assert not dst.exists()


def test_a_damaged_source_names_its_unreadable_demo(tmp_path):
    src = _robosuite_file(tmp_path / "rotted.hdf5", "Lift", np.random.default_rng(0).normal(size=(40, 5)),
                          compression="gzip")
    with h5py.File(src, "r") as f:
        chunk = f["data/demo_1/states"].id.get_chunk_info(0)
    raw = bytearray(open(src, "rb").read())
    raw[chunk.byte_offset + 10:chunk.byte_offset + 74] = b"\xab" * 64
    open(src, "wb").write(bytes(raw))
    dst = tmp_path / "out.hdf5"
    with pytest.raises(DatasetError, match=r"rotted.hdf5: /data/demo_1/states cannot be read \(OSError: .*\); "
                                           "the file is damaged"):
        convert_robosuite_demos(src, str(dst), progress=False)
    assert not dst.exists()


def test_demo_ending_before_success_is_marked_unsuccessful(converted, tmp_path):
    """gather_demonstrations_as_hdf5 drops the state after the last action: a demo cut before
    success must come out with success False, not a copied-over True."""
    src, _, _, _ = converted
    cut = tmp_path / "cut.hdf5"
    with h5py.File(src, "r") as f, h5py.File(cut, "w") as g:
        f.copy("data", g)
        for name in list(g["data"])[1:]:
            del g["data"][name]
        demo = g["data"][next(iter(g["data"]))]
        for key in ("states", "actions"):
            short = demo[key][:5]
            del demo[key]
            demo.create_dataset(key, data=short)
    dst = tmp_path / "out.hdf5"
    report = convert_robosuite_demos(str(cut), str(dst), image_size=16, progress=False)
    assert report == {"demos": 1, "samples": 5, "unsuccessful": 1}
    ep = read_episode(dst, "demo_0")
    assert ep.success is False and ep.rewards[-1] == 0.0
    assert ep.observations["agentview_image"].shape == (5, 16, 16, 3)
