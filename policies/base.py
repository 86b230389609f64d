"""The policy contract spoken by simulation, the gRPC server and every wrapper.

Kept free of heavy imports: numpy only.

An observation is a plain dict:
    "<camera>_image"        (H, W, 3) uint8, row 0 = top of the image
    "robot0_joint_pos"      (7,) float, radians
    "robot0_gripper_qpos"   (2,) float, finger joint positions in metres
    "instruction"           str, the language goal
A policy answers with an `ActionChunk`: K future actions in robot units,
each (7 absolute joint position targets, gripper in [0, 1]; 0 = open, 1 = closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

Observation = Mapping[str, Any]


@dataclass(frozen=True)
class ActionChunk:
    """K future actions (K, A) float32, and the subtask the policy is pursuing."""

    actions: np.ndarray
    subtask: str = ""

    def __post_init__(self) -> None:
        actions = np.asarray(self.actions, dtype=np.float32)
        if actions.ndim != 2 or actions.shape[0] == 0:
            raise ValueError(f"ActionChunk.actions must be (K, A) with K >= 1, got shape {actions.shape}")
        if not np.all(np.isfinite(actions)):
            raise ValueError("ActionChunk.actions contains NaN or Inf")
        object.__setattr__(self, "actions", actions)


@runtime_checkable
class Policy(Protocol):
    """reset() at the start of every episode, then act() once per chunk."""

    def reset(self, instruction: str) -> None: ...

    def act(self, observation: Observation) -> ActionChunk: ...
