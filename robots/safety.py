"""The last-hop safety filter: every command to a robot passes through it (always on).

A command is (N + 1,): N absolute joint targets (rad) + gripper. The filter
1. rejects a command with NaN/Inf or the wrong length and holds instead (the previous safe
   target, or the current joints when there is none);
2. clips joint targets to the spec's limits;
3. limits the per-tick change of the target to max_velocity * dt (relative to the previous
   safe target) and the change of that velocity to max_acceleration * dt;
4. keeps every target within max_tracking_error of the measured joints (a blocked or lagging
   arm does not accumulate a growing offset that would snap it when released);
5. clips the gripper to the spec's gripper range.
It reports which of these it had to apply, so callers can log or count them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robots.spec import RobotSpec

NONFINITE = "nonfinite"
WRONG_SHAPE = "shape"
JOINT_LIMIT = "joint_limit"
VELOCITY = "velocity"
ACCELERATION = "acceleration"
GRIPPER = "gripper"
TRACKING = "tracking"


@dataclass(frozen=True)
class FilterResult:
    """command: (N + 1,) float64, safe to send; clipped: the names of the limits applied."""

    command: np.ndarray
    clipped: tuple[str, ...]

    @property
    def rejected(self) -> bool:
        """True when the input was replaced by a hold command."""
        return NONFINITE in self.clipped or WRONG_SHAPE in self.clipped


class SafetyFilter:
    """Stateful: remembers the previous safe target (N,) and its velocity (N,) per tick."""

    def __init__(self, spec: RobotSpec):
        self.spec = spec
        self.lower, self.upper = spec.lower(), spec.upper()
        self.max_velocity = np.asarray(spec.max_velocity, dtype=np.float64)
        self.max_acceleration = np.asarray(spec.max_acceleration, dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        """Forget the previous target: the next command is limited relative to the current joints
        and starts from rest (call after a stop, or when commands resume after a pause)."""
        self.previous: np.ndarray | None = None
        self.velocity = np.zeros(self.spec.num_joints)
        self.gripper: float | None = None

    def filter(self, command, current_joints, dt: float, current_gripper: float | None = None) -> FilterResult:
        """command (N + 1,), current_joints (N,) measured, dt seconds since the last command."""
        current = np.asarray(current_joints, dtype=np.float64).reshape(-1)
        if current.shape != (self.spec.num_joints,) or not np.all(np.isfinite(current)):
            raise ValueError(f"current joints must be {self.spec.num_joints} finite values, got {current.tolist()}")
        if dt <= 0:
            raise ValueError(f"dt must be positive, got {dt}")
        command = np.asarray(command, dtype=np.float64).reshape(-1)
        clipped: list[str] = []
        if command.shape != (self.spec.action_dim,):
            command = self._hold(current, current_gripper)
            clipped.append(WRONG_SHAPE)
        elif not np.all(np.isfinite(command)):
            command = self._hold(current, current_gripper)
            clipped.append(NONFINITE)
        joints = self._limit_joints(command[:-1], current, dt, clipped)
        gripper = self._limit_gripper(float(command[-1]), clipped)
        return FilterResult(np.append(joints, gripper), tuple(clipped))

    def _hold(self, current: np.ndarray, current_gripper: float | None) -> np.ndarray:
        """(N + 1,) the command that keeps the arm where it is commanded (or measured) to be."""
        joints = self.previous if self.previous is not None else current
        gripper = self.gripper if self.gripper is not None else current_gripper
        return np.append(joints, 0.0 if gripper is None else gripper)

    def _limit_joints(self, target: np.ndarray, current: np.ndarray, dt: float, clipped: list[str]) -> np.ndarray:
        """(N,) target clipped to limits, velocity and acceleration; updates the filter state."""
        limited = np.clip(target, self.lower, self.upper)
        if not np.array_equal(limited, target):
            clipped.append(JOINT_LIMIT)
        reference = self.previous if self.previous is not None else np.clip(current, self.lower, self.upper)
        wanted = (limited - reference) / dt
        top = self.max_velocity
        velocity = np.clip(wanted, -top, top)
        if not np.array_equal(velocity, wanted):
            clipped.append(VELOCITY)
        step = self.max_acceleration * dt
        accelerated = np.clip(velocity, np.maximum(self.velocity - step, -top), np.minimum(self.velocity + step, top))
        if not np.array_equal(accelerated, velocity):
            clipped.append(ACCELERATION)
        bound = self.spec.max_tracking_error
        smooth = reference + accelerated * dt
        tracked = np.clip(smooth, current - bound, current + bound)
        if not np.array_equal(tracked, smooth):
            clipped.append(TRACKING)
        safe = np.clip(tracked, self.lower, self.upper)  # limits win over smoothness
        self.velocity = (safe - reference) / dt
        self.previous = safe
        return safe

    def _limit_gripper(self, gripper: float, clipped: list[str]) -> float:
        low, high = self.spec.gripper_range
        safe = float(np.clip(gripper, low, high))
        if safe != gripper:
            clipped.append(GRIPPER)
        self.gripper = safe
        return safe
