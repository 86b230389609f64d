"""End to end: `hold` served over gRPC drives a simulated Panda through the robot client loop,
and `--policy grpc://HOST:PORT` works wherever a policy is expected."""

import numpy as np
import pytest

from policies.hold import HoldPolicy
from policies.remote import RemotePolicy
from policies.server import serve
from robots.client import ACT, RobotClient, SimulatedTime
from robots.driver import Driver, SimDriver
from robots.spec import panda_spec

IMAGE = 64
TOKEN = "e2e-token"


@pytest.fixture(scope="module")
def env():
    from sim.env import VlaEnv

    env = VlaEnv("lift", image_size=IMAGE)
    yield env
    env.close()


@pytest.fixture(scope="module")
def spec():
    return panda_spec(image_size=IMAGE)


@pytest.fixture(scope="module")
def server(spec):
    handle = serve(HoldPolicy, spec, "127.0.0.1", 0, token=TOKEN, model_name="hold")
    handle.wait_ready(5)
    yield handle
    handle.stop(0)


def test_spec_limits_match_the_simulated_robot(env, spec):
    np.testing.assert_allclose(spec.lower(), env.joint_low)
    np.testing.assert_allclose(spec.upper(), env.joint_high)


def test_sim_driver_speaks_the_driver_interface(env):
    driver = SimDriver(env)
    assert isinstance(driver, Driver)
    driver.reset(seed=1)
    joints, gripper = driver.read_state()
    images = driver.read_images()
    assert joints.shape == (7,) and 0.0 <= gripper <= 1.0
    assert set(images) == {"agentview", "robot0_eye_in_hand"} and images["agentview"].shape == (IMAGE, IMAGE, 3)
    driver.send_command(np.append(joints, gripper))
    assert env.steps == 1 and driver.commands_sent == 1


def _client(env, spec, server, **options):
    driver = SimDriver(env, finger_open_width=spec.finger_open_width)
    instruction = driver.reset(seed=0)
    client = RobotClient(driver, f"127.0.0.1:{server.port}", spec, instruction, token=TOKEN, keep_records=True,
                         **options)
    return driver, client


def test_hold_served_over_grpc_drives_the_sim_in_simulated_time(env, spec, server):
    clock = SimulatedTime()
    driver, client = _client(env, spec, server, **clock.loop_options())
    start, _ = driver.read_state()
    try:
        report = client.run(steps=12)
    finally:
        client.close()
    assert report.modes[ACT] == 11 and report.request_errors == 0, report  # tick 0 waits for the first chunk
    assert driver.commands_sent == 11 and env.steps == 11
    end, _ = driver.read_state()
    assert np.max(np.abs(end - start)) < 0.02  # holding: the arm stays put


def test_hold_served_over_grpc_drives_the_sim_in_real_time(env, spec, server):
    driver, client = _client(env, spec, server)
    try:
        report = client.run(steps=20)
    finally:
        client.close()
    assert report.modes[ACT] >= 5 and report.chunks >= 5, report
    assert all(r.time <= r.expires_at for r in client.records if r.mode == ACT)


def test_grpc_policy_spec_runs_an_episode(env, server, monkeypatch):
    from sim.policy_loader import make_policy
    from sim.rollout import run_episode

    monkeypatch.setenv("VLA_TOKEN", TOKEN)
    policy = make_policy(f"grpc://127.0.0.1:{server.port}", env)
    assert isinstance(policy, RemotePolicy)
    monkeypatch.setattr(env, "max_steps", 4)
    try:
        result = run_episode(env, policy, seed=3)
    finally:
        policy.close()
    assert result.steps == 4 and result.subtasks == ["hold"] * 4
    obs = env.observe()
    local = HoldPolicy().act(obs).actions
    remote = RemotePolicy(f"127.0.0.1:{server.port}", token=TOKEN)
    try:
        remote.reset(env.instruction)
        np.testing.assert_allclose(remote.act(obs).actions, local, atol=1e-5)
    finally:
        remote.close()


def test_vla_robot_command(server, capsys, tmp_path):
    from vla.cli import main

    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    code = main(["robot", "--server", f"127.0.0.1:{server.port}", "--robot", "panda", "--task", "lift",
                 "--steps", "6", "--image-size", str(IMAGE), "--token-file", str(token_file)])
    out = capsys.readouterr().out
    assert code == 0 and "ticks 6" in out and "success False" in out, out


def test_vla_robot_records_what_it_executed_as_a_replayable_demo(server, capsys, tmp_path):
    from sim.dataset import open_dataset, read_episode
    from sim.replay import replay_file
    from vla.cli import main

    token_file, out = tmp_path / "token", tmp_path / "robot.hdf5"
    token_file.write_text(TOKEN)
    for seed in (0, 1):  # the second run appends a demo
        code = main(["robot", "--server", f"127.0.0.1:{server.port}", "--task", "lift", "--steps", "8",
                     "--seed", str(seed), "--image-size", str(IMAGE), "--token-file", str(token_file),
                     "--record", str(out), "--simulated-time"])
        assert code == 0
    printed = capsys.readouterr().out
    info = open_dataset(out)
    assert info.env_name == "lift" and info.num_demos == 2, printed
    episode = read_episode(out, info.demo_names[1])
    steps = episode.num_samples
    assert f"recorded {steps} steps" in printed and steps == 7  # simulated time: the first tick asks, 7 act
    assert episode.seed == 1 and episode.subtasks == ["hold"] * steps
    assert episode.observations["agentview_image"].shape == (steps, IMAGE, IMAGE, 3)
    # hold answers the measured joints: every executed target is the joints it was executed from
    np.testing.assert_allclose(episode.actions[:, :7], episode.observations["robot0_joint_pos"], atol=1e-5)
    assert all(result.faithful for result in replay_file(str(out), progress=False))


def test_vla_robot_refuses_a_recording_file_of_another_task_before_moving(server, capsys, tmp_path):
    from sim.dataset import DatasetWriter, open_dataset
    from vla.cli import main

    out = tmp_path / "stack.hdf5"
    DatasetWriter(out, "stack", {"task": "stack"}).close()
    code = main(["robot", "--server", f"127.0.0.1:{server.port}", "--task", "lift", "--steps", "4",
                 "--image-size", str(IMAGE), "--record", str(out)])
    captured = capsys.readouterr()
    assert code != 0 and "holds env 'stack'" in captured.err and "ticks" not in captured.out
    assert open_dataset(out).num_demos == 0


def test_vla_robot_exits_nonzero_with_a_summary_when_its_server_died(spec, capsys):
    import threading

    from vla.cli import main

    served = threading.Semaphore(0)

    class CountingHold(HoldPolicy):
        def act(self, observation):
            served.release()
            return super().act(observation)

    dying = serve(CountingHold, spec, "127.0.0.1", 0)
    dying.wait_ready(5)

    def kill_after_three_chunks():
        for _ in range(3):
            served.acquire(timeout=60)
        dying.stop(grace=0)  # never restarted

    killer = threading.Thread(target=kill_after_three_chunks)
    killer.start()
    try:
        code = main(["robot", "--server", f"127.0.0.1:{dying.port}", "--task", "lift", "--steps", "50",
                     "--image-size", str(IMAGE), "--simulated-time"])
    finally:
        killer.join()
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert code == 1 and len(errors) == 1, captured
    assert errors[0].startswith("vla robot: error: ticks 50 (act ") and "stop 1" in errors[0]
    assert "no reachable policy at the end" in errors[0] and "UNAVAILABLE" in errors[0]


def test_vla_robot_exits_nonzero_when_no_server_ever_answered(capsys):
    from vla.cli import main

    code = main(["robot", "--server", f"127.0.0.1:{_unused_port()}", "--task", "lift", "--steps", "5",
                 "--image-size", str(IMAGE)])
    err = capsys.readouterr().err
    assert code == 1 and "chunks 0" in err and "no reachable policy at the end" in err


def test_vla_robot_record_leaves_no_new_file_when_nothing_was_recorded(capsys, tmp_path):
    from vla.cli import main

    out = tmp_path / "robot.hdf5"
    code = main(["robot", "--server", f"127.0.0.1:{_unused_port()}", "--task", "lift", "--steps", "3",
                 "--image-size", str(IMAGE), "--record", str(out)])
    assert code == 1 and "nothing recorded" in capsys.readouterr().out
    assert not out.exists()  # a rerun with another --task is not refused by an empty file of this one


def _unused_port() -> int:
    """A loopback port nobody listens on."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
