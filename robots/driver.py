"""The robot driver interface the robot client speaks, and its simulated implementation.

A physical robot plugs in here: write a class with these four methods on top of the vendor's
interface (Franka FCI / libfranka joint position control, UR RTDE servoj, ...) and hand it to
`robots.client.RobotClient`. Keep it thin: limits are enforced by the client's SafetyFilter
before `send_command`, and the robot's own controller should still enforce its hardware limits.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from robots.codec import finger_qpos_to_gripper

IMAGE_SUFFIX = "_image"


@runtime_checkable
class Driver(Protocol):
    def read_state(self) -> tuple[np.ndarray, float]:
        """Measured joints (N,) rad and gripper in [0, 1] (1 = closed)."""
        ...

    def read_images(self) -> dict[str, np.ndarray]:
        """{camera name: (H, W, 3) uint8, row 0 = top} for the spec's cameras."""
        ...

    def send_command(self, command: np.ndarray) -> None:
        """Execute one already safety-filtered (N + 1,) command: N joint targets + gripper."""
        ...

    def stop(self) -> None:
        """Controlled stop: hold the current joints under the robot's own controller and accept no
        targets until the next send_command (a real driver: e.g. stop motion, brakes on idle)."""
        ...


class SimDriver:
    """A VlaEnv (sim/env.py) driven through the Driver interface: send_command steps the env.

    Works on the env's own observation dict; imports nothing from sim/.
    """

    def __init__(self, env, finger_open_width: float = 0.04):
        self.env = env
        self.finger_open_width = finger_open_width
        self.obs: dict | None = None
        self.done = False
        self.stopped = False
        self.commands_sent = 0
        self.reward = 0.0  # of the last command

    def reset(self, seed: int | None = None) -> str:
        """Start an episode; returns its instruction."""
        self.obs, _ = self.env.reset(seed=seed)
        self.done, self.stopped, self.commands_sent, self.reward = False, False, 0, 0.0
        return self.env.instruction

    def observation(self) -> dict:
        """The env's full observation dict of the current step (images, proprio, ...)."""
        if self.obs is None:
            self.obs = self.env.observe()
        return self.obs

    def read_state(self) -> tuple[np.ndarray, float]:
        obs = self.observation()
        gripper = finger_qpos_to_gripper(obs["robot0_gripper_qpos"], self.finger_open_width)
        return np.asarray(obs["robot0_joint_pos"], dtype=np.float64).copy(), gripper

    def read_images(self) -> dict[str, np.ndarray]:
        obs = self.observation()
        return {key[: -len(IMAGE_SUFFIX)]: value for key, value in obs.items() if key.endswith(IMAGE_SUFFIX)}

    def send_command(self, command: np.ndarray) -> None:
        self.obs, self.reward, terminated, truncated, _ = self.env.step(np.asarray(command, dtype=np.float64))
        self.done = self.done or bool(terminated or truncated)
        self.stopped = False
        self.commands_sent += 1

    def stop(self) -> None:
        self.stopped = True

    def is_success(self) -> bool:
        return bool(self.env.is_success())
