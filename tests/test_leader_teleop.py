"""Joint-space teleop (robots/leader.py, sim/leader.py): a leader arm's joints are the robot's targets, through
the robot client's safety filter and watchdog; `vla robot --teleop leader --record` keeps the demo."""

import numpy as np
import pytest

from robots.client import ACT, HOLD, STOP, RobotClient, SimulatedTime
from robots.leader import LeaderArm, LeaderMapping, LeaderReadError, LeaderSource
from robots.safety import SafetyFilter
from sim.dataset import open_dataset, read_episode
from sim.leader import ReplayLeader
from vla.cli import main
from robot_fakes import HOME, SPEC, FakeDriver

IMAGE = 64


class FakeLeader:
    """Reads `script(n)`: a (joints, gripper) reading or an exception to raise."""

    def __init__(self, script):
        self.script, self.reads = script, 0

    def read(self):
        answer = self.script(self.reads)
        self.reads += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_each_request_is_the_leaders_pose_as_a_one_action_chunk():
    source = LeaderSource(FakeLeader(lambda n: (HOME + 0.01 * n, 1.0)), SPEC, clock=lambda: 5.0)
    assert isinstance(source.leader, LeaderArm) and source.session_id is None
    assert source.start("lift") == source.session_id
    first, second = (source.act({}, HOME, 0.0) for _ in range(2))
    assert first.actions.shape == (1, SPEC.action_dim) and first.actions.dtype == np.float32
    np.testing.assert_allclose(first.actions[0], np.append(HOME, 1.0), atol=1e-6)
    np.testing.assert_allclose(second.actions[0, :-1], HOME + 0.01, atol=1e-6)
    assert first.received_at == 5.0 and first.expires_at == pytest.approx(5.0 + 2 * SPEC.dt)
    source.close()
    assert source.session_id is None


def test_the_mapping_calibrates_joints_and_scales_the_gripper():
    mapping = LeaderMapping(joint_offset=(0.1,) * 7, joint_sign=(1, -1, 1, 1, 1, 1, 1), gripper_open=0.2,
                            gripper_closed=0.6)
    source = LeaderSource(FakeLeader(lambda n: (HOME, [0.4, 0.9, 0.0][n])), SPEC, mapping)
    actions = [source.act({}, HOME, 0.0).actions[0] for _ in range(3)]
    np.testing.assert_allclose(actions[0][:-1], HOME * [1, -1, 1, 1, 1, 1, 1] + 0.1, atol=1e-6)
    assert [a[-1] for a in actions] == pytest.approx([0.5, 1.0, 0.0])  # clipped to [0, 1]
    with pytest.raises(ValueError, match="joint_offset has 3 values for 7 joints"):
        LeaderSource(FakeLeader(lambda n: (HOME, 0.0)), SPEC, LeaderMapping(joint_offset=(0.0,) * 3))


@pytest.mark.parametrize("reading, message", [
    (OSError("USB cable unplugged"), "leader arm read failed: OSError: USB cable unplugged"),
    ((HOME[:6], 0.0), "leader arm gave 6 joints, the robot panda has 7"),
    ((np.append(HOME[:6], np.nan), 0.0), "non-finite reading"),
    ((HOME, float("inf")), "non-finite reading"),
    (("not a number", 0.0), "leader arm read failed: ValueError"),
])
def test_a_bad_reading_is_a_clear_error(reading, message):
    source = LeaderSource(FakeLeader(lambda n: reading), SPEC)
    with pytest.raises(LeaderReadError, match=message):
        source.act({}, HOME, 0.0)


def test_a_leader_that_stops_answering_makes_the_client_hold_then_stop_then_resume():
    """Reads 0-4 work, 5-19 fail, then it answers again: the client's watchdog treats it like a lost policy."""
    clock, driver = SimulatedTime(100.0), FakeDriver()
    leader = FakeLeader(lambda n: OSError("bus timeout") if 5 <= n < 20 else (HOME + 0.001 * min(n, 5), 0.0))
    client = RobotClient(driver, LeaderSource(leader, SPEC, clock=clock), SPEC, "lift", **clock.loop_options(),
                         keep_records=True, retry_s=0.0)
    report = client.run(steps=30)
    modes = [record.mode for record in client.records]
    assert report.request_errors == 15 and "leader arm read failed: OSError: bus timeout" in report.last_error
    assert HOLD in modes and STOP in modes and driver.stops == 1
    assert modes[-1] == ACT and not report.policy_lost  # picked up again once the leader reads
    np.testing.assert_allclose(driver.commands[-1][:-1], HOME + 0.005, atol=1e-9)


def test_vla_robot_follows_a_leader_replaying_a_demo_through_the_safety_filter(one_demo_file, tmp_path, capsys):
    """The leader replays an expert demo of lift on its seed: every executed command is the leader's target as
    the safety filter let it through, the episode succeeds, and --record keeps one labelled demo."""
    demo = one_demo_file("lift", 3, IMAGE)
    leader_actions = read_episode(demo, "demo_0").actions
    out = tmp_path / "leader.hdf5"
    assert main(["robot", "--task", "lift", "--teleop", "leader", "--leader-replay", f"{demo}:demo_0", "--seed",
                 "3", "--steps", "80", "--image-size", str(IMAGE), "--record", str(out), "--simulated-time"]) == 0
    printed = capsys.readouterr().out
    assert "-> leader operator" in printed and "success True" in printed and "request errors 0" in printed
    assert "expired dropped 0" in printed and "overruns 0" in printed  # simulated time: never behind, however loaded
    info = open_dataset(out)
    assert info.num_demos == 1
    episode = read_episode(out, info.demo_names[0])
    assert episode.success and episode.actions.shape[1] == SPEC.action_dim and len(episode.actions) >= 10
    assert episode.extra_attrs["teleop"] == "leader" and "grasp" in episode.subtasks
    safety = SafetyFilter(SPEC)
    for step, executed in enumerate(episode.actions):
        target = leader_actions[min(step, len(leader_actions) - 1)]  # the leader stays at its last pose
        measured = episode.observations["robot0_joint_pos"][step]
        expected = safety.filter(target, measured, SPEC.dt).command
        np.testing.assert_allclose(executed, expected, atol=1e-5, err_msg=f"step {step}")


def test_vla_robot_follows_the_simulated_expert_leader(tmp_path, capsys):
    out = tmp_path / "leader.hdf5"
    assert main(["robot", "--task", "lift", "--teleop", "leader", "--seed", "3", "--steps", "100",
                 "--image-size", str(IMAGE), "--record", str(out), "--simulated-time"]) == 0
    assert "success True" in capsys.readouterr().out
    episode = read_episode(out, open_dataset(out).demo_names[0])
    assert episode.success and {"grasp", "lift"} <= set(episode.subtasks)


def test_replayed_demos_are_named_and_checked(one_demo_file, tmp_path):
    demo = one_demo_file("lift", 3, IMAGE)
    assert ReplayLeader.from_file(demo).seed == 3
    with pytest.raises(ValueError, match="has no demo 'demo_9'"):
        ReplayLeader.from_file(f"{demo}:demo_9")
    leader = ReplayLeader(np.array([[0.0] * 7 + [1.0], [0.1] * 7 + [0.0]]))
    readings = [leader.read() for _ in range(3)]
    assert [gripper for _, gripper in readings] == [1.0, 0.0, 0.0]  # stays at the last pose
    assert main(["robot", "--server", "127.0.0.1:1", "--leader-replay", demo, "--image-size", str(IMAGE)]) == 2
