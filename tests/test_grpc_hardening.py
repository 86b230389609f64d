"""What an outside probe campaign found: idle streams starving other callers, joint readings outside
the robot's ranges, unbounded strings, request bytes that do not parse. Each keeps the server serving."""

import queue
import threading
import time
from collections import Counter

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from policies.hold import HoldPolicy
from policies.rpc_guards import StreamLimits, StreamSlots, peer_address
from policies.server import MAX_FIELD_CHARS, serve
from robots.proto.vla.v1 import policy_pb2 as pb
from tests.test_grpc_server import SPEC, Client, client, observation, rpc_error  # noqa: F401 - client: the fixture, on this module's server

IDLE_S = 1.0
LIMITS = StreamLimits(max_total=16, max_per_peer=4, idle_s=IDLE_S)


@pytest.fixture(scope="module")
def server():
    handle = serve(HoldPolicy, SPEC, "127.0.0.1", 0, lease_ms=60_000, stream_limits=LIMITS)
    handle.wait_ready(5)
    yield handle
    handle.stop(0)


def _hold_streams(port: int, count: int, open_stream) -> tuple[list, list[threading.Thread], list]:
    """`count` calls from one channel (one peer) that never send a request; returns what each ended with."""
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    endings, never = [], queue.Queue()

    def silent_requests():
        never.get()  # blocks until the test ends
        yield pb.ActRequest()

    def hold():
        started = time.monotonic()
        try:
            for _ in open_stream(channel, silent_requests()):
                pass
            endings.append(("OK", "", 0.0))
        except grpc.RpcError as error:
            endings.append((error.code().name, error.details(), time.monotonic() - started))

    threads = [threading.Thread(target=hold, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return endings, threads, [channel, never]


def _stream_actions(channel, requests):
    return channel.stream_stream("/vla.v1.PolicyService/StreamActions",
                                 request_serializer=pb.ActRequest.SerializeToString,
                                 response_deserializer=pb.ActResponse.FromString)(requests)


def test_a_robot_keeps_being_served_while_one_peer_holds_50_idle_streams(server):
    endings, threads, (channel, never) = _hold_streams(server.port, 50, _stream_actions)
    try:
        time.sleep(0.3)  # the streams are open (or refused)
        robot = Client(server.port, instance="the robot")  # GetInfo-free path: StartSession + Act
        for _ in range(3):
            assert len(robot.act().actions) == 1
        assert robot.stub.GetInfo(pb.GetInfoRequest(), timeout=2).robot == "panda"
        health = health_pb2_grpc.HealthStub(robot.channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        robot.close()
        for thread in threads:
            thread.join(IDLE_S + 5)
    finally:
        for _ in threads:
            never.put(None)
        channel.close()
    by_code = Counter(code for code, _, _ in endings)
    assert by_code == {"RESOURCE_EXHAUSTED": 46, "DEADLINE_EXCEEDED": 4}, endings
    refused = [details for code, details, _ in endings if code == "RESOURCE_EXHAUSTED"]
    assert all("at most 4 per peer" in details for details in refused)
    idle = [(details, seconds) for code, details, seconds in endings if code == "DEADLINE_EXCEEDED"]
    assert all("no request for 1 s" in details and IDLE_S <= seconds < IDLE_S + 2 for details, seconds in idle)


def test_health_watch_streams_are_limited_like_the_others(server):
    def watch(channel, _requests):
        return health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=3)

    endings, threads, (channel, never) = _hold_streams(server.port, 12, watch)
    try:
        time.sleep(0.3)
        assert Counter(code for code, _, _ in endings) == {"RESOURCE_EXHAUSTED": 8}
        robot = Client(server.port, instance="watched robot")
        assert len(robot.act().actions) == 1
        robot.close()
        for thread in threads:
            thread.join(5)
    finally:
        channel.close()
    assert Counter(code for code, _, _ in endings) == {"RESOURCE_EXHAUSTED": 8, "DEADLINE_EXCEEDED": 4}


def test_a_stream_that_keeps_sending_is_not_idle(client):
    def requests():
        for sequence in range(1, 4):
            time.sleep(IDLE_S * 0.6)  # 1.8 idle limits in all, never one without a request
            yield pb.ActRequest(session_id=client.session_id, sequence=sequence, observation=observation())

    assert [r.sequence for r in client.stub.StreamActions(requests(), timeout=10)] == [1, 2, 3]


def test_stream_slots_per_peer_and_in_all():
    slots = StreamSlots(StreamLimits(max_total=3, max_per_peer=2))
    assert slots.take("ipv4:10.0.0.1") is None and slots.take("ipv4:10.0.0.1") is None
    assert "at most 2 per peer" in slots.take("ipv4:10.0.0.1")
    assert slots.take("ipv4:10.0.0.2") is None
    assert "maximum of 3 open streams" in slots.take("ipv4:10.0.0.3")
    slots.release("ipv4:10.0.0.1")
    assert slots.take("ipv4:10.0.0.3") is None and slots.held() == 3


@pytest.mark.parametrize("peer, address", [("ipv4:127.0.0.1:51234", "ipv4:127.0.0.1"),
                                           ("ipv6:[::1]:443", "ipv6:[::1]"), ("unix:/tmp/s", "unix:/tmp/s")])
def test_peer_address_drops_the_port(peer, address):
    assert peer_address(peer) == address


def test_stream_limits_are_checked():
    with pytest.raises(ValueError, match="max_per_peer"):
        StreamLimits(max_total=2, max_per_peer=3)
    with pytest.raises(ValueError, match="idle_s"):
        StreamLimits(idle_s=0)


@pytest.mark.parametrize("method, streaming", [("Act", False), ("StartSession", False), ("StreamActions", True)])
def test_request_bytes_that_do_not_parse_are_invalid_argument(client, method, streaming):
    garbage = b"\x0a\xff\xff\xff\xff\x0f"  # field 1, length far beyond the message
    path = f"/vla.v1.PolicyService/{method}"
    if streaming:
        call = client.channel.stream_stream(path)
        error = rpc_error(lambda: list(call(iter([garbage]), timeout=5)))
    else:
        error = rpc_error(client.channel.unary_unary(path), garbage, timeout=5)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert f"not a valid message for {path}" in error.details()
    assert len(client.act().actions) == 1


@pytest.mark.parametrize("joint, value", [(3, 1e308), (0, -1e308), (6, SPEC.joint_upper[6] + 0.15),
                                          (3, SPEC.joint_lower[3] - 0.15)])
def test_joint_readings_outside_the_robots_ranges_are_invalid_argument(client, joint, value):
    obs = observation()
    obs.joint_positions[joint] = value
    error = rpc_error(client.act, obs)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error.details()
    low, high = SPEC.joint_lower[joint] - SPEC.reading_margin, SPEC.joint_upper[joint] + SPEC.reading_margin
    assert details.startswith(f"observation.joint_positions[{joint}]: {value!r} rad is outside joint{joint + 1}'s")
    assert f"[{low:.4f}, {high:.4f}]" in details
    assert len(client.act().actions) == 1


def test_joint_readings_within_the_margin_are_accepted(client):
    joints = np.array(SPEC.joint_upper) + 0.5 * SPEC.reading_margin
    assert len(client.act(observation(joints=joints)).actions) == 1


def test_gripper_out_of_range_names_the_value_and_the_range(client):
    obs = observation()
    obs.gripper = -3.0
    error = rpc_error(client.act, obs)
    assert error.details() == "observation.gripper: -3.0 is outside the allowed range [0.0, 1.0]"


@pytest.mark.parametrize("field", ["robot_instance", "instruction", "robot"])
def test_start_session_strings_are_bounded(client, field):
    request = pb.StartSessionRequest(robot="panda", instruction="lift the cube", robot_instance="arm")
    setattr(request, field, "x" * 600_000)
    error = rpc_error(client.stub.StartSession, request, timeout=5)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"{field}: 600000 characters, at most {MAX_FIELD_CHARS[field]}"


def test_session_ids_are_bounded(client):
    error = rpc_error(client.act, session_id="s" * 100_000)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"session_id: 100000 characters, at most {MAX_FIELD_CHARS['session_id']}"


def test_vla_serve_reports_a_corrupt_checkpoint_in_one_line(tmp_path):
    import shutil
    import subprocess
    import sys

    from sim.policy_loader import checkpoint_dir

    corrupt = tmp_path / "corrupt"
    shutil.copytree(checkpoint_dir("default"), corrupt)
    with open(corrupt / "model.safetensors", "r+b") as weights:
        weights.truncate(100_000)
    run = subprocess.run([sys.executable, "-m", "vla.cli", "serve", "--policy", str(corrupt), "--port", "0"],
                         capture_output=True, text=True, timeout=120)  # a process of its own: its log goes to stderr
    errors = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(errors) == 1, run.stderr
    assert errors[0].startswith("vla serve: error: building the policy failed: ")
    assert f"{corrupt}/model.safetensors is corrupt" in errors[0]
