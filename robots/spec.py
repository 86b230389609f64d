"""Robot specs: joints, limits, gripper and cameras of each robot the stack can drive.

A spec is what the server validates observations against, what the safety filter enforces
and what `GetInfo` reports. Specs are built by functions in an explicit registry
(`ROBOT_SPECS`); nothing is read at import time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PANDA_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
# Franka Emika Panda datasheet (FCI "Robot and interface specifications"); the limits are also the ranges of
# robosuite's Panda MJCF (tests/test_grpc_e2e.py compares them with the simulated robot).
PANDA_JOINT_LOWER = (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973)  # rad
PANDA_JOINT_UPPER = (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973)  # rad
PANDA_MAX_VELOCITY = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)  # rad/s
PANDA_MAX_ACCELERATION = (15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0)  # rad/s^2
PANDA_FINGER_OPEN = 0.04  # metres per finger when fully open
DEFAULT_CAMERAS = ("agentview", "robot0_eye_in_hand")


@dataclass(frozen=True)
class CameraSpec:
    """One camera: images are (height, width, 3) uint8, row 0 = top."""

    name: str
    height: int
    width: int


@dataclass(frozen=True)
class RobotSpec:
    """An arm with N joints and a one-dimensional gripper command.

    joint_lower / joint_upper / max_velocity / max_acceleration are (N,) tuples in rad,
    rad/s and rad/s^2. Commands are (N + 1,): N absolute joint targets + gripper in
    gripper_range (0 = open, 1 = closed). max_tracking_error (rad) bounds how far a target may
    lead the measured joints, so a blocked arm cannot wind its targets up. A measured joint may read
    up to reading_margin (rad) outside its limits (encoders, simulator contacts) before an
    observation is rejected.
    """

    name: str
    joint_names: tuple[str, ...]
    joint_lower: tuple[float, ...]
    joint_upper: tuple[float, ...]
    max_velocity: tuple[float, ...]
    max_acceleration: tuple[float, ...]
    cameras: tuple[CameraSpec, ...]
    control_hz: float = 20.0
    gripper_range: tuple[float, float] = (0.0, 1.0)
    finger_open_width: float = PANDA_FINGER_OPEN
    max_tracking_error: float = 1.0  # the scripted expert leads by at most 0.83 rad (wrist yaw, measured)
    reading_margin: float = 0.1

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        for field in ("joint_lower", "joint_upper", "max_velocity", "max_acceleration"):
            if len(getattr(self, field)) != n:
                raise ValueError(f"RobotSpec {self.name}: {field} has {len(getattr(self, field))} values, "
                                 f"expected one per joint ({n})")
        if np.any(np.asarray(self.joint_lower) >= np.asarray(self.joint_upper)):
            raise ValueError(f"RobotSpec {self.name}: every joint_lower must be below joint_upper")
        if self.max_tracking_error <= 0:
            raise ValueError(f"RobotSpec {self.name}: max_tracking_error must be positive")
        if self.reading_margin < 0:
            raise ValueError(f"RobotSpec {self.name}: reading_margin must be >= 0, got {self.reading_margin}")
        if self.control_hz <= 0:
            raise ValueError(f"RobotSpec {self.name}: control_hz must be positive, got {self.control_hz}")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def action_dim(self) -> int:
        """N joint targets + 1 gripper."""
        return self.num_joints + 1

    @property
    def dt(self) -> float:
        """Seconds per control tick."""
        return 1.0 / self.control_hz

    def lower(self) -> np.ndarray:
        """(N,) float64 lower joint limits."""
        return np.asarray(self.joint_lower, dtype=np.float64)

    def upper(self) -> np.ndarray:
        """(N,) float64 upper joint limits."""
        return np.asarray(self.joint_upper, dtype=np.float64)

    def camera(self, name: str) -> CameraSpec | None:
        return next((c for c in self.cameras if c.name == name), None)


def panda_spec(image_size: int = 128, cameras: tuple[str, ...] = DEFAULT_CAMERAS,
               control_hz: float = 20.0) -> RobotSpec:
    """The Franka Panda as vla-stack drives it in robosuite (square images of image_size)."""
    return RobotSpec(
        name="panda", joint_names=PANDA_JOINTS, joint_lower=PANDA_JOINT_LOWER, joint_upper=PANDA_JOINT_UPPER,
        max_velocity=PANDA_MAX_VELOCITY, max_acceleration=PANDA_MAX_ACCELERATION,
        cameras=tuple(CameraSpec(name, image_size, image_size) for name in cameras),
        control_hz=control_hz,
    )


ROBOT_SPECS = {"panda": panda_spec}


def get_robot_spec(name: str, **options) -> RobotSpec:
    """The spec registered under `name`; options go to its builder (e.g. image_size=64)."""
    if name not in ROBOT_SPECS:
        raise ValueError(f"unknown robot {name!r}; known robots: {', '.join(sorted(ROBOT_SPECS))}")
    return ROBOT_SPECS[name](**options)
