"""The policy server: validation, sessions, sequence numbers, limits; it keeps serving after bad input."""

import threading
import time

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grpc_helpers import rpc_error, running_server
from policies.base import ActionChunk
from policies.hold import HoldPolicy
from policies.server import serve
from robots.codec import JPEG, PNG, encode_observation
from robots.proto.vla.v1 import policy_pb2 as pb
from robots.proto.vla.v1 import policy_pb2_grpc as pb_grpc
from robots.spec import panda_spec

SIZE = 16
SPEC = panda_spec(image_size=SIZE)
CAMERAS = [c.name for c in SPEC.cameras]
JOINTS = np.array([0.0, 0.2, 0.0, -2.0, 0.0, 2.0, 0.8])


def observation(encoding=pb.Image.RAW_RGB8, joints=JOINTS, gripper=0.25) -> pb.Observation:
    rng = np.random.default_rng(0)
    images = {name: rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8) for name in CAMERAS}
    return encode_observation(images, joints, gripper, encoding=encoding)


class Client:
    """A stub plus one session with its own sequence counter."""

    def __init__(self, port, instance=""):
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = pb_grpc.PolicyServiceStub(self.channel)
        self.instance = instance
        self.session_id = self.start().session_id
        self.sequence = 0

    def start(self, robot="panda"):
        request = pb.StartSessionRequest(robot=robot, instruction="lift the cube", robot_instance=self.instance)
        return self.stub.StartSession(request, timeout=5)

    def act(self, obs=None, sequence=None, session_id=None):
        self.sequence = self.sequence + 1 if sequence is None else sequence
        request = pb.ActRequest(session_id=self.session_id if session_id is None else session_id,
                                sequence=self.sequence, observation=obs if obs is not None else observation())
        return self.stub.Act(request, timeout=5)

    def close(self):
        try:
            self.stub.EndSession(pb.EndSessionRequest(session_id=self.session_id), timeout=5)
        finally:
            self.channel.close()


@pytest.fixture(scope="module")
def server():
    yield from running_server(HoldPolicy, SPEC)


@pytest.fixture
def client(server, request):
    c = Client(server.port, instance=request.node.name)
    yield c
    c.close()


def test_act_returns_the_hold_chunk_with_timing(client):
    reply = client.act()
    assert reply.sequence == 1 and len(reply.actions) == 1 and reply.subtask == "hold"
    np.testing.assert_allclose(reply.actions[0].joint_positions, JOINTS, atol=1e-6)
    assert reply.actions[0].gripper == pytest.approx(0.25)
    assert reply.expires_in_ms == pytest.approx(2 / SPEC.control_hz * 1000)  # one action + one tick
    assert reply.inference_ms >= 0


@pytest.mark.parametrize("encoding", [JPEG, PNG])
def test_compressed_images_are_accepted(client, encoding):
    assert len(client.act(observation(encoding)).actions) == 1


def _mutate(kind: str) -> tuple[pb.Observation | None, str]:
    """A bad observation and the field the error must name."""
    obs = observation()
    if kind == "missing_camera":
        del obs.images[1]
        return obs, "observation.images"
    if kind == "unknown_camera":
        obs.images.add(camera="thermal", height=SIZE, width=SIZE, data=bytes(SIZE * SIZE * 3))
        return obs, "observation.images[2].camera"
    if kind == "duplicate_camera":
        obs.images[1].camera = CAMERAS[0]
        return obs, "observation.images[1].camera"
    if kind == "wrong_size":
        obs.images[0].height = SIZE * 2
        return obs, "observation.images[0].height"
    if kind == "wrong_encoding":
        obs.images[0].encoding = 7
        return obs, "observation.images[0].encoding"
    if kind in ("bad_jpeg", "bad_png"):
        obs.images[0].encoding = JPEG if kind == "bad_jpeg" else PNG
        obs.images[0].data = b"\xff\xd8 not an image"
        return obs, "observation.images[0].data"
    if kind == "png_sent_as_jpeg":
        obs = observation(PNG)
        obs.images[0].encoding = JPEG
        return obs, "observation.images[0].data"
    if kind == "wrong_data_length":
        obs.images[1].data = obs.images[1].data[:-3]
        return obs, "observation.images[1].data"
    if kind in ("nan_joint", "inf_joint"):
        obs.joint_positions[2] = np.nan if kind == "nan_joint" else np.inf
        return obs, "observation.joint_positions[2]"
    if kind == "wrong_joint_count":
        del obs.joint_positions[-1]
        return obs, "observation.joint_positions"
    if kind in ("gripper_out_of_range", "gripper_nan"):
        obs.gripper = 1.5 if kind == "gripper_out_of_range" else np.nan
        return obs, "observation.gripper"
    if kind == "nan_timestamp":
        obs.timestamp = np.nan
        return obs, "observation.timestamp"
    raise AssertionError(kind)


BAD_KINDS = ["missing_camera", "unknown_camera", "duplicate_camera", "wrong_size", "wrong_encoding", "bad_jpeg",
             "bad_png", "png_sent_as_jpeg", "wrong_data_length", "nan_joint", "inf_joint", "wrong_joint_count",
             "gripper_out_of_range", "gripper_nan", "nan_timestamp"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_observation_is_invalid_argument_naming_the_field_and_server_keeps_serving(client, kind):
    obs, field = _mutate(kind)
    error = rpc_error(client.act, obs)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(field + ":"), error.details()
    assert client.act().sequence == client.sequence  # the same session goes on


def test_missing_observation_and_empty_session_id(client):
    request = pb.ActRequest(session_id=client.session_id, sequence=1)
    error = rpc_error(client.stub.Act, request, timeout=5)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("observation:")
    error = rpc_error(client.act, session_id="")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("session_id:")


def test_unknown_session_is_not_found(client):
    assert rpc_error(client.act, session_id="nope").code() == grpc.StatusCode.NOT_FOUND
    error = rpc_error(client.stub.EndSession, pb.EndSessionRequest(session_id="nope"), timeout=5)
    assert error.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("sequences", [[0], [5, 5], [5, 4]])
def test_sequence_must_increase_strictly(client, sequences):
    for sequence in sequences[:-1]:
        client.act(sequence=sequence)
    error = rpc_error(client.act, sequence=sequences[-1])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "sequence" in error.details()
    assert client.act(sequence=100).sequence == 100


def test_one_writer_per_robot(server, client):
    error = rpc_error(client.start)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and error.details().startswith("robot:")
    other = Client(server.port, instance="another arm")  # another robot of the same type
    other.close()
    assert rpc_error(client.start, robot="ur5").code() == grpc.StatusCode.INVALID_ARGUMENT


def test_ended_or_lapsed_lease_frees_the_robot():
    handle = serve(HoldPolicy, SPEC, "127.0.0.1", 0, lease_ms=150)
    try:
        handle.wait_ready(5)
        first = Client(handle.port)
        first.act()
        time.sleep(0.2)
        second = Client(handle.port)  # the lease lapsed: the robot is free
        assert rpc_error(first.act).code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION)
        second.close()
        Client(handle.port).close()  # ended: free again
    finally:
        handle.stop(0)


class GatedPolicy(HoldPolicy):
    """Blocks in act() until `gate` is set; counts instances."""

    gate = threading.Event()
    entered = threading.Event()
    instances = 0

    def __init__(self):
        type(self).instances += 1

    def act(self, observation):
        type(self).entered.set()
        type(self).gate.wait(5)
        return super().act(observation)


def test_over_the_concurrency_limit_is_resource_exhausted_not_queued():
    GatedPolicy.gate.clear()
    GatedPolicy.entered.clear()
    handle = serve(GatedPolicy, SPEC, "127.0.0.1", 0, max_concurrent=1)
    try:
        handle.wait_ready(5)
        busy, second = Client(handle.port, "a"), Client(handle.port, "b")
        assert GatedPolicy.instances == 3  # the shared one + one per session
        worker = threading.Thread(target=busy.act)
        worker.start()
        assert GatedPolicy.entered.wait(5)
        started = time.perf_counter()
        error = rpc_error(second.act)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert time.perf_counter() - started < 1.0
        GatedPolicy.gate.set()
        worker.join(5)
        assert len(second.act().actions) == 1
    finally:
        GatedPolicy.gate.set()
        handle.stop(0)


class BrokenPolicy(HoldPolicy):
    def act(self, observation):
        if observation["robot0_gripper_qpos"][0] < 0.01:
            raise RuntimeError("boom")
        if observation["robot0_gripper_qpos"][0] < 0.02:
            return ActionChunk(np.zeros((2, 5)))
        return super().act(observation)


def test_policy_failures_are_internal_and_the_server_carries_on():
    handle = serve(BrokenPolicy, SPEC, "127.0.0.1", 0)
    try:
        handle.wait_ready(5)
        c = Client(handle.port)
        error = rpc_error(c.act, observation(gripper=0.9))
        assert error.code() == grpc.StatusCode.INTERNAL and "boom" in error.details()
        error = rpc_error(c.act, observation(gripper=0.6))
        assert error.code() == grpc.StatusCode.INTERNAL and "shape" in error.details()
        assert len(c.act().actions) == 1
    finally:
        handle.stop(0)


class BatchPolicy(HoldPolicy):
    def act_batch(self, observations):
        return [self.act(obs) for obs in observations]


def test_concurrent_acts_are_batched_when_the_policy_has_act_batch():
    handle = serve(BatchPolicy, SPEC, "127.0.0.1", 0, max_concurrent=4, batch_wait_ms=300)
    try:
        handle.wait_ready(5)
        clients = [Client(handle.port, str(i)) for i in range(3)]
        joints = [JOINTS + 0.01 * i for i in range(3)]
        replies = [None] * 3
        barrier = threading.Barrier(3)

        def run(i):
            barrier.wait()
            replies[i] = clients[i].act(observation(joints=joints[i]))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        assert max(handle.servicer.batcher.batch_sizes) > 1
        for i, reply in enumerate(replies):  # every caller got its own answer
            np.testing.assert_allclose(reply.actions[0].joint_positions, joints[i], atol=1e-6)
    finally:
        handle.stop(0)


def test_stream_actions_answers_in_order_and_ends_on_bad_input(client):
    def requests(bad_last):
        for sequence in (1, 2, 3):
            obs = _mutate("nan_joint")[0] if bad_last and sequence == 3 else observation()
            yield pb.ActRequest(session_id=client.session_id, sequence=sequence + 10 * bad_last, observation=obs)

    assert [r.sequence for r in client.stub.StreamActions(requests(False), timeout=5)] == [1, 2, 3]
    stream = client.stub.StreamActions(requests(True), timeout=5)
    assert [next(stream).sequence, next(stream).sequence] == [11, 12]
    error = rpc_error(next, stream)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "joint_positions" in error.details()


def test_oversized_message_is_refused(client):
    obs = observation()
    obs.images[0].data = bytes(2 * 1024 * 1024)
    assert rpc_error(client.act, obs).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(client.act().actions) == 1


floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
images = st.builds(
    pb.Image, camera=st.sampled_from(CAMERAS + ["", "x"]), height=st.sampled_from([0, SIZE, SIZE + 1]),
    width=st.sampled_from([SIZE, 3]), encoding=st.integers(0, 4),
    data=st.one_of(st.binary(max_size=64), st.just(bytes(SIZE * SIZE * 3))))
observations = st.builds(pb.Observation, images=st.lists(images, max_size=3),
                         joint_positions=st.lists(floats, max_size=9), gripper=floats, timestamp=floats)


@settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(use_session=st.booleans(), sequence=st.integers(0, 2**64 - 1), obs=st.one_of(st.none(), observations))
def test_fuzzed_act_requests_never_crash_the_server(client, use_session, sequence, obs):
    request = pb.ActRequest(session_id=client.session_id if use_session else "bogus", sequence=sequence)
    if obs is not None:
        request.observation.CopyFrom(obs)
    try:
        client.stub.Act(request, timeout=5)
    except grpc.RpcError as error:
        assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), error.details()
    assert client.stub.GetInfo(pb.GetInfoRequest(), timeout=5).robot == "panda"
