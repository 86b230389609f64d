"""One recorded episode, as produced by a rollout and stored in a dataset file."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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

    def frames(self, start: int, end: int) -> Episode:
        """Steps start..end-1 as an episode of their own: successful only if it ends where this one
        succeeded."""
        if not 0 <= start < end <= self.num_samples:
            raise ValueError(f"frames {start}..{end} are not inside an episode of {self.num_samples} steps")
        window = slice(start, end)
        return replace(self, actions=self.actions[window], states=self.states[window],
                       observations={key: value[window] for key, value in self.observations.items()},
                       rewards=self.rewards[window], dones=self.dones[window], subtasks=self.subtasks[window],
                       success=self.success and end == self.num_samples, extra_attrs=dict(self.extra_attrs))
