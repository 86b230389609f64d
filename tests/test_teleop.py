"""`vla teleop`: end-effector commands become joint targets by IK; the scripted operator records demos that
replay exactly and carry subtask labels from sim.segmentation."""

from dataclasses import dataclass

import numpy as np
import pytest

from sim.dataset import open_dataset, read_episode
from sim.replay import replay_file
from sim.teleop import EndEffectorTeleop, OperatorHabits, ScriptedOperator, TeleopCommand
from vla.cli import main

IMAGE = 64


@dataclass
class SteadyDevice:
    """Pushes the gripper along one direction, fingers open."""

    dpos: tuple = (0.0, 0.0, 0.005)

    def start(self, env) -> None:
        pass

    def read(self) -> TeleopCommand:
        return TeleopCommand(np.array(self.dpos), np.zeros(3), False)


def test_end_effector_commands_move_the_gripper_by_what_they_say(env_cache):
    from sim.experts.scene import Scene

    env = env_cache("lift", IMAGE)
    obs, _ = env.reset(seed=3)
    teleop = EndEffectorTeleop(env, SteadyDevice())
    teleop.reset(env.instruction)
    start = Scene(env).grip_site_pos()
    for _ in range(12):
        chunk = teleop.act(obs)
        assert chunk.actions.shape == (1, 8) and chunk.actions[0, -1] == 0.0
        obs, *_ = env.step(chunk.actions[0])
    moved = Scene(env).grip_site_pos() - start
    assert 0.04 < moved[2] < 0.07 and np.linalg.norm(moved[:2]) < 0.01  # 12 x 5 mm up, give or take the lag


def test_commands_beyond_the_speed_limit_are_clipped(env_cache):
    env = env_cache("lift", IMAGE)
    obs, _ = env.reset(seed=3)
    teleop = EndEffectorTeleop(env, SteadyDevice(dpos=(0.0, 0.0, 1.0)), max_step_m=0.02)
    teleop.reset(env.instruction)
    before = teleop.setpoint.copy()
    teleop.act(obs)
    assert np.linalg.norm(teleop.setpoint - before) == pytest.approx(0.02)


def test_vla_teleop_records_labelled_demos_that_replay_exactly(tmp_path, capsys):
    out = tmp_path / "teleop.hdf5"
    assert main(["teleop", "--task", "pick-color", "--device", "scripted", "--out", str(out), "--episodes", "1",
                 "--seed", "800000", "--image-size", str(IMAGE), "--instruction", "fetch me that cube", "--quiet"]) == 0
    assert "kept 1 teleoperated episodes" in capsys.readouterr().out
    info = open_dataset(out)
    episode = read_episode(out, info.demo_names[0])
    assert info.env_args["demonstrator"] == "teleop" and episode.extra_attrs["teleop"] == "ScriptedOperator"
    assert episode.success and episode.subtasks[0].startswith("reach the ")
    assert episode.instruction == "fetch me that cube"
    assert {"grasp", "lift"} <= set(episode.subtasks)
    assert all(result.faithful for result in replay_file(str(out), progress=False))


def test_the_operator_is_imperfect_but_repeatable(env_cache):
    env = env_cache("lift", IMAGE)

    def commands(habits: OperatorHabits) -> np.ndarray:
        env.reset(seed=11)
        operator = ScriptedOperator(seed=2, habits=habits)
        operator.start(env)
        return np.array([operator.read().dpos for _ in range(30)])

    habits = OperatorHabits(pause_chance=0.2)
    first, again = commands(habits), commands(habits)
    np.testing.assert_array_equal(first, again)  # the same seed, the same hand
    assert (np.abs(first).sum(axis=1) == 0).sum() >= 3  # it paused
    steady = commands(OperatorHabits(tremor_m=0.0, pause_chance=0.0, overshoot_chance=0.0))
    assert not np.allclose(first, steady)  # tremor and pauses change what it sends



def test_vla_robot_teleop_drives_through_the_safety_filter_and_records(tmp_path, capsys):
    """The operator in place of a policy server, on the simulated driver: the client loop's safety filter
    and watchdog stay in between, and --record keeps a labelled demo that replays."""
    out = tmp_path / "robot_teleop.hdf5"
    assert main(["robot", "--teleop", "scripted", "--task", "lift", "--steps", "150", "--seed", "3",
                 "--image-size", str(IMAGE), "--record", str(out), "--simulated-time"]) == 0
    printed = capsys.readouterr().out
    assert "-> scripted operator" in printed and "success True" in printed and "safety clips" in printed
    episode = read_episode(out, open_dataset(out).demo_names[0])
    assert episode.extra_attrs["teleop"] == "scripted" and {"grasp", "lift"} <= set(episode.subtasks)
    assert all(result.faithful for result in replay_file(str(out), progress=False))


def test_vla_robot_needs_a_server_or_an_operator(capsys):
    assert main(["robot", "--task", "lift", "--steps", "5", "--image-size", str(IMAGE)]) == 2
    assert "needs --server HOST:PORT (a policy server) or --teleop DEVICE" in capsys.readouterr().err
