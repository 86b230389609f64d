"""DART-style noise for expert demonstrations.

The robot executes the expert's joint targets plus a slowly drifting offset; the dataset keeps
the expert's clean targets as the labels. The demos then visit the off-course states a learned
policy drifts into, labelled with the way back. The gripper command is never perturbed.

The offset is an Ornstein-Uhlenbeck process seeded by the episode seed, so `vla replay`
rebuilds the executed commands from the demo's attributes and replays it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ATTR_SCALE = "action_noise"
ATTR_CORRELATION = "action_noise_correlation_steps"


@dataclass(frozen=True)
class ActionNoise:
    scale: float  # stationary standard deviation of each arm joint's offset, radians
    correlation_steps: float = 10.0  # how many control steps an offset persists

    def __post_init__(self):
        if not np.isfinite(self.scale) or self.scale < 0:
            raise ValueError(f"--action-noise must be a finite number >= 0 (radians), got {self.scale}")
        if not self.correlation_steps >= 1:
            raise ValueError(f"noise correlation must be at least 1 step, got {self.correlation_steps}")

    def drift(self, seed: int) -> JointDrift:
        return JointDrift(self, seed)

    def attrs(self) -> dict:
        return {ATTR_SCALE: float(self.scale), ATTR_CORRELATION: float(self.correlation_steps)}

    @classmethod
    def from_attrs(cls, attrs: dict) -> ActionNoise | None:
        """The noise a demo was collected with, or None for a clean demo."""
        scale = float(attrs.get(ATTR_SCALE, 0.0))
        return cls(scale, float(attrs.get(ATTR_CORRELATION, 10.0))) if scale > 0 else None


class JointDrift:
    """Call once per control step with the clean action; returns the action to execute."""

    def __init__(self, noise: ActionNoise, seed: int):
        self.rng = np.random.default_rng([int(seed), 0xDA47])
        self.decay = 1.0 - 1.0 / noise.correlation_steps
        self.step_std = noise.scale * np.sqrt(1.0 - self.decay ** 2)  # keeps the stationary std at scale
        self.offset: np.ndarray | None = None

    def __call__(self, action: np.ndarray) -> np.ndarray:
        arm = action.shape[0] - 1
        if self.offset is None:
            self.offset = np.zeros(arm)
        self.offset = self.decay * self.offset + self.step_std * self.rng.standard_normal(arm)
        executed = np.array(action, dtype=np.float64, copy=True)
        executed[:arm] += self.offset
        return executed
