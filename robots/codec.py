"""numpy <-> vla.v1 messages, with validation of everything that comes off the wire.

Decoded observations use the simulator's keys (see policies/base.py):
    "<camera>_image" (H, W, 3) uint8, "robot0_joint_pos" (N,) float64,
    "robot0_gripper_qpos" (2,) float64 finger positions (+w, -w), "instruction" str.
Protobuf carries NaN/Inf unchanged, so every number is checked after parsing.
"""

from __future__ import annotations

import io

import numpy as np

from robots.proto.vla.v1 import policy_pb2 as pb
from robots.spec import RobotSpec

RAW, JPEG, PNG = pb.Image.RAW_RGB8, pb.Image.JPEG, pb.Image.PNG
PIL_FORMATS = {JPEG: "JPEG", PNG: "PNG"}


class ValidationError(ValueError):
    """A request field that cannot be used; `field` names it (e.g. "observation.gripper")."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# -- gripper: command in [0, 1] <-> finger positions ------------------------------------
def gripper_to_finger_qpos(gripper: float, open_width: float) -> np.ndarray:
    """(2,) finger joint positions (+w, -w) with w = (1 - gripper) * open_width."""
    width = (1.0 - float(gripper)) * open_width
    return np.array([width, -width])


def finger_qpos_to_gripper(qpos, open_width: float) -> float:
    """Gripper command in [0, 1] (1 = closed) from (2,) finger joint positions."""
    width = float(np.sum(np.abs(np.asarray(qpos, dtype=np.float64)))) / 2.0
    return float(np.clip(1.0 - width / open_width, 0.0, 1.0))


# -- images ------------------------------------------------------------------------------
def encode_image(camera: str, image: np.ndarray, encoding: int = RAW, quality: int = 90) -> pb.Image:
    """image (H, W, 3) uint8 -> Image message (RAW_RGB8, JPEG or PNG)."""
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"camera {camera}: expected (H, W, 3) uint8, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    if encoding == RAW:
        data = image.tobytes()
    elif encoding in PIL_FORMATS:
        from PIL import Image

        buffer = io.BytesIO()
        options = {"quality": quality} if encoding == JPEG else {}
        Image.fromarray(image).save(buffer, format=PIL_FORMATS[encoding], **options)
        data = buffer.getvalue()
    else:
        raise ValueError(f"unknown image encoding {encoding}")
    return pb.Image(camera=camera, height=height, width=width, encoding=encoding, data=data)


def decode_image(msg: pb.Image, expected_height: int, expected_width: int, field: str) -> np.ndarray:
    """Image message -> (H, W, 3) uint8, checked against the camera's expected size."""
    if (msg.height, msg.width) != (expected_height, expected_width):
        raise ValidationError(f"{field}.height", f"camera {msg.camera!r} must be {expected_height}x"
                              f"{expected_width} (height x width), got {msg.height}x{msg.width}")
    if msg.encoding == RAW:
        expected = expected_height * expected_width * 3
        if len(msg.data) != expected:
            raise ValidationError(f"{field}.data", f"RAW_RGB8 needs {expected} bytes, got {len(msg.data)}")
        return np.frombuffer(msg.data, dtype=np.uint8).reshape(expected_height, expected_width, 3).copy()
    if msg.encoding in PIL_FORMATS:
        return _decode_compressed(msg, field)
    raise ValidationError(f"{field}.encoding", f"unknown encoding {msg.encoding}; use RAW_RGB8, JPEG or PNG")


def _decode_compressed(msg: pb.Image, field: str) -> np.ndarray:
    """JPEG/PNG bytes -> (H, W, 3) uint8; the header's size is checked before decoding pixels."""
    from PIL import Image

    name = PIL_FORMATS[msg.encoding]
    try:
        with Image.open(io.BytesIO(msg.data), formats=[name]) as image:
            if image.size != (msg.width, msg.height):
                raise ValidationError(f"{field}.data", f"{name} is {image.size[0]}x{image.size[1]} (width x "
                                      f"height), the message says {msg.width}x{msg.height}")
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except ValidationError:
        raise
    except Exception as error:  # noqa: BLE001 - Pillow raises many types for corrupt data
        raise ValidationError(f"{field}.data", f"cannot decode {name}: {type(error).__name__}") from None
    return pixels


# -- observations ------------------------------------------------------------------------
def encode_observation(images: dict, joint_positions, gripper: float, timestamp: float = 0.0,
                       encoding: int = RAW) -> pb.Observation:
    """images {camera: (H, W, 3) uint8}, joint_positions (N,), gripper in [0, 1] -> Observation."""
    return pb.Observation(
        images=[encode_image(camera, image, encoding) for camera, image in images.items()],
        joint_positions=np.asarray(joint_positions, dtype=np.float64).reshape(-1).tolist(),
        gripper=float(gripper), timestamp=float(timestamp),
    )


def decode_observation(msg: pb.Observation, spec: RobotSpec, instruction: str = "",
                       field: str = "observation") -> dict:
    """Observation message -> the simulator's observation dict, validated against spec."""
    obs = _decode_images(msg, spec, field)
    joints = np.asarray(msg.joint_positions, dtype=np.float64)
    if joints.shape != (spec.num_joints,):
        raise ValidationError(f"{field}.joint_positions",
                              f"{spec.name} has {spec.num_joints} joints, got {joints.size} values")
    _check_joint_readings(joints, spec, f"{field}.joint_positions")
    low, high = spec.gripper_range
    if not np.isfinite(msg.gripper) or not low <= msg.gripper <= high:
        raise ValidationError(f"{field}.gripper", f"{msg.gripper!r} is outside the allowed range [{low}, {high}]")
    if not np.isfinite(msg.timestamp):
        raise ValidationError(f"{field}.timestamp", "contains NaN or Inf")
    obs["robot0_joint_pos"] = joints
    obs["robot0_gripper_qpos"] = gripper_to_finger_qpos(msg.gripper, spec.finger_open_width)
    obs["instruction"] = instruction
    return obs


def _check_joint_readings(joints: np.ndarray, spec: RobotSpec, field: str) -> None:
    """Every (N,) reading finite and within the joint's limits widened by spec.reading_margin."""
    low, high = spec.lower() - spec.reading_margin, spec.upper() + spec.reading_margin
    bad = np.flatnonzero(~(np.isfinite(joints) & (joints >= low) & (joints <= high)))
    if bad.size == 0:
        return
    i, value = int(bad[0]), float(joints[bad[0]])
    if not np.isfinite(value):
        raise ValidationError(f"{field}[{i}]", f"{value!r} is not a finite number")
    raise ValidationError(f"{field}[{i}]", f"{value!r} rad is outside {spec.joint_names[i]}'s allowed range "
                          f"[{low[i]:.4f}, {high[i]:.4f}] (its limits +- {spec.reading_margin} rad)")


def _decode_images(msg: pb.Observation, spec: RobotSpec, field: str) -> dict:
    """{"<camera>_image": (H, W, 3) uint8} for exactly the spec's cameras."""
    obs = {}
    for index, image in enumerate(msg.images):
        where = f"{field}.images[{index}]"
        camera = spec.camera(image.camera)
        if camera is None:
            names = ", ".join(c.name for c in spec.cameras)
            raise ValidationError(f"{where}.camera", f"unknown camera {image.camera!r}; {spec.name} has {names}")
        key = f"{camera.name}_image"
        if key in obs:
            raise ValidationError(f"{where}.camera", f"camera {camera.name!r} sent twice")
        obs[key] = decode_image(image, camera.height, camera.width, where)
    missing = [c.name for c in spec.cameras if f"{c.name}_image" not in obs]
    if missing:
        raise ValidationError(f"{field}.images", f"missing camera(s) {', '.join(missing)}")
    return obs


# -- actions -----------------------------------------------------------------------------
def encode_actions(actions: np.ndarray) -> list[pb.JointCommand]:
    """(K, N + 1) -> K JointCommand messages."""
    actions = np.asarray(actions, dtype=np.float64)
    return [pb.JointCommand(joint_positions=row[:-1].tolist(), gripper=float(row[-1])) for row in actions]


def decode_actions(commands, spec: RobotSpec, field: str = "actions") -> np.ndarray:
    """K JointCommand messages -> (K, N + 1) float32, rejecting empty chunks, wrong widths and NaN/Inf."""
    if len(commands) == 0:
        raise ValidationError(field, "the chunk is empty")
    rows = []
    for index, command in enumerate(commands):
        if len(command.joint_positions) != spec.num_joints:
            raise ValidationError(f"{field}[{index}].joint_positions",
                                  f"expected {spec.num_joints} values, got {len(command.joint_positions)}")
        rows.append([*command.joint_positions, command.gripper])
    actions = np.asarray(rows, dtype=np.float64)
    if not np.all(np.isfinite(actions)):
        raise ValidationError(field, "contains NaN or Inf")
    return actions.astype(np.float32)
