"""One recorded episode, as produced by a rollout and stored in a dataset file."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Episode:
    """Per-step arrays are aligned: index t is the observation/state *before* actions[t].

    observations: key -> (T, ...) array, e.g. "agentview_image" (T, H, W, 3) uint8,
        "robot0_joint_pos" (T, 7) float64, "robot0_gripper_qpos" (T, 2) float64.
    states: (T, 1 + nq + nv) float64 MuJoCo state (time, qpos, qvel) before actions[t].
    """

    seed: int
    instruction: str
    goal: dict
    actions: np.ndarray
    observations: dict[str, np.ndarray]
    states: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    subtasks: list[str]
    model_file: str
    success: bool
    extra_attrs: dict = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return int(self.actions.shape[0])
