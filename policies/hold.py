"""`hold`: answers with the robot's current joint positions (for testing the wire)."""

from __future__ import annotations

import numpy as np

from policies.base import ActionChunk, Observation

PANDA_FINGER_OPEN_WIDTH = 0.08  # metres between the fingers when fully open


class HoldPolicy:
    def reset(self, instruction: str) -> None:
        self.instruction = instruction

    def act(self, observation: Observation) -> ActionChunk:
        joints = np.asarray(observation["robot0_joint_pos"], dtype=np.float32)
        width = float(np.sum(np.abs(observation["robot0_gripper_qpos"])))
        closed = float(np.clip(1.0 - width / PANDA_FINGER_OPEN_WIDTH, 0.0, 1.0))
        return ActionChunk(np.append(joints, closed)[None], subtask="hold")
