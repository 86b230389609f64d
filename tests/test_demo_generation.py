"""`vla generate`: recorded demos' object-centric segments moved into new scenes (sim/demo_generation.py), and
the kept episodes are real successes in those scenes."""

import numpy as np
import pytest

from sim.dataset import DatasetWriter, open_dataset, read_episode
from sim.demo_generation import (MAX_LEAD_M, PushGeometry, Segment, SourceDemo, Waypoint, choose_source, gripper_path,
                                 place_segments, transit, with_transits)
from sim.episode import Episode
from sim.tasks import Goal
from vla.cli import main

IMAGE = 48
FLAT = np.array([1.0, 0.0, 0.0, 0.0])  # a cube turned by nothing


def pose(x, y, z=0.82, quat=FLAT):
    return np.array([x, y, z]), np.asarray(quat, dtype=float)


def test_push_geometry_reads_distance_direction_and_the_cube_face_a_quarter_turn_at_a_time():
    quarter_turned = [np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)]  # yaw +90 degrees: the same faces
    push = PushGeometry.of(pose(0.0, 0.0, quat=quarter_turned), pose(0.0, 0.2))
    assert push.distance == pytest.approx(0.2) and push.direction == pytest.approx(np.pi / 2)
    assert push.face == pytest.approx(0.0, abs=1e-9)
    assert push.mismatch(push) == 0.0
    turned = PushGeometry(0.2, -np.pi + 0.1, 0.0)  # a 0.1 rad turn across the +-pi seam, not 2 pi - 0.1
    assert PushGeometry(0.2, np.pi - 0.0, 0.0).mismatch(turned) == pytest.approx(0.1)


def test_a_pick_segment_is_moved_with_its_cube():
    segment = Segment("target", np.array([[0.0, -0.05, 0.1], [0.0, 0.0, 0.0]]), np.stack([np.eye(3)] * 2),
                      np.array([0.0, 1.0]))
    source = SourceDemo("demo_0", "pick", (segment,))
    [placed] = place_segments(source, Goal("red"), lambda name: pose(0.1, 0.2))
    assert np.allclose([w.position for w in placed], [[0.1, 0.15, 0.92], [0.1, 0.2, 0.82]])
    assert [w.gripper for w in placed] == [0.0, 1.0]


def test_a_push_is_turned_to_the_new_marker_and_stretched_to_its_distance():
    # source: from 5 cm behind the cube along +x, to 10 cm past where it started (the marker 10 cm away)
    offsets = np.array([[-0.05, 0.0, 0.0], [0.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    source = SourceDemo("demo_0", "push", (Segment("target", offsets, np.stack([np.eye(3)] * 3), np.ones(3)),),
                        PushGeometry(0.1, 0.0, 0.0))
    scene = {"red": pose(0.0, 0.0), "marker": pose(0.0, 0.2, 0.8)}  # now along +y, twice as far
    [placed] = place_segments(source, Goal("red", "marker"), scene.__getitem__)
    assert np.allclose([w.position[:2] for w in placed], [[0.0, -0.05], [0.0, 0.0], [0.0, 0.2]])


def test_the_nearest_push_is_chosen_and_a_missing_kind_is_refused():
    near, far = (SourceDemo(name, "push", (), PushGeometry(d, 0.0, 0.0)) for name, d in (("near", 0.2), ("far", 0.1)))
    scene = {"red": pose(0.0, 0.0), "marker": pose(0.19, 0.0)}
    assert choose_source([far, near], Goal("red", "marker"), scene.__getitem__, np.random.default_rng(0)).name == "near"
    with pytest.raises(ValueError, match="no source demo of a place goal"):
        choose_source([near], Goal("red", "bin"), scene.__getitem__, np.random.default_rng(0))


def test_transits_go_up_across_and_down_never_through_the_table():
    here = Waypoint(np.array([0.0, 0.0, 0.9]), np.eye(3), 1.0)
    path = np.array([w.position for w in transit(here, np.array([0.2, 0.0, 1.0]))])
    rise = np.flatnonzero(path[:, 0] > 1e-9)[0]  # it moves across only once it is up
    assert np.all(path[rise:, 2] == pytest.approx(1.0)) and np.all(path[:, 2] >= 0.9 - 1e-9)
    assert np.all(np.linalg.norm(np.diff(path, axis=0), axis=1) <= 0.015 + 1e-9)
    assert all(w.gripper == 1.0 for w in transit(here, np.array([0.2, 0.0, 1.0])))
    segments = [[Waypoint(np.array([0.1, 0.0, 0.9]), np.eye(3), 0.0)], [Waypoint(np.array([0.1, 0.0, 0.9]), np.eye(3), 1.0)]]
    plan = with_transits(np.array([0.0, 0.0, 0.9]), np.eye(3), segments)
    assert plan[-1] is segments[1][0] and len(plan) >= 2 + 2 * 2  # even a hop of 0 m settles a few steps


def test_the_replayed_path_is_where_the_gripper_went_led_by_at_most_the_lead():
    reached = np.array([[0.0, 0.0, 0.9], [0.01, 0.0, 0.9], [0.02, 0.0, 0.9]])
    commanded = np.array([[0.01, 0.0, 0.9], [0.02, 0.0, 0.7], [0.02, 0.0, 0.9]])  # the middle one wound up, 20 cm down
    path = gripper_path(commanded, reached)
    assert np.allclose(path[0], reached[1]) and np.allclose(path[2], reached[2])
    assert np.linalg.norm(path[1] - reached[2]) == pytest.approx(MAX_LEAD_M)


@pytest.fixture(scope="module")
def bin_demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("teleop") / "bin.hdf5"
    assert main(["teleop", "--task", "bin-color", "--device", "scripted", "--out", str(out), "--episodes", "2",
                 "--seed", "300000", "--image-size", str(IMAGE), "--quiet"]) == 0
    return out


def test_vla_generate_keeps_successes_in_new_scenes_labelled_and_traced_to_their_source(bin_demos, tmp_path, capsys):
    out = tmp_path / "generated.hdf5"
    assert main(["generate", str(bin_demos), "--episodes", "2", "--out", str(out), "--seed", "510000", "--quiet"]) == 0
    assert "generated 2 episodes from 2 source demos" in capsys.readouterr().out
    info = open_dataset(out)
    assert info.env_args["demonstrator"] == "generated" and info.env_args["vla"]["image_size"] == IMAGE
    sources = {read_episode(bin_demos, name).seed: read_episode(bin_demos, name) for name in ("demo_0", "demo_1")}
    for name in info.demo_names:
        episode = read_episode(out, name)
        assert episode.success and episode.seed >= 510000 and episode.seed not in sources
        assert episode.extra_attrs["generated_from"] in ("demo_0", "demo_1")
        assert episode.subtasks[0].startswith("reach the ") and episode.subtasks[-1] == "release"
        assert episode.observations["agentview_image"].shape[1:] == (IMAGE, IMAGE, 3)


def test_sources_without_states_or_with_long_goals_are_refused_in_one_line(tmp_path):
    from sim.generate import generate_demos

    steps = 4
    for name, goal, states in (("robot", Goal("red", "bin"), np.zeros((steps, 0))),
                               ("long", Goal("red", "crate", then=(Goal("green", "crate"),)), None)):
        path = tmp_path / f"{name}.hdf5"
        task = "bin-color" if name == "robot" else "crate-three"
        with DatasetWriter(path, "ColorCubes", {"task": task}) as writer:
            writer.write(Episode(seed=0, instruction="put the red cube in the bin", goal=goal.to_dict(),
                                 actions=np.zeros((steps, 8), np.float32),
                                 observations={"robot0_eef_pos": np.zeros((steps, 3))},
                                 states=states if states is not None else _start_states(task, steps),
                                 rewards=np.zeros(steps), dones=np.zeros(steps, np.uint8), subtasks=["reach"] * steps,
                                 model_file="", success=True))
        expected = "no MuJoCo states" if name == "robot" else "long-horizon goal"
        with pytest.raises(ValueError, match=expected) as error:
            generate_demos(str(path), 1, str(tmp_path / f"{name}-out.hdf5"))
        assert "\n" not in str(error.value)
        assert not (tmp_path / f"{name}-out.hdf5").exists()


def _start_states(task: str, steps: int) -> np.ndarray:
    from sim.env import EnvConfig, VlaEnv

    with VlaEnv(task, EnvConfig(image_size=16, cameras=())) as env:
        env.reset(seed=0)
        return np.stack([env.mujoco_state()] * steps)


def test_vla_generate_rejects_more_sources_than_the_file_has(bin_demos, tmp_path, capsys):
    assert main(["generate", str(bin_demos), "--episodes", "1", "--sources", "5", "--out", str(tmp_path / "x.hdf5")]) == 2
    assert "--sources 5: " in capsys.readouterr().err and not (tmp_path / "x.hdf5").exists()


def test_a_demo_without_subtask_phrases_is_segmented_into_cube_and_bin_parts():
    # down onto the cube at (0, 0), close, up, across to the bin at (0.2, 0), open: 4 + 3 + 4 + 2 steps
    path = [(0.0, 0.0, 0.9), (0.0, 0.0, 0.87), (0.0, 0.0, 0.84), (0.0, 0.0, 0.83), (0.0, 0.0, 0.83), (0.0, 0.0, 0.85),
            (0.0, 0.0, 0.9), (0.05, 0.0, 0.92), (0.1, 0.0, 0.92), (0.2, 0.0, 0.92), (0.2, 0.0, 0.9), (0.2, 0.0, 0.9),
            (0.2, 0.0, 0.92)]
    grip = [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    steps = len(path)
    actions = np.zeros((steps, 8), np.float32)
    actions[:, :3], actions[:, -1] = path, grip  # the fake kinematics below read the first 3 joints as a position
    episode = Episode(seed=0, instruction="put the red cube in the bin", goal=Goal("red", "bin").to_dict(),
                      actions=actions, observations={"robot0_eef_pos": np.array(path)}, states=np.zeros((steps, 0)),
                      rewards=np.zeros(steps), dones=np.zeros(steps, np.uint8), subtasks=[""] * steps, model_file="",
                      success=True)
    objects = {"red": pose(0.0, 0.0), "bin": pose(0.2, 0.0, 0.8)}
    from sim.demo_generation import source_demo

    source = source_demo("demo_0", episode, lambda name, t: objects[name], lambda q: (np.asarray(q[:3]), np.eye(3)))
    assert [segment.about for segment in source.segments] == ["target", "base"]
    assert source.segments[0].gripper[-1] == 1.0 and source.segments[1].gripper[-1] == 0.0
    assert np.allclose(source.segments[1].offsets[-1], np.array(path[-1]) - objects["bin"][0])
