"""Delta joint actions: chunk targets relative to the joints at the chunk's start, gripper absolute."""

import numpy as np
import pytest

from vla.action_space import to_model, to_robot
from vla.config import DataConfig
from vla.data import Demo, chunk_targets, compute_norm_stats


def _demo(steps: int = 5) -> Demo:
    rng = np.random.default_rng(0)
    joints = rng.uniform(-1, 1, 7) + np.cumsum(rng.normal(0, 0.001, (steps, 7)), axis=0)  # a slow arm
    actions = np.concatenate([joints + 0.1, rng.integers(0, 2, (steps, 1))], axis=1)
    return Demo(images=np.zeros((steps, 2, 3, 8, 8), np.uint8), states=np.concatenate([joints, np.zeros((steps, 2))], 1),
                actions=actions, instruction="lift the cube", subtasks=[""] * steps)


def test_delta_targets_are_relative_to_the_chunk_start_and_round_trip():
    demo = _demo()
    config = DataConfig(chunk_size=3, action_mode="delta")
    targets = chunk_targets(demo, 1, config)
    np.testing.assert_allclose(targets[:, :7], demo.actions[1:4, :7] - demo.states[1, :7])
    np.testing.assert_array_equal(targets[:, 7], demo.actions[1:4, 7])  # gripper stays absolute
    np.testing.assert_allclose(to_robot(targets, demo.states[1], "delta"), demo.actions[1:4])
    last = chunk_targets(demo, 4, config)  # past the end the last action repeats
    np.testing.assert_allclose(last[:, :7], np.repeat(demo.actions[4:5, :7] - demo.states[4, :7], 3, axis=0))


def test_batched_round_trip_and_absolute_is_identity():
    rng = np.random.default_rng(1)
    actions, states = rng.normal(size=(4, 3, 8)), rng.normal(size=(4, 9))
    np.testing.assert_allclose(to_robot(to_model(actions, states, "delta"), states, "delta"), actions)
    assert to_model(actions, states, "absolute") is actions


def test_norm_stats_cover_the_delta_targets():
    demo = _demo(40)
    stats = compute_norm_stats([demo], DataConfig(chunk_size=4, action_mode="delta"))
    assert np.all(stats.action.q99[:7] < 0.15) and np.all(stats.action.q01[:7] > 0.05)  # deltas are ~0.1
    assert (stats.action.q01[7], stats.action.q99[7]) == (0.0, 1.0)


def test_unknown_action_mode_is_named():
    with pytest.raises(ValueError, match="action mode must be one of"):
        DataConfig(action_mode="velocity")
