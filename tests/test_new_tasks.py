"""The tasks the shipped default never saw: push-color (slide a cube onto a marker), bin-color (drop it in a bin)."""

import gymnasium as gym
import numpy as np
import pytest

from scene_edits import hold, move_cube
from sim.experts.scripted import ScriptedExpert
from sim.fixtures import FIXTURES
from sim.goal_relabel import other_goals
from sim.registration import register_envs
from sim.segmentation import agreement, segment_subtasks
from sim.tasks import Goal, describe, get_task

NEW_TASKS = {"push-color": "marker", "bin-color": "bin"}


@pytest.mark.parametrize("task, fixture", NEW_TASKS.items())
def test_registered_with_a_gym_id_and_phrased_with_the_fixture(task, fixture):
    register_envs()
    env = gym.make(get_task(task).gym_id, image_size=32)
    try:
        _, info = env.reset(seed=5)
        goal = Goal.from_dict(info["goal"])
        assert goal.base == fixture
        assert info["instruction"] in {t.format(target=goal.target) for t in get_task(task).templates}
    finally:
        env.close()


@pytest.mark.parametrize("task, fixture", NEW_TASKS.items())
def test_the_fixture_is_placed_clear_of_every_cube(env_cache, task, fixture):
    env = env_cache(task, 32)
    spots = []
    for seed in range(6):
        env.reset(seed=seed)
        where = env.cube_pose(fixture)[0]
        cubes = [env.cube_pose(color)[0] for color in ("red", "green", "blue")]
        assert min(np.linalg.norm(where[:2] - cube[:2]) for cube in cubes) >= FIXTURES[fixture].clearance - 1e-6
        spots.append(where[:2])
    assert len({tuple(np.round(spot, 3)) for spot in spots}) == len(spots)  # drawn anew for every seed


def test_push_succeeds_only_with_the_cube_resting_on_the_marker(env_cache):
    env = env_cache("push-color", 32)
    env.reset(seed=2)
    assert not env.is_success()
    marker = env.cube_pose("marker")[0]
    move_cube(env, env.goal.target, marker + [0, 0, 0.12])  # over the marker, but in the air
    assert not env.is_success()
    move_cube(env, env.goal.target, marker + [0.06, 0, 0.021])  # on the table beside it
    hold(env)
    assert not env.is_success()
    move_cube(env, env.goal.target, marker + [0.01, -0.01, 0.021])
    hold(env)
    assert env.is_success()


def test_bin_succeeds_only_with_the_cube_inside(env_cache):
    env = env_cache("bin-color", 32)
    env.reset(seed=2)
    assert not env.is_success()
    bin_pos = env.cube_pose("bin")[0]
    move_cube(env, env.goal.target, bin_pos + [0.1, 0, 0.0])  # beside the bin
    hold(env)
    assert not env.is_success()
    move_cube(env, env.goal.target, bin_pos + [0, 0, 0.03])  # dropped in
    hold(env, 25)
    assert env.is_success()


@pytest.mark.parametrize("task", NEW_TASKS)
def test_the_expert_labels_agree_with_segmentation_of_its_own_motion(env_cache, task):
    env = env_cache(task, 32)
    obs, info = env.reset(seed=11)
    expert = ScriptedExpert(env)
    expert.reset()
    grippers, eef, labels = [], [], []
    for _ in range(env.max_steps):
        chunk = expert.act()
        grippers.append(chunk.actions[0, -1])
        eef.append(obs["robot0_eef_pos"])
        labels.append(chunk.subtask)
        obs, _, done, truncated, info = env.step(chunk.actions[0])
        if done or truncated:
            break
    assert info["success"]
    goal = Goal.from_dict(info["goal"])
    segmented = segment_subtasks(np.array(grippers), np.array(eef), goal)
    assert agreement(segmented, labels) >= 0.85
    assert segmented[0] == f"{'move behind' if goal.kind == 'push' else 'reach'} the {goal.target} cube"
    assert segmented[-1] == ("push it onto the yellow marker" if goal.kind == "push" else "release")


def test_goal_kinds_and_phrases():
    assert Goal("red").kind == "pick"
    assert Goal("red", "green").kind == "place"
    assert Goal("red", "bin").kind == "place"
    assert Goal("red", "marker").kind == "push"
    assert describe("green") == "the green cube"
    assert describe("bin") == "the bin"


def test_relabelled_fixture_goals_keep_the_fixture_and_name_another_cube():
    goals = other_goals(Goal("red", "bin"), ["red", "green", "blue", "bin"])
    assert sorted(g.target for g in goals) == ["blue", "green"]
    assert all(g.base == "bin" for g in goals)
