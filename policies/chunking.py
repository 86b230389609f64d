"""Executing action chunks: take the first k actions, or ensemble overlapping chunks (ChunkExecutor)."""

from __future__ import annotations

import numpy as np


class TemporalEnsembler:
    """ACT-style temporal ensembling: every step a new (K, A) chunk is predicted; the action
    executed at time t averages every chunk's prediction for t, the i-th oldest weighted
    exp(-decay * i): decay > 0 trusts older predictions more (ACT), 0 is a plain mean, < 0
    favours the newest."""

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


class ChunkExecutor:
    """Which actions of a predicted (K, A) chunk run now: the first `execute_steps` (None: all),
    or, with `ensemble`, one temporally ensembled action per prediction."""

    def __init__(self, execute_steps: int | None = None, ensemble: bool = False, ensemble_decay: float = 0.1):
        self.execute_steps = execute_steps
        self.ensembler = TemporalEnsembler(ensemble_decay) if ensemble else None

    def reset(self) -> None:
        if self.ensembler:
            self.ensembler.reset()

    def select(self, chunk: np.ndarray) -> np.ndarray:
        """(K, A) -> (n, A) actions to execute before predicting again."""
        chunk = np.asarray(chunk)
        if self.ensembler:
            return self.ensembler.add_and_pick(chunk)[None]
        return chunk[: self.execute_steps]
