"""`vla augment`: a recorded dataset re-rendered with a fixture standing in its scenes (sim/distractors.py)."""

import numpy as np
import pytest

from sim.dataset import open_dataset, read_episode
from sim.distractors import check_source_task, fixture_task
from vla.cli import main

IMAGE = 32  # the pick-color demo of test_goal_grounding: collected once per session


@pytest.fixture(scope="module")
def pick_file(one_demo_file):
    return one_demo_file("pick-color", 5, IMAGE)


def test_the_bin_is_drawn_in_and_nothing_else_changes(pick_file, tmp_path):
    out = tmp_path / "pick-bin.hdf5"
    assert main(["augment", pick_file, "--distractor", "bin", "--out", str(out), "--quiet"]) == 0
    source, augmented = read_episode(pick_file, "demo_0"), read_episode(out, "demo_0")
    for field in ("actions", "states"):
        assert np.array_equal(getattr(source, field), getattr(augmented, field))
    assert augmented.subtasks == source.subtasks and augmented.instruction == source.instruction
    assert augmented.model_file == source.model_file  # the scene labels read the source's scene
    assert augmented.extra_attrs["distractor"].startswith("bin at x ")
    front = "agentview_image"
    changed = np.abs(augmented.observations[front].astype(int) - source.observations[front]).sum(axis=-1) > 30
    assert changed.mean() > 0.005  # the bin covers part of the front view in every frame...
    assert changed.mean(axis=(1, 2)).min() > 0.002
    assert augmented.observations[front].shape == source.observations[front].shape
    assert open_dataset(out).env_args["distractor"] == "bin"


def test_the_bin_stands_clear_of_every_cube_all_demo_long(pick_file, tmp_path, env_cache):
    out = tmp_path / "pick-bin.hdf5"
    assert main(["augment", pick_file, "--distractor", "bin", "--out", str(out), "--seed", "3", "--quiet"]) == 0
    episode = read_episode(out, "demo_0")
    where = episode.extra_attrs["distractor"]
    x, y = (float(part.split()[-1]) for part in where.removeprefix("bin at ").split(","))
    env = env_cache("pick-color", IMAGE)
    env.reset(seed=episode.seed)
    for state in episode.states[::5]:
        env.set_mujoco_state(state)
        for color in ("red", "green", "blue"):
            assert np.hypot(*(env.cube_pose(color)[0][:2] - [x, y])) >= 0.12


@pytest.mark.parametrize("fixture, message", [("basket", "no such fixture; there are marker, bin, crate"),
                                              ("bin", "can stand in the scenes of pick-color, place-color")])
def test_what_cannot_be_augmented_is_named(fixture, message):
    with pytest.raises(ValueError, match=message):
        check_source_task("lift", fixture)


def test_each_fixture_is_rendered_by_a_task_whose_scene_has_it():
    assert fixture_task("bin") == "bin-color" and fixture_task("marker") == "push-color"


def test_a_dataset_without_states_is_refused_in_one_line(pick_file, tmp_path, capsys):
    from sim.dataset import DatasetWriter

    source = read_episode(pick_file, "demo_0")
    source.states = np.zeros((len(source.actions), 0))
    stateless = tmp_path / "robot.hdf5"
    with DatasetWriter(stateless, "pick-color", open_dataset(pick_file).env_args) as writer:
        writer.write(source)
    assert main(["augment", str(stateless), "--distractor", "bin", "--out", str(tmp_path / "o.hdf5")]) != 0
    assert "has no MuJoCo states" in capsys.readouterr().err
