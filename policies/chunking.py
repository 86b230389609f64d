"""Executing action chunks: take the first k actions, or ensemble overlapping chunks."""

from __future__ import annotations

import numpy as np


class TemporalEnsembler:
    """ACT-style temporal ensembling: every step a new (K, A) chunk is predicted; the action
    executed at time t averages every chunk's prediction for t, older chunks weighted
    exp(-decay * age_rank) (decay 0 = plain mean)."""

    def __init__(self, decay: float = 0.1):
        self.decay = decay
        self.reset()

    def reset(self) -> None:
        self.t = 0
        self.predictions: list[tuple[int, np.ndarray]] = []  # (start time, chunk (K, A))

    def add_and_pick(self, chunk: np.ndarray) -> np.ndarray:
        """Record the chunk predicted now; return the (A,) action for now."""
        self.predictions.append((self.t, np.asarray(chunk)))
        self.predictions = [(s, c) for s, c in self.predictions if self.t - s < len(c)]
        rows = np.stack([c[self.t - s] for s, c in self.predictions])  # oldest first
        weights = np.exp(-self.decay * np.arange(len(rows)))
        self.t += 1
        return (weights[:, None] * rows).sum(0) / weights.sum()
