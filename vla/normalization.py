"""q01/q99 normalization of actions and proprio state; stats travel with the checkpoint.

x' = clip(2 (x - q01) / (q99 - q01) - 1, -1, 1); dimensions with q01 == q99 map to 0.
The gripper command is binary-ish in [0, 1]: it is mapped with the fixed range [0, 1]
rather than data quantiles, so an all-open dataset cannot collapse it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Quantiles:
    q01: np.ndarray
    q99: np.ndarray

    @staticmethod
    def of(values: np.ndarray, fixed: dict[int, tuple[float, float]] | None = None) -> "Quantiles":
        """values (N, D). `fixed` maps a dimension to a (low, high) range used instead of data."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or len(values) == 0:
            raise ValueError(f"need a non-empty (N, D) array of values, got shape {values.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError("values contain NaN or Inf; clean the dataset before computing statistics")
        q01, q99 = np.quantile(values, 0.01, axis=0), np.quantile(values, 0.99, axis=0)
        for dim, (low, high) in (fixed or {}).items():
            q01[dim], q99[dim] = low, high
        return Quantiles(q01, q99)

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """(..., D) robot units -> (..., D) in [-1, 1]."""
        x = np.asarray(x, dtype=np.float64)
        self._check_width(x)
        span = self.q99 - self.q01
        safe = np.where(span > 0, span, 1.0)
        out = np.clip(2.0 * (x - self.q01) / safe - 1.0, -1.0, 1.0)
        return np.where(span > 0, out, 0.0)

    def unnormalize(self, x: np.ndarray) -> np.ndarray:
        """(..., D) in [-1, 1] -> robot units; constant dimensions come back as q01."""
        x = np.asarray(x, dtype=np.float64)
        self._check_width(x)
        return self.q01 + (np.clip(x, -1.0, 1.0) + 1.0) / 2.0 * (self.q99 - self.q01)

    def _check_width(self, x: np.ndarray) -> None:
        if x.shape[-1] != len(self.q01):
            raise ValueError(f"expected {len(self.q01)} values per row, got {x.shape[-1]}")

    def to_dict(self) -> dict:
        return {"q01": self.q01.tolist(), "q99": self.q99.tolist()}

    @staticmethod
    def from_dict(data: dict) -> "Quantiles":
        return Quantiles(np.asarray(data["q01"], dtype=np.float64), np.asarray(data["q99"], dtype=np.float64))


@dataclass(frozen=True)
class NormStats:
    """Per-robot statistics: actions (A,) and proprio state (S,)."""

    robot: str
    action: Quantiles
    state: Quantiles

    @staticmethod
    def compute(robot: str, actions: np.ndarray, states: np.ndarray, gripper_dim: int | None = -1) -> "NormStats":
        fixed = {} if gripper_dim is None else {gripper_dim % actions.shape[-1]: (0.0, 1.0)}
        return NormStats(robot, Quantiles.of(actions, fixed), Quantiles.of(states))

    def save(self, path: str | Path) -> None:
        data = {self.robot: {"action": self.action.to_dict(), "state": self.state.to_dict()}}
        Path(path).write_text(json.dumps(data, indent=2))

    @staticmethod
    def load(path: str | Path, robot: str) -> "NormStats":
        data = json.loads(Path(path).read_text())
        if robot not in data:
            raise ValueError(f"{path} has normalization stats for {sorted(data)}, not for robot {robot!r}: "
                             "this checkpoint was trained for another robot")
        entry = data[robot]
        return NormStats(robot, Quantiles.from_dict(entry["action"]), Quantiles.from_dict(entry["state"]))
