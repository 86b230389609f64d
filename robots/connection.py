"""The robot side of vla.v1: a channel, one session, increasing sequence numbers.

    conn = PolicyConnection("127.0.0.1:50051", spec=panda_spec())
    conn.start("pick up the red cube")
    reply = conn.act(images={"agentview": img, ...}, joints=q, gripper=0.0)   # ChunkReply
    conn.intervene("grasp")        # an operator's correction: the next act() pursues it (InterventionReply)
    conn.close()

A lapsed lease or a restarted server (NOT_FOUND / FAILED_PRECONDITION on Act) makes
`act` start a fresh session once and retry; every other failure raises PolicyRpcError.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import grpc
import numpy as np

from robots.codec import RAW, decode_actions, encode_observation
from robots.proto.vla.v1 import policy_pb2 as pb
from robots.proto.vla.v1 import policy_pb2_grpc as pb_grpc
from robots.spec import RobotSpec
from robots.transport import DEFAULT_MAX_MESSAGE_BYTES, bearer_metadata, channel_options, client_credentials

RESTART_CODES = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION)
INTERVENE_KINDS = {"auto": pb.AUTO, "subtask": pb.SUBTASK, "instruction": pb.INSTRUCTION}


class PolicyRpcError(RuntimeError):
    """An RPC to the policy server failed; `code` is the grpc.StatusCode (None: bad reply)."""

    def __init__(self, what: str, code: grpc.StatusCode | None, details: str):
        name = code.name if code is not None else "INVALID_REPLY"
        super().__init__(f"{what} failed: {name}: {details}")
        self.code = code
        self.details = details


@dataclass(frozen=True)
class ChunkReply:
    """actions (K, N + 1) float32; received_at (client clock, s); expires_at = received_at + expires_in."""

    actions: np.ndarray
    subtask: str
    inference_ms: float
    expires_in_ms: float
    received_at: float

    @property
    def expires_at(self) -> float:
        return self.received_at + self.expires_in_ms / 1000.0


@dataclass(frozen=True)
class InterventionReply:
    """What the server made of an intervention: kind "subtask" or "instruction", the subtask the session now
    pursues ("" after an instruction: the planner replans at the next Act) and the session's instruction."""

    kind: str
    subtask: str
    instruction: str

    def describe(self) -> str:
        """One line for an operator."""
        if self.kind == "subtask":
            return f"subtask {self.subtask!r} from the next chunk on"
        return f"instruction {self.instruction!r} from the next chunk on; the planner replans"


class PolicyConnection:
    """Thread-safe for one caller at a time (the robot client's request thread); intervene() may come from
    another thread (an operator's console)."""

    def __init__(self, target: str, spec: RobotSpec, *, token: str | None = None, root_cert: bytes | None = None,
                 client_cert: bytes | None = None, client_key: bytes | None = None, robot_instance: str = "",
                 timeout_s: float = 2.0, image_encoding: int = RAW, clock=time.monotonic,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, tls_server_name: str | None = None):
        self.target, self.spec, self.robot_instance = target, spec, robot_instance
        self.timeout_s, self.image_encoding, self.clock = timeout_s, image_encoding, clock
        self.metadata = bearer_metadata(token)
        options = channel_options(max_message_bytes, tls_server_name)
        if root_cert is not None or client_cert is not None:
            credentials = client_credentials(root_cert, client_cert, client_key)
            self.channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(target, options=options)
        self.stub = pb_grpc.PolicyServiceStub(self.channel)
        self.session_id: str | None = None
        self.instruction = ""
        self.sequence = 0
        self._lock = threading.Lock()

    def _call(self, what: str, method, request, timeout: float | None = None):
        try:
            return method(request, timeout=timeout or self.timeout_s, metadata=self.metadata)
        except grpc.RpcError as error:
            raise PolicyRpcError(what, error.code(), error.details()) from None

    def info(self) -> pb.PolicyInfo:
        return self._call("GetInfo", self.stub.GetInfo, pb.GetInfoRequest())

    def start(self, instruction: str) -> str:
        """End any session of ours, then take the lease for a new one; returns its id."""
        with self._lock:
            self._end_quietly()
            request = pb.StartSessionRequest(robot=self.spec.name, instruction=instruction,
                                             robot_instance=self.robot_instance)
            session = self._call("StartSession", self.stub.StartSession, request)
            self.session_id, self.instruction, self.sequence = session.session_id, instruction, 0
            return self.session_id

    def act(self, images: dict, joints, gripper: float, timestamp: float | None = None) -> ChunkReply:
        """images {camera: (H, W, 3) uint8}, joints (N,), gripper in [0, 1] -> the next chunk."""
        observation = encode_observation(images, joints, gripper, self.clock() if timestamp is None else timestamp,
                                         self.image_encoding)
        try:
            return self._act_once(observation)
        except PolicyRpcError as error:
            if error.code not in RESTART_CODES:
                raise
            self.start(self.instruction)  # the server forgot us (restart) or our lease lapsed
            return self._act_once(observation)

    def _act_once(self, observation: pb.Observation) -> ChunkReply:
        with self._lock:
            if self.session_id is None:
                raise PolicyRpcError("Act", grpc.StatusCode.FAILED_PRECONDITION, "no session: call start() first")
            self.sequence += 1
            request = pb.ActRequest(session_id=self.session_id, sequence=self.sequence, observation=observation)
            reply = self._call("Act", self.stub.Act, request)
        received_at = self.clock()
        try:
            actions = decode_actions(reply.actions, self.spec)
        except ValueError as error:
            raise PolicyRpcError("Act", None, str(error)) from None
        if not np.isfinite(reply.expires_in_ms) or reply.expires_in_ms <= 0:
            raise PolicyRpcError("Act", None, f"expires_in_ms must be positive, got {reply.expires_in_ms}")
        return ChunkReply(actions, reply.subtask, reply.inference_ms, reply.expires_in_ms, received_at)

    def intervene(self, text: str, kind: str = "auto") -> InterventionReply:
        """An operator's subtask or new instruction (kind "auto", "subtask" or "instruction") for this
        session; the next act() pursues it. May be called from another thread than act()'s: it waits for
        an Act in flight. An instruction also becomes the one a restarted session starts with."""
        if kind not in INTERVENE_KINDS:
            raise ValueError(f"intervention kind must be one of {', '.join(INTERVENE_KINDS)}, got {kind!r}")
        with self._lock:
            if self.session_id is None:
                raise PolicyRpcError("Intervene", grpc.StatusCode.FAILED_PRECONDITION, "no session yet: call start() "
                                     "first")
            request = pb.InterveneRequest(session_id=self.session_id, text=text, kind=INTERVENE_KINDS[kind])
            reply = self._call("Intervene", self.stub.Intervene, request)
            if reply.applied not in (pb.SUBTASK, pb.INSTRUCTION):
                raise PolicyRpcError("Intervene", None, f"applied must be SUBTASK or INSTRUCTION, got {reply.applied}")
            if reply.applied == pb.INSTRUCTION:
                self.instruction = reply.instruction
        return InterventionReply("subtask" if reply.applied == pb.SUBTASK else "instruction", reply.subtask,
                                 reply.instruction)

    def end(self) -> None:
        with self._lock:
            self._end_quietly()

    def _end_quietly(self) -> None:
        if self.session_id is None:
            return
        try:
            self.stub.EndSession(pb.EndSessionRequest(session_id=self.session_id), timeout=self.timeout_s,
                                 metadata=self.metadata)
        except grpc.RpcError:
            pass  # the server may be gone; its lease lapses on its own
        self.session_id = None

    def close(self) -> None:
        self.end()
        self.channel.close()

    def __enter__(self) -> "PolicyConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
