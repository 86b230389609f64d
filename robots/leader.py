"""Joint-space teleoperation: a leader arm whose joint positions are the follower robot's targets.

A physical leader arm plugs in here: write a class with `read()` on top of its interface (a second arm
read through its vendor API, a GELLO-style arm of Dynamixel servos read over USB, ...) and hand it to
LeaderSource. Keep it thin: LeaderSource rejects bad readings, and the robot client's SafetyFilter and
watchdog stand between the leader and the robot as they do for a policy (joint limits, velocity and
acceleration limits: a leader far from the follower is approached at the spec's speed, not snapped to;
a leader that stops answering makes the client hold, then stop). No kinematics are needed.

    source = LeaderSource(MyLeaderArm(...), spec, LeaderMapping(joint_offset=calibration))
    client = RobotClient(driver, source, spec, instruction, executor=InlineExecutor())
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from robots.connection import ChunkReply
from robots.spec import RobotSpec


@runtime_checkable
class LeaderArm(Protocol):
    def read(self) -> tuple[np.ndarray, float]:
        """The leader's joints (N,) rad and gripper (the leader's own units; LeaderMapping maps it to [0, 1])."""
        ...


class LeaderReadError(RuntimeError):
    """The leader arm could not be read, or gave a reading that is no command (NaN, wrong joint count)."""


@dataclass(frozen=True)
class LeaderMapping:
    """How a leader reading becomes a follower command (calibration):
    joints = joint_sign * leader_joints + joint_offset (rad; None: identity), and the gripper reading is
    mapped linearly so that gripper_open -> 0 (open) and gripper_closed -> 1 (closed), clipped to [0, 1]."""

    joint_offset: tuple[float, ...] | None = None
    joint_sign: tuple[float, ...] | None = None
    gripper_open: float = 0.0
    gripper_closed: float = 1.0

    def __post_init__(self):
        if self.gripper_open == self.gripper_closed:
            raise ValueError("LeaderMapping: gripper_open and gripper_closed must differ")

    def apply(self, joints: np.ndarray, gripper: float) -> np.ndarray:
        """(N,), gripper -> (N + 1,) command."""
        if self.joint_sign is not None:
            joints = joints * np.asarray(self.joint_sign, dtype=np.float64)
        if self.joint_offset is not None:
            joints = joints + np.asarray(self.joint_offset, dtype=np.float64)
        closed = (gripper - self.gripper_open) / (self.gripper_closed - self.gripper_open)
        return np.append(joints, np.clip(closed, 0.0, 1.0))


class LeaderSource:
    """Chunks for robots.client.RobotClient from a leader arm instead of a policy server: one action per request
    (the leader's current pose, mapped), so the client's safety filter and watchdog apply as for a policy. It
    speaks the part of robots.connection.PolicyConnection the client uses (session_id, start, act, close); ask
    it on the control loop's own thread (robots.client.InlineExecutor), as reading a leader is quick.

    A failed or bad reading raises LeaderReadError, which the client counts as a failed request (report
    .request_errors / .last_error): it holds the last target, then stops until the leader reads again."""

    def __init__(self, leader: LeaderArm, spec: RobotSpec, mapping: LeaderMapping = LeaderMapping(),
                 clock=time.monotonic):
        for name in ("joint_offset", "joint_sign"):
            value = getattr(mapping, name)
            if value is not None and len(value) != spec.num_joints:
                raise ValueError(f"LeaderMapping.{name} has {len(value)} values for {spec.num_joints} joints")
        self.leader, self.spec, self.mapping, self.clock = leader, spec, mapping, clock
        self.horizon_ms = 2000.0 / spec.control_hz  # the action and one tick of slack
        self.session_id: str | None = None

    def start(self, instruction: str) -> str:
        self.session_id = "leader"
        return self.session_id

    def act(self, images: dict, joints, gripper: float) -> ChunkReply:
        """The follower's images and state are not needed: the leader's pose is the command, (1, N + 1)."""
        command = self.mapping.apply(*self.read())
        return ChunkReply(command[None].astype(np.float32), "", 0.0, self.horizon_ms, self.clock())

    def read(self) -> tuple[np.ndarray, float]:
        """The leader's checked reading: joints (N,) float64 finite, gripper finite."""
        try:
            joints, gripper = self.leader.read()
            joints, gripper = np.asarray(joints, dtype=np.float64).reshape(-1), float(gripper)
        except Exception as error:  # noqa: BLE001 - any driver failure is a failed reading, reported as one
            raise LeaderReadError(f"leader arm read failed: {type(error).__name__}: {error}") from error
        if joints.shape != (self.spec.num_joints,):
            raise LeaderReadError(f"leader arm gave {joints.size} joints, the robot {self.spec.name} has "
                                  f"{self.spec.num_joints}")
        if not (np.all(np.isfinite(joints)) and np.isfinite(gripper)):
            raise LeaderReadError(f"leader arm gave a non-finite reading: joints {joints.tolist()}, "
                                  f"gripper {gripper}")
        return joints, gripper

    def close(self) -> None:
        self.session_id = None
