"""LeRobotDataset v3.0 in and out (sim.lerobot_read / sim.lerobot_write): a dataset written by LeRobot's own
writer imports with its actions, states, instructions and camera contents; an exported vla-stack dataset has
the v3.0 layout and imports back with the same actions and frames within codec tolerance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("av")

import pyarrow.parquet as pq  # noqa: E402

from robots.codec import gripper_to_finger_qpos  # noqa: E402
from robots.spec import PANDA_FINGER_OPEN  # noqa: E402
from sim.dataset import DatasetWriter, iter_episodes  # noqa: E402
from sim.episode import Episode  # noqa: E402
from sim.lerobot_read import import_lerobot  # noqa: E402
from sim.lerobot_write import export_lerobot  # noqa: E402

# written by LeRobot's own writer (lerobot-dataset 0.4.4), copied from the shared fixtures: README there
FIXTURE = Path(__file__).resolve().parent / "data" / "lerobot_v3_panda_sample"
IMAGE = 32


@pytest.fixture
def sample(tmp_path) -> Path:
    """A writable copy of the LeRobot-written fixture."""
    root = tmp_path / "sample"
    shutil.copytree(FIXTURE, root)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def test_import_lerobot_written_dataset(sample, tmp_path):
    expected = json.loads((sample / "EXPECTED.json").read_text())
    out = tmp_path / "imported.hdf5"
    report = import_lerobot(sample, out)
    assert report["demos"] == 2 and report["samples"] == 36
    assert report["cameras"] == {"top": "observation.images.top", "hand": "observation.images.hand"}
    episodes = list(iter_episodes(out))
    for ep, want in zip(episodes, expected["episodes"], strict=True):
        state = np.array(want["state"])
        assert ep.instruction == want["task"] and ep.num_samples == want["length"]
        assert ep.actions.dtype == np.float32
        np.testing.assert_allclose(ep.actions, np.float32(want["actions"]), atol=1e-6)  # EXPECTED rounds to 1e-6
        np.testing.assert_allclose(ep.observations["robot0_joint_pos"], state[:, :7], atol=1e-6)
        fingers = np.stack([gripper_to_finger_qpos(g, PANDA_FINGER_OPEN) for g in state[:, 7]])
        np.testing.assert_allclose(ep.observations["robot0_gripper_qpos"], fingers, atol=1e-6)
        assert ep.states.shape == (ep.num_samples, 0) and ep.model_file == ""
        top, hand = ep.observations["top_image"].astype(float), ep.observations["hand_image"].astype(float)
        assert top.shape == hand.shape == (ep.num_samples, 64, 80, 3)
        assert np.abs(top[:, :32] - [20, 20, 220]).mean() < 8 and top[:, 33:].mean() < 8  # upper half blue
        assert np.abs(hand[:, :, 41:] - [220, 220, 20]).mean() < 8 and hand[:, :, :39].mean() < 8  # right yellow


def test_import_camera_map_and_resize(sample, tmp_path):
    out = tmp_path / "mapped.hdf5"
    import_lerobot(sample, out, camera_map={"top": "agentview"}, image_size=16, task="lift")
    ep = next(iter_episodes(out))
    assert sorted(k for k in ep.observations if k.endswith("_image")) == ["agentview_image"]
    assert ep.observations["agentview_image"].shape == (15, 16, 16, 3)


def _make_episode(seed: int) -> Episode:
    """A synthetic demo: smooth images (codecs keep them), 8-dim actions, finger positions."""
    rng = np.random.default_rng(seed)
    t = 6 + seed
    ys, xs = np.mgrid[0:IMAGE, 0:IMAGE]
    frames = [np.stack([(xs * 8 + 10 * k) % 256, (ys * 8) % 256, np.full_like(xs, 60 + 20 * seed)], -1)
              for k in range(t)]
    gripper = rng.uniform(0, 1, t)
    return Episode(seed=seed, instruction=["lift the red cube", "stack red on blue"][seed % 2], goal={},
                   actions=rng.uniform(-1, 1, (t, 8)).astype(np.float32),
                   observations={"agentview_image": np.array(frames, dtype=np.uint8),
                                 "robot0_joint_pos": rng.uniform(-1, 1, (t, 7)),
                                 "robot0_gripper_qpos": np.stack([gripper_to_finger_qpos(g, PANDA_FINGER_OPEN)
                                                                  for g in gripper])},
                   states=rng.standard_normal((t, 10)), rewards=np.zeros(t), dones=np.zeros(t, dtype=np.int64),
                   subtasks=[""] * t, model_file="<mujoco/>", success=True)


@pytest.mark.parametrize("codec", ["av1", "h264"])  # h264: the fallback where PyAV has no AV1 encoder
def test_export_layout_and_round_trip(tmp_path, monkeypatch, codec):
    import sim.lerobot_write

    monkeypatch.setattr(sim.lerobot_write, "CODECS", [c for c in sim.lerobot_write.CODECS if c[1] == codec])
    source = tmp_path / "ours.hdf5"
    originals = [_make_episode(seed) for seed in range(3)]
    with DatasetWriter(source, "lift", {"task": "lift"}) as writer:
        for ep in originals:
            writer.write(ep)
    out = tmp_path / "lerobot"
    report = export_lerobot(source, out, fps=20)
    assert report["codec"] == codec
    assert report["episodes"] == 3 and report["frames"] == 6 + 7 + 8 and report["tasks"] == 2

    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_frames"] == 21 and info["total_tasks"] == 2
    video = info["features"]["observation.images.agentview"]
    assert video["dtype"] == "video" and video["shape"] == [IMAGE, IMAGE, 3]
    assert video["info"]["video.codec"] == report["codec"] and info["features"]["action"]["shape"] == [8]
    for path in ("meta/tasks.parquet", "meta/stats.json", "meta/episodes/chunk-000/file-000.parquet",
                 "data/chunk-000/file-000.parquet", "videos/observation.images.agentview/chunk-000/file-000.mp4"):
        assert (out / path).is_file(), path
    data = pq.read_table(out / "data/chunk-000/file-000.parquet")
    assert {"timestamp", "frame_index", "episode_index", "index", "task_index"} <= set(data.column_names)
    assert data.column("index").to_pylist() == list(range(21))
    rows = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    key = "videos/observation.images.agentview/"
    assert [(r[key + "from_timestamp"], r[key + "to_timestamp"]) for r in rows] == [(0, 0.3), (0.3, 0.65),
                                                                                  (0.65, 1.05)]
    assert [r["tasks"] for r in rows] == [["lift the red cube"], ["stack red on blue"], ["lift the red cube"]]
    assert set(json.loads((out / "meta/stats.json").read_text())["action"]) >= {"min", "max", "mean", "q99"}

    back = tmp_path / "back.hdf5"
    import_lerobot(out, back, camera_map={"agentview": "agentview"})
    for ours, again in zip(originals, iter_episodes(back), strict=True):
        np.testing.assert_array_equal(again.actions, ours.actions)
        assert again.instruction == ours.instruction
        np.testing.assert_allclose(again.observations["robot0_joint_pos"], ours.observations["robot0_joint_pos"],
                                   atol=1e-6)
        np.testing.assert_allclose(again.observations["robot0_gripper_qpos"],
                                   ours.observations["robot0_gripper_qpos"], atol=1e-6)
        error = np.abs(again.observations["agentview_image"].astype(float)
                       - ours.observations["agentview_image"].astype(float))
        assert error.mean() < 6, error.mean()


def test_export_refuses_non_empty_directory(tmp_path):
    source = tmp_path / "ours.hdf5"
    with DatasetWriter(source, "lift", {}) as writer:
        writer.write(_make_episode(0))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ValueError, match="not empty"):
        export_lerobot(source, tmp_path / "full")


def test_v21_dataset_says_how_to_convert(sample, tmp_path):
    info = json.loads((sample / "meta/info.json").read_text())
    (sample / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(ValueError, match="convert_dataset_v21_to_v30"):
        import_lerobot(sample, tmp_path / "x.hdf5")
    assert not (tmp_path / "x.hdf5").exists()


def test_missing_info_json(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="meta/info.json does not exist"):
        import_lerobot(tmp_path / "empty", tmp_path / "x.hdf5")


@pytest.mark.parametrize("options, words", [
    ({"state_key": "observation.joints"}, ["'observation.joints'", "observation.state", "--state-key"]),
    ({"action_key": "actions"}, ["'actions'", "action,", "--action-key"]),
    ({"camera_map": {"wrist": "hand"}}, ["'wrist'", "top, hand", "--camera"]),
])
def test_wrong_feature_names_are_named(sample, tmp_path, options, words):
    with pytest.raises(ValueError) as error:
        import_lerobot(sample, tmp_path / "x.hdf5", **options)
    for word in words:
        assert word in str(error.value), (word, str(error.value))
    assert not (tmp_path / "x.hdf5").exists()


def test_incomplete_dataset_names_the_missing_file(sample, tmp_path):
    (sample / "data/chunk-000/file-000.parquet").unlink()
    with pytest.raises(ValueError, match="file-000.parquet does not exist"):
        import_lerobot(sample, tmp_path / "x.hdf5")
    assert not (tmp_path / "x.hdf5").exists()


def test_export_needs_joint_positions_and_cleans_up(tmp_path, monkeypatch):
    source = tmp_path / "ours.hdf5"
    episode = _make_episode(0)
    del episode.observations["robot0_joint_pos"]
    with DatasetWriter(source, "lift", {}) as writer:
        writer.write(episode)
    with pytest.raises(ValueError, match="obs/robot0_joint_pos"):
        export_lerobot(source, tmp_path / "a")
    assert not (tmp_path / "a").exists()

    good = tmp_path / "good.hdf5"
    with DatasetWriter(good, "lift", {}) as writer:
        writer.write(_make_episode(1))

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr("sim.lerobot_write._write_data", fail)
    with pytest.raises(OSError):
        export_lerobot(good, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_vla_convert_imports_a_lerobot_dataset_that_fine_tunes_the_default(sample, tmp_path, capsys):
    """The command line end to end: import with camera names mapped onto the default's, fine-tune the
    shipped default on it (no MuJoCo states: the side losses are off, said in one line), export again."""
    from vla.cli import main

    ours, run, back = tmp_path / "ours.hdf5", tmp_path / "ft", tmp_path / "back"
    assert main(["convert", str(sample), "--out", str(ours), "--camera", "top=agentview", "--camera",
                 "hand=robot0_eye_in_hand", "--image-size", "128", "--task", "lift", "--quiet"]) == 0
    assert main(["replay", str(ours), "--quiet"]) == 2
    assert "no MuJoCo states" in capsys.readouterr().err
    assert main(["train", "--data", str(ours), "--init", "default", "--out", str(run), "--preset", "finetune",
                 "--steps", "1", "--quiet"]) == 0
    assert "the object and goal-keypoint losses are off" in capsys.readouterr().err
    assert main(["convert", str(ours), "--to", "lerobot", "--out", str(back)]) == 0
    assert json.loads((back / "meta" / "info.json").read_text())["total_episodes"] == 2
