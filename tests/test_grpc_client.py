"""The robot client loop: chunk queue, expiry, watchdog (hold then stop), reconnection."""

import threading
import time
from concurrent.futures import Future

import grpc
import numpy as np

from policies.hold import HoldPolicy
from policies.server import serve
from robots.client import ACT, HOLD, IDLE, STOP, InlineExecutor, RobotClient, SimulatedTime
from robots.connection import ChunkReply, PolicyConnection, PolicyRpcError
from robot_fakes import HOME, SPEC, FakeDriver

DT = SPEC.dt


class ScriptedConnection:
    """Answers act() from `script(n)`: a ChunkReply-making (actions, expires_in_ms) or an exception."""

    def __init__(self, clock, script):
        self.clock, self.script = clock, script
        self.session_id, self.calls = None, []

    def start(self, instruction):
        self.session_id = "s"

    def act(self, images, joints, gripper):
        self.calls.append(self.clock())
        answer = self.script(len(self.calls) - 1, joints)
        if isinstance(answer, Exception):
            raise answer
        actions, expires_in_ms = answer
        return ChunkReply(np.asarray(actions, np.float32), "", 1.0, expires_in_ms, self.clock())


def ramp(joints, k, step=0.001):
    """(k, 8) small moves from joints."""
    return np.array([np.append(joints + step * (i + 1), 0.0) for i in range(k)])


def simulated_client(script, **options):
    clock, driver = SimulatedTime(100.0), FakeDriver()
    connection = ScriptedConnection(clock, script)
    client = RobotClient(driver, connection, SPEC, "lift", **clock.loop_options(),
                         keep_records=True, **options)
    return client, driver, connection, clock


def modes(client):
    return [r.mode for r in client.records]


def test_chunks_are_executed_in_order_skipping_ticks_already_gone_by():
    client, driver, connection, _ = simulated_client(lambda n, q: (ramp(q, 8), 2000.0), refill_below=2)
    client.run(steps=8)
    first = ramp(HOME, 8)
    # tick 0 asks; the chunk is taken at tick 1, whose slot is action 1
    np.testing.assert_allclose(driver.commands[:5], first[1:6], atol=1e-6)
    assert modes(client)[:2] == [IDLE, ACT] and client.report.chunks >= 2
    assert len(connection.calls) == client.report.chunks  # asked again when the queue ran low, not every tick


def test_by_default_the_next_chunk_is_asked_for_when_half_the_chunk_is_left():
    client, _, connection, clock = simulated_client(lambda n, q: (ramp(q, 8), 2000.0))
    client.run(steps=6)
    np.testing.assert_allclose(np.diff(connection.calls), [4 * DT])  # 7 queued at tick 1, 4 left at tick 4


def test_an_expired_chunk_is_never_executed():
    client, driver, _, _ = simulated_client(lambda n, q: (ramp(q, 4), 0.5 * DT * 1000))  # expires within a tick
    client.run(steps=10)
    assert driver.commands == [] and client.report.expired_dropped > 0
    assert set(modes(client)) == {IDLE}


def test_a_chunk_stops_at_its_expiry():
    client, driver, _, _ = simulated_client(lambda n, q: (ramp(q, 20), 4.5 * DT * 1000) if n == 0 else
                                            PolicyRpcError("Act", grpc.StatusCode.UNAVAILABLE, "down"))
    client.run(steps=20)
    acts = [r for r in client.records if r.mode == ACT]
    assert len(acts) == 4  # ticks 1..4 are within 4.5 ticks of receipt; the rest expired
    assert all(r.time <= r.expires_at for r in acts)


def test_watchdog_holds_at_most_200ms_then_stops_once_and_sends_nothing():
    client, driver, _, _ = simulated_client(lambda n, q: (ramp(q, 1), 2 * DT * 1000) if n < 5 else
                                            PolicyRpcError("Act", grpc.StatusCode.UNAVAILABLE, "down"))
    client.run(steps=30)
    records = client.records
    last_act = max(r.time for r in records if r.mode == ACT)
    holds = [r for r in records if r.mode == HOLD]
    (stop,) = [r for r in records if r.mode == STOP]
    assert holds and all(last_act < r.time <= last_act + 0.2 + 1e-9 for r in holds)
    assert last_act + 0.2 < stop.time <= last_act + 0.2 + DT + 1e-9
    assert all(r.mode == IDLE for r in records if r.time > stop.time)
    assert driver.stops == 1
    sent_after_stop = len(driver.commands) - sum(r.mode in (ACT, HOLD) for r in records)
    assert sent_after_stop == 0
    for command in driver.commands[-len(holds):]:  # holds keep the last target
        np.testing.assert_allclose(command, driver.commands[-len(holds) - 1], atol=1e-6)


def test_requests_are_retried_and_the_loop_resumes_when_the_server_answers_again():
    down = range(3, 12)
    client, driver, connection, _ = simulated_client(
        lambda n, q: PolicyRpcError("Act", grpc.StatusCode.UNAVAILABLE, "down") if n in down else (ramp(q, 1), 100.0),
        retry_s=0.1)
    client.run(steps=60)
    sequence = "".join(m[0] for m in modes(client))
    assert "as" in sequence.replace("h", "") and sequence.rstrip("a").endswith("i")  # stopped, idle, then acts
    assert modes(client)[-1] == ACT and client.report.request_errors == len(down)
    gaps = np.diff(connection.calls[3:12])
    assert np.all(gaps >= 0.1 - 1e-9)  # no hammering while the server is down


def test_a_run_that_ends_while_the_server_is_down_reports_the_policy_lost():
    client, _, _, _ = simulated_client(
        lambda n, q: PolicyRpcError("Act", grpc.StatusCode.UNAVAILABLE, "Connection refused") if n >= 3
        else (ramp(q, 1), 100.0), retry_s=0.1)
    report = client.run(steps=40)
    assert report.chunks == 3 and report.policy_lost
    summary = report.summary()
    assert summary.startswith(f"ticks 40 (act {report.modes[ACT]}, hold {report.modes[HOLD]}, stop 1, idle ")
    assert "no reachable policy at the end" in summary and "Connection refused" in summary and "\n" not in summary


def test_a_run_that_ends_after_the_server_came_back_is_not_lost():
    client, _, _, _ = simulated_client(
        lambda n, q: PolicyRpcError("Act", grpc.StatusCode.UNAVAILABLE, "down") if 3 <= n < 6 else (ramp(q, 1), 100.0),
        retry_s=0.1)
    report = client.run(steps=40)
    assert report.request_errors == 3 and not report.policy_lost
    assert "no reachable policy" not in report.summary()


def test_a_run_that_never_got_a_chunk_is_lost():
    client, _, _, _ = simulated_client(lambda n, q: PolicyRpcError("Act", grpc.StatusCode.UNAVAILABLE, "refused"))
    assert client.run(steps=5).policy_lost


def test_late_reply_skips_the_actions_whose_ticks_passed():
    clock, driver = SimulatedTime(100.0), FakeDriver()
    future = Future()

    class ManualExecutor(InlineExecutor):
        def submit(self, fn, *args):
            return future

    client = RobotClient(driver, ScriptedConnection(clock, None), SPEC, "lift", clock=clock, sleep=clock.sleep,
                         executor=ManualExecutor())
    for _ in range(3):
        client.tick()
    chunk = ramp(HOME, 6)
    future.set_result(ChunkReply(chunk.astype(np.float32), "", 1.0, 10_000.0, clock()))
    client.tick()
    np.testing.assert_allclose(driver.commands[0], chunk[3], atol=1e-6)


# -- against a real server ----------------------------------------------------------------
def _run_in_thread(client, stop_event):
    thread = threading.Thread(target=client.run, kwargs={"should_stop": stop_event.is_set}, daemon=True)
    thread.start()
    return thread


def _wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_server_killed_mid_episode_client_holds_then_stops_and_resumes_after_restart():
    handle = serve(HoldPolicy, SPEC, "127.0.0.1", 0)
    handle.wait_ready(5)
    port = handle.port
    driver, stop_event = FakeDriver(), threading.Event()
    connection = PolicyConnection(f"127.0.0.1:{port}", SPEC, timeout_s=1.0)
    client = RobotClient(driver, connection, SPEC, "lift", keep_records=True)
    thread = _run_in_thread(client, stop_event)
    try:
        assert _wait_for(lambda: client.report.modes[ACT] >= 5, 5)
        handle.stop(0)
        assert _wait_for(lambda: client.report.modes[STOP] == 1, 3)
        records = list(client.records)
        last_act = max(r.time for r in records if r.mode == ACT)
        stop = next(r for r in records if r.mode == STOP)
        assert stop.time - last_act <= 0.2 + DT + 0.05  # 200 ms + one tick (+ scheduling slack)
        assert all(r.time <= r.expires_at for r in records if r.mode == ACT)
        acts_before = client.report.modes[ACT]
        handle = serve(HoldPolicy, SPEC, "127.0.0.1", port)  # the server comes back on the same port
        handle.wait_ready(5)
        assert _wait_for(lambda: client.report.modes[ACT] > acts_before + 3, 5), client.report
        assert all(r.time <= r.expires_at for r in client.records if r.mode == ACT)
    finally:
        stop_event.set()
        thread.join(5)
        client.close()
        connection.close()
        handle.stop(0)
    np.testing.assert_allclose(driver.joints, HOME, atol=1e-5)  # hold policy + hold mode: never moved
