"""The set-up of `vla bench serve`: the servers compared, the targets, the null policy, the robot spec, and
one payload in each server's own encoding (vla.v1 protobuf, the comparators' observation dict, the floor's
fixed bytes)."""

from __future__ import annotations

import numpy as np

from policies.base import ActionChunk

CHUNK_SHAPE = (8, 8)
IMAGE_SIZE = 128
CAMERAS = ("agentview", "robot0_eye_in_hand")
CONCURRENCY = (1, 4, 16)
INSTRUCTION = "benchmark the wire"
WARMUP_REQUESTS = 10
SERVERS = ("grpc", "websocket", "fastapi", "grpc_floor")
POLICY_SERVERS = ("grpc", "websocket", "fastapi")  # serving a checkpoint: the floor answers fixed bytes, no model
COMPARATORS = ("websocket", "fastapi")
LABELS = {"grpc": "gRPC vla.v1 (unary Act)", "websocket": "openpi-style websocket+msgpack",
          "fastapi": "OpenVLA-style FastAPI+JSON", "grpc_floor": "bare grpcio, fixed bytes (floor)"}
BATCH_WAIT_MS = 0.0  # vla serve's default
TARGET_OVERHEAD_MS = 1.0
TARGET_THROUGHPUT_RATIO = 2.0


class NullPolicy:
    """Answers every observation with the same (8, 8) chunk, instantly."""

    CHUNK = ActionChunk(np.linspace(0.0, 1.0, CHUNK_SHAPE[0] * CHUNK_SHAPE[1], dtype=np.float32)
                        .reshape(CHUNK_SHAPE), subtask="null")
    chunk_size = CHUNK_SHAPE[0]

    def reset(self, instruction: str) -> None:
        self.instruction = instruction

    def act(self, observation) -> ActionChunk:
        return self.CHUNK


def bench_spec():
    from robots.spec import get_robot_spec

    spec = get_robot_spec("panda", image_size=IMAGE_SIZE, cameras=CAMERAS)
    if spec.action_dim != CHUNK_SHAPE[1]:
        raise RuntimeError(f"the null chunk is {CHUNK_SHAPE}, the panda takes {spec.action_dim} values per action")
    return spec


def check_checkpoint_takes_the_payload(directory) -> None:
    """A checkpoint served by the benchmark must take its payload: a Panda with these cameras at this size."""
    from pathlib import Path

    from vla.config import VlaConfig

    config_file = Path(directory) / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{directory} is not a checkpoint (no config.json); pass default or a directory "
                                "written by vla train")
    data = VlaConfig.load(config_file).data
    if data.robot != "panda" or tuple(data.cameras) != CAMERAS or data.image_size != IMAGE_SIZE:
        raise ValueError(f"the serving benchmark sends a Panda's {' and '.join(CAMERAS)} at {IMAGE_SIZE}x{IMAGE_SIZE}; "
                         f"checkpoint {directory} takes {data.robot} {list(data.cameras)} at {data.image_size}")


def make_payload(seed: int = 0) -> dict:
    """images {camera: (128, 128, 3) uint8}, joints (7,) rad within the Panda's limits, gripper in [0, 1]."""
    rng = np.random.default_rng(seed)
    images = {camera: rng.integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8) for camera in CAMERAS}
    spec = bench_spec()
    joints = rng.uniform(spec.lower(), spec.upper())
    return {"images": images, "joints": joints, "gripper": 0.25}


def comparator_observation(payload: dict) -> dict:
    """The payload as the comparators send it: the simulator's observation dict of numpy arrays."""
    from robots.codec import gripper_to_finger_qpos
    from robots.spec import PANDA_FINGER_OPEN

    observation = {f"{camera}_image": image for camera, image in payload["images"].items()}
    observation["robot0_joint_pos"] = np.asarray(payload["joints"], dtype=np.float64)
    observation["robot0_gripper_qpos"] = gripper_to_finger_qpos(payload["gripper"], PANDA_FINGER_OPEN)
    observation["instruction"] = INSTRUCTION
    return observation


def grpc_messages(payload: dict):
    """The ActRequest a client sends for `payload` and the ActResponse the server answers the null chunk with."""
    from robots.codec import encode_actions, encode_observation
    from robots.proto.vla.v1 import policy_pb2 as pb

    request = pb.ActRequest(session_id="0" * 32, sequence=1, observation=encode_observation(
        payload["images"], payload["joints"], payload["gripper"], 1.0))
    reply = pb.ActResponse(sequence=1, actions=encode_actions(NullPolicy.CHUNK.actions), subtask="null",
                           inference_ms=0.01, expires_in_ms=450.0)
    return request, reply


def floor_messages() -> tuple[bytes, bytes]:
    """Serialized request and reply bytes for the bare-grpcio floor, byte for byte what vla.v1 carries."""
    request, reply = grpc_messages(make_payload())
    return request.SerializeToString(), reply.SerializeToString()
