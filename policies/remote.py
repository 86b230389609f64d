"""RemotePolicy: a policy served over gRPC, behind the same contract as a local one.

    policy = RemotePolicy("127.0.0.1:50051")        # what `--policy grpc://127.0.0.1:50051` builds
    policy.reset("lift the cube"); chunk = policy.act(obs)

reset() starts a session (taking the robot's lease), act() sends one Act with the next sequence
number and returns the chunk as an ActionChunk, intervene() sends an Intervene for the session (what
the served policy makes of it comes back as an Intervention). RPC failures raise PolicyRpcError with
the status code and the server's message.
"""

from __future__ import annotations

import os
import socket

import numpy as np

from policies.base import ActionChunk, Intervention, Observation
from robots.codec import RAW, finger_qpos_to_gripper
from robots.connection import PolicyConnection, PolicyRpcError  # noqa: F401 (re-exported)
from robots.spec import RobotSpec, get_robot_spec

GRPC_SCHEME = "grpc://"
IMAGE_SUFFIX = "_image"


class RemotePolicy:
    """target "host:port" (or "grpc://host:port"); root_cert (PEM bytes) switches TLS on."""

    def __init__(self, target: str, token: str | None = None, root_cert: bytes | None = None, robot: str = "panda",
                 *, spec: RobotSpec | None = None, robot_instance: str | None = None, timeout_s: float = 10.0,
                 image_encoding: int = RAW):
        target = target[len(GRPC_SCHEME):] if target.startswith(GRPC_SCHEME) else target
        if robot_instance is None:  # a simulated robot of its own: parallel eval workers do not share a lease
            robot_instance = f"sim-{socket.gethostname()}-{os.getpid()}-{id(self):x}"
        self.spec = spec or get_robot_spec(robot)  # joint count and gripper units; the server checks images
        self.connection = PolicyConnection(target, self.spec, token=token, root_cert=root_cert,
                                           robot_instance=robot_instance, timeout_s=timeout_s,
                                           image_encoding=image_encoding)
        self.last_reply = None

    def reset(self, instruction: str) -> None:
        self.connection.start(instruction)

    def act(self, observation: Observation) -> ActionChunk:
        """observation: the simulator's dict ("<camera>_image", "robot0_joint_pos", "robot0_gripper_qpos")."""
        images = {key[: -len(IMAGE_SUFFIX)]: np.asarray(value) for key, value in observation.items()
                  if key.endswith(IMAGE_SUFFIX)}
        gripper = finger_qpos_to_gripper(observation["robot0_gripper_qpos"], self.spec.finger_open_width)
        self.last_reply = self.connection.act(images, observation["robot0_joint_pos"], gripper)
        return ActionChunk(self.last_reply.actions, subtask=self.last_reply.subtask)

    def intervene(self, text: str, kind: str = "auto") -> Intervention:
        """The served policy's intervene(); its refusal (e.g. a subtask for a flat policy) is a PolicyRpcError."""
        reply = self.connection.intervene(text, kind)
        return Intervention(reply.kind, reply.subtask if reply.kind == "subtask" else reply.instruction,
                            reply.describe())

    def close(self) -> None:
        self.connection.close()

