"""vla/retiming.py: slow, pausing demos replayed at a working pace; grasps keep every frame."""

import numpy as np
import pytest

from vla.data import Demo
from vla.retiming import gripper_settling, retimed, run_ends

OPEN, CLOSED = 0.0, 1.0


def _slow_pick() -> Demo:
    """A demo an operator drives: a creep (0.004 rad/step) with a 5-step pause, a dwell at the cube with the
    open fingers knocked about, a close (fingers settle over 4 steps while the arm holds), then a fast lift."""
    creep = np.linspace(0.0, 0.08, 21)[:, None] * np.ones(7)
    pause = np.repeat(creep[-1:], 5, axis=0)
    dwell = creep[-1] + np.array([[0.001], [-0.001], [0.001], [0.0]]) * np.ones(7)
    hold = np.repeat(creep[-1:], 6, axis=0)
    lift = creep[-1] + np.linspace(0.05, 0.3, 6)[:, None] * np.ones(7)
    joints = np.concatenate([creep, pause, dwell, hold, lift])
    gripper = np.r_[[OPEN] * (21 + 5 + 4), [CLOSED] * 12]
    fingers = np.full((len(joints), 2), 0.04)
    fingers[27] = 0.035  # a finger pushed by the cube during the dwell
    fingers[31:35] = np.linspace(0.03, 0.021, 4)[:, None]  # closing on the cube: moves the step after the command
    fingers[35:] = 0.021
    steps = len(joints)
    return Demo(images=np.arange(steps, dtype=np.uint8)[:, None, None, None, None] * np.ones((1, 1, 3, 2, 2), np.uint8),
                states=np.concatenate([joints, fingers], axis=1), actions=np.concatenate([joints, gripper[:, None]], 1),
                instruction="put the red cube in the bin", subtasks=[f"s{t}" for t in range(steps)],
                objects=np.arange(steps, dtype=float)[:, None] * np.ones(6))


def test_slow_stretches_merge_until_each_step_moves_the_targets_far_enough():
    demo = _slow_pick()
    ends = run_ends(demo.actions, demo.states[:, 7:], min_step=0.02)
    assert len(ends) < len(demo.actions) // 2
    steps = np.abs(np.diff(demo.actions[ends[ends <= 21], :7], axis=0)).max(1)
    assert (steps >= 0.02 - 1e-9).all()  # the creep now moves at the working pace
    assert not set(range(22, 26)) & set(ends)  # the pause is gone


def test_a_grasp_keeps_every_frame_until_the_fingers_rest_but_a_knock_does_not():
    demo = _slow_pick()
    closed = demo.actions[:, -1] > 0.5
    settling = gripper_settling(closed, demo.states[:, 7:])
    assert list(np.flatnonzero(settling)) == [30, 31, 32, 33, 34]  # command, then the fingers' four moving steps
    ends = run_ends(demo.actions, demo.states[:, 7:], min_step=0.02)
    assert {29, 30, 31, 32, 33, 34} <= set(ends)  # the frame before the close ends a run, each settling frame too
    assert 27 not in ends and 26 not in ends  # the knocked finger and the dwell do not


def test_retimed_demo_pairs_each_runs_first_frame_with_its_last_action():
    demo = _slow_pick()
    ends = run_ends(demo.actions, demo.states[:, 7:], min_step=0.02)
    starts = np.r_[0, ends[:-1] + 1]
    short = retimed(demo, 0.02)
    assert len(short.actions) == len(ends) == len(short.images) == len(short.subtasks) == len(short.objects)
    assert np.array_equal(short.actions, demo.actions[ends]) and np.array_equal(short.states, demo.states[starts])
    assert [int(i) for i in short.images[:, 0, 0, 0, 0]] == list(starts)  # observations from the runs' starts
    assert short.subtasks == [f"s{t}" for t in starts] and np.array_equal(short.objects[:, 0], starts)
    assert np.array_equal(short.actions[-1], demo.actions[-1])  # it still ends where the demo ended
    gripper = short.actions[:, -1]
    assert (np.diff(gripper) >= 0).all() and gripper[0] == OPEN and gripper[-1] == CLOSED


def test_zero_keeps_the_demo_and_a_negative_step_is_refused_in_one_line():
    demo = _slow_pick()
    assert retimed(demo, 0.0) is demo
    from vla.config import TrainConfig

    with pytest.raises(ValueError, match="retime_step.*>= 0.*--set train.retime_step"):
        TrainConfig(retime_step=-0.01)


def test_training_retimes_the_new_data_but_not_the_replay(tmp_path):
    from sim.dataset import DatasetWriter
    from tests.test_vla_model import _episode
    from vla.config import DataConfig, TrainConfig, VlaConfig
    from vla.train import prepare

    paths = []
    for name in ("new", "old"):
        paths.append(tmp_path / f"{name}.hdf5")
        with DatasetWriter(paths[-1], "pick-color", {"task": "pick-color"}) as writer:
            for seed in range(2):
                writer.write(_episode(seed, steps=12))
    config = VlaConfig(data=DataConfig(image_size=32, chunk_size=2))

    def frames(step):
        train_set = prepare([str(paths[0])], tmp_path / f"run{step}", config, TrainConfig(retime_step=step),
                            resume=False, replay=(str(paths[1]),))[3]
        return [len(d.actions) for d in train_set.demos]

    assert frames(0.0) == [12, 12, 12, 12]
    retimed_new, replay = frames(0.2)[:2], frames(0.2)[2:]
    assert max(retimed_new) < 12 and replay == [12, 12]
