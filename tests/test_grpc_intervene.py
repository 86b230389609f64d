"""rpc Intervene: an operator's subtask or instruction for a session, pursued by its next Act; validation,
auth, refusals one line each; never racing an Act in flight; the client side (PolicyConnection, RemotePolicy)."""

import threading
import time

import grpc
import numpy as np
import pytest

from grpc_helpers import rpc_error, running_server
from intervention_fakes import HoldingController, fake_hierarchical
from policies.base import Intervention
from policies.hold import HoldPolicy
from policies.remote import RemotePolicy
from policies.server import serve
from policies.vla_policy import FlatVlaPolicy
from robots.codec import encode_observation
from robots.connection import PolicyConnection, PolicyRpcError
from robots.proto.vla.v1 import policy_pb2 as pb
from robots.proto.vla.v1 import policy_pb2_grpc as pb_grpc
from robots.spec import panda_spec

SPEC = panda_spec(image_size=8)
JOINTS = np.array([0.0, 0.2, 0.0, -2.0, 0.0, 2.0, 0.8])
IMAGES = {c.name: np.zeros((c.height, c.width, 3), np.uint8) for c in SPEC.cameras}
TOKEN = "intervene-token"
BLUE = "put the blue cube on the red cube"


def observation() -> pb.Observation:
    return encode_observation(IMAGES, JOINTS, 0.0)


class Session:
    """A raw stub with one session (to send what PolicyConnection would refuse to)."""

    def __init__(self, port, instance="", metadata=()):
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub, self.metadata, self.sequence = pb_grpc.PolicyServiceStub(self.channel), metadata, 0
        request = pb.StartSessionRequest(robot="panda", instruction="lift the red cube", robot_instance=instance)
        self.session_id = self.stub.StartSession(request, timeout=5, metadata=metadata).session_id

    def act(self) -> pb.ActResponse:
        self.sequence += 1
        request = pb.ActRequest(session_id=self.session_id, sequence=self.sequence, observation=observation())
        return self.stub.Act(request, timeout=5, metadata=self.metadata)

    def intervene(self, text, kind=pb.AUTO, session_id=None) -> pb.InterveneResponse:
        request = pb.InterveneRequest(session_id=self.session_id if session_id is None else session_id, text=text,
                                      kind=kind)
        return self.stub.Intervene(request, timeout=5, metadata=self.metadata)


@pytest.fixture(scope="module")
def server():
    yield from running_server(fake_hierarchical, SPEC)


@pytest.fixture
def session(server, request):
    s = Session(server.port, instance=request.node.name)
    yield s
    s.channel.close()


def test_a_subtask_is_pursued_by_the_next_act_and_says_so(server, session):
    assert session.act().subtask == "reach the red cube"
    reply = session.intervene("lift", pb.SUBTASK)
    assert (reply.applied, reply.subtask, reply.instruction) == (pb.SUBTASK, "lift", "lift the red cube")
    assert [session.act().subtask for _ in range(3)] == ["lift"] * 3  # the planner's "reach" is an earlier phase
    policy = server.servicer.registry.get(session.session_id).policy
    assert policy.controller.seen[-1] == ("lift the red cube", "lift")


def test_an_instruction_becomes_the_sessions_and_the_planner_replans_at_once(server, session):
    assert session.act().subtask == "reach the red cube"
    reply = session.intervene(BLUE, pb.INSTRUCTION)
    assert (reply.applied, reply.subtask, reply.instruction) == (pb.INSTRUCTION, "", BLUE)
    assert server.servicer.registry.get(session.session_id).instruction == BLUE  # what observations carry now
    assert session.act().subtask == "reach the blue cube"
    policy = server.servicer.registry.get(session.session_id).policy
    assert policy.controller.seen[-1] == (BLUE, "reach the blue cube")


def test_auto_lets_the_policy_decide(session):
    assert session.intervene("  grasp ").applied == pb.SUBTASK
    assert session.act().subtask == "grasp"
    reply = session.intervene("pick up the blue cube")
    assert reply.applied == pb.INSTRUCTION and reply.instruction == "pick up the blue cube"


@pytest.mark.parametrize("text, kind, field", [
    ("", pb.AUTO, "text: empty"), ("   ", pb.SUBTASK, "text: empty"),
    ("x" * 1025, pb.AUTO, "text: 1025 characters, at most 1024"),
    ("grasp\nrelease", pb.AUTO, "text: holds control characters"), ("grasp\x07", pb.SUBTASK, "control characters"),
    ("grasp", 7, "kind: unknown value 7"),
])
def test_bad_requests_are_invalid_argument_in_one_line(session, text, kind, field):
    error = rpc_error(session.intervene, text, kind)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and field in error.details()
    assert "\n" not in error.details()
    assert session.act().subtask == "reach the red cube"  # nothing was applied, the session goes on


def test_unknown_or_missing_session(session):
    error = rpc_error(session.intervene, "grasp", session_id="f" * 32)
    assert error.code() == grpc.StatusCode.NOT_FOUND and "no session" in error.details()
    error = rpc_error(session.intervene, "grasp", session_id="")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "session_id: empty" in error.details()
    error = rpc_error(session.intervene, "grasp", session_id="s" * 65)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "session_id: 65 characters" in error.details()


class Predictor:
    def __init__(self):
        self.instructions = []

    def predict(self, observation, instruction):
        self.instructions.append(instruction)
        return np.tile(np.append(observation["robot0_joint_pos"], 0.0), (4, 1))


class HoldBatch(HoldPolicy):
    seen = []

    def act_batch(self, observations):
        type(self).seen += [obs["instruction"] for obs in observations]
        return [self.act(obs) for obs in observations]


@pytest.mark.parametrize("factory, refusal", [
    (lambda: FlatVlaPolicy(Predictor()),
     "this policy runs flat (no planner): it takes a new instruction, not a subtask"),
    (HoldBatch, "kind: this server batches every session on one shared policy"),
    (HoldPolicy, "the served policy (HoldPolicy) takes no interventions"),
])
def test_policies_that_cannot_take_a_subtask_refuse_it_with_failed_precondition(factory, refusal):
    handle = serve(factory, SPEC, "127.0.0.1", 0)
    try:
        handle.wait_ready(5)
        session = Session(handle.port)
        error = rpc_error(session.intervene, "grasp", pb.SUBTASK)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and error.details().startswith(refusal)
        if factory is HoldPolicy:
            return
        reply = session.intervene("grasp the blue cube")  # auto: an instruction for both
        assert reply.applied == pb.INSTRUCTION and reply.instruction == "grasp the blue cube"
        session.act()
        if factory is HoldBatch:
            assert HoldBatch.seen[-1] == "grasp the blue cube"
        else:
            assert handle.servicer.registry.get(session.session_id).policy.predictor.instructions == [
                "grasp the blue cube"]
    finally:
        handle.stop(0)


def test_an_intervention_waits_for_the_act_in_flight_and_the_next_act_pursues_it():
    controller = HoldingController()
    handle = serve(lambda: fake_hierarchical(controller), SPEC, "127.0.0.1", 0)
    try:
        handle.wait_ready(5)
        session = Session(handle.port)
        controller.gate, controller.entered = threading.Event(), threading.Event()
        replies = {}
        acting = threading.Thread(target=lambda: replies.update(act=session.act()))
        acting.start()
        assert controller.entered.wait(5)  # the Act is inside the policy
        intervening = threading.Thread(target=lambda: replies.update(intervene=session.intervene("lift")))
        intervening.start()
        time.sleep(0.3)
        assert "intervene" not in replies  # it waits for the session's lock
        controller.gate.set()
        acting.join(5)
        intervening.join(5)
        assert replies["act"].subtask == "reach the red cube" and replies["intervene"].subtask == "lift"
        assert session.act().subtask == "lift"
    finally:
        controller.gate.set()
        handle.stop(0)


def test_intervene_needs_the_token_like_every_rpc():
    handle = serve(fake_hierarchical, SPEC, "127.0.0.1", 0, token=TOKEN)
    try:
        handle.wait_ready(5)
        session = Session(handle.port, metadata=(("authorization", f"Bearer {TOKEN}"),))
        session.metadata = (("authorization", "Bearer wrong"),)
        assert rpc_error(session.intervene, "lift").code() == grpc.StatusCode.UNAUTHENTICATED
        with PolicyConnection(f"127.0.0.1:{handle.port}", SPEC, token=TOKEN, robot_instance="b") as connection:
            connection.start("lift the red cube")
            assert connection.intervene("lift").kind == "subtask"
            assert connection.act(IMAGES, JOINTS, 0.0).subtask == "lift"
    finally:
        handle.stop(0)


def test_connection_and_remote_policy_intervene(server):
    target = f"127.0.0.1:{server.port}"
    with PolicyConnection(target, SPEC, robot_instance="connection") as connection:
        with pytest.raises(PolicyRpcError, match="FAILED_PRECONDITION: no session yet"):
            connection.intervene("lift")
        with pytest.raises(ValueError, match="kind must be one of"):
            connection.intervene("lift", "order")
        connection.start("lift the red cube")
        reply = connection.intervene(BLUE, "instruction")
        assert (reply.kind, reply.subtask, reply.instruction) == ("instruction", "", BLUE)
        assert connection.instruction == BLUE  # a restarted session starts with it
        assert "planner replans" in reply.describe()
        assert connection.act(IMAGES, JOINTS, 0.0).subtask == "reach the blue cube"
    remote = RemotePolicy(target)
    try:
        remote.reset("lift the red cube")
        applied = remote.intervene("wave at the camera", "subtask")
        assert isinstance(applied, Intervention) and (applied.kind, applied.text) == ("subtask", "wave at the camera")
        assert "from the next chunk" in applied.description
        obs = {f"{name}_image": image for name, image in IMAGES.items()}
        obs.update(robot0_joint_pos=JOINTS, robot0_gripper_qpos=np.array([0.04, -0.04]))
        assert remote.act(obs).subtask == "wave at the camera"
    finally:
        remote.close()
