"""The clients `vla bench serve` drives: each has act() (one round trip, both codecs included) and close()."""

from __future__ import annotations

import time
import uuid

import numpy as np

from benchmarks.serve_setup import CHUNK_SHAPE, CONCURRENCY, INSTRUCTION, NullPolicy


class GrpcUnaryClient:
    def __init__(self, port: int, spec, payload: dict):
        from robots.connection import PolicyConnection

        self.payload = payload
        self.connection = PolicyConnection(f"127.0.0.1:{port}", spec, robot_instance=f"bench-{uuid.uuid4().hex}",
                                           timeout_s=10.0)
        self.connection.start(INSTRUCTION)

    def act(self) -> np.ndarray:
        p = self.payload
        return self.connection.act(p["images"], p["joints"], p["gripper"]).actions

    def close(self) -> None:
        self.connection.close()


class GrpcStreamClient:
    """One long-lived StreamActions call: put a request, wait for its response."""

    def __init__(self, port: int, spec, payload: dict):
        import queue

        from robots.connection import PolicyConnection

        self.payload, self.spec = payload, spec
        self.connection = PolicyConnection(f"127.0.0.1:{port}", spec, robot_instance=f"bench-{uuid.uuid4().hex}",
                                           timeout_s=10.0)
        self.session_id = self.connection.start(INSTRUCTION)
        self.requests: queue.SimpleQueue = queue.SimpleQueue()
        self.sequence = 0

        def request_iterator():
            while (request := self.requests.get()) is not None:
                yield request

        self.responses = self.connection.stub.StreamActions(request_iterator())

    def act(self) -> np.ndarray:
        from robots.codec import decode_actions, encode_observation
        from robots.proto.vla.v1 import policy_pb2 as pb

        p = self.payload
        self.sequence += 1
        observation = encode_observation(p["images"], p["joints"], p["gripper"], time.monotonic())
        self.requests.put(pb.ActRequest(session_id=self.session_id, sequence=self.sequence,
                                        observation=observation))
        reply = next(self.responses)
        if reply.sequence != self.sequence:
            raise RuntimeError(f"StreamActions answered sequence {reply.sequence} to {self.sequence}")
        return decode_actions(reply.actions, self.spec)

    def close(self) -> None:
        self.requests.put(None)
        for _ in self.responses:  # drain: the server ends the stream once our requests end
            pass
        self.connection.close()


class InProcessClient:
    """The servicer's own Act path called directly: everything gRPC does minus the wire and serialization."""

    def __init__(self, spec, payload: dict):
        from policies.server import PolicyServicer
        from robots.proto.vla.v1 import policy_pb2 as pb

        self.payload, self.spec = payload, spec
        self.servicer = PolicyServicer(NullPolicy, spec, max_concurrent=max(CONCURRENCY), lease_ms=600_000)
        self.servicer.load()
        session = self.servicer._start_session(pb.StartSessionRequest(robot=spec.name, instruction=INSTRUCTION))
        self.session_id, self.sequence = session.session_id, 0

    def act(self) -> np.ndarray:
        from robots.codec import decode_actions, encode_observation
        from robots.proto.vla.v1 import policy_pb2 as pb

        p = self.payload
        self.sequence += 1
        observation = encode_observation(p["images"], p["joints"], p["gripper"], time.monotonic())
        reply = self.servicer._act(pb.ActRequest(session_id=self.session_id, sequence=self.sequence,
                                                 observation=observation))
        return decode_actions(reply.actions, self.spec)

    def close(self) -> None:
        pass


class ComparatorClient:
    def __init__(self, kind: str, port: int, observation: dict):
        from benchmarks import serve_comparators as comparators

        self.observation = observation
        self.client = comparators.WebsocketClient(port) if kind == "websocket" else comparators.HttpJsonClient(port)

    def act(self) -> np.ndarray:
        actions = self.client.act(self.observation)
        if actions.ndim != 2 or actions.shape[1] != CHUNK_SHAPE[1]:
            raise RuntimeError(f"expected a (K, {CHUNK_SHAPE[1]}) chunk, got {actions.shape}")
        return actions

    def close(self) -> None:
        self.client.close()
