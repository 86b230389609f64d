"""Executing action chunks: take the first k actions, or ensemble overlapping chunks, and optionally
latch the gripper (ChunkExecutor)."""

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


class GripperLatch:
    """Turns the last action column (gripper in [0, 1], 1 = closed) into a decisive 0 or 1.

    Demonstrations switch the gripper once per grasp or release; a prediction averaged over chunks or
    torn between the two hovers near 0.5, and a gripper that acts on the command's sign (robosuite's
    Panda) then closes and opens on alternate steps and never clamps the cube. The latch closes when
    the command rises above `close_above` and opens only when it falls below `open_below`."""

    def __init__(self, close_above: float = 0.5, open_below: float = 0.25):
        if not 0.0 <= open_below <= close_above <= 1.0:
            raise ValueError(f"gripper latch needs 0 <= open_below <= close_above <= 1, "
                             f"got {open_below}, {close_above}")
        self.close_above, self.open_below = close_above, open_below
        self.reset()

    def reset(self) -> None:
        self.closed = False

    def apply(self, actions: np.ndarray) -> np.ndarray:
        """(n, A) -> a copy whose gripper column is 0.0 or 1.0, row by row."""
        actions = np.array(actions, dtype=np.float64)
        for row in actions:
            if self.closed and row[-1] < self.open_below:
                self.closed = False
            elif not self.closed and row[-1] > self.close_above:
                self.closed = True
            row[-1] = 1.0 if self.closed else 0.0
        return actions


class ChunkExecutor:
    """Which actions of a predicted (K, A) chunk run now: the first `execute_steps` (None: all),
    or, with `ensemble`, one temporally ensembled action per prediction; with `gripper_latch`,
    their gripper command passes through a GripperLatch."""

    def __init__(self, execute_steps: int | None = None, ensemble: bool = False, ensemble_decay: float = 0.1,
                 gripper_latch: GripperLatch | None = None):
        self.execute_steps = execute_steps
        self.ensembler = TemporalEnsembler(ensemble_decay) if ensemble else None
        self.gripper_latch = gripper_latch

    def reset(self) -> None:
        if self.ensembler:
            self.ensembler.reset()
        if self.gripper_latch:
            self.gripper_latch.reset()

    def select(self, chunk: np.ndarray) -> np.ndarray:
        """(K, A) -> (n, A) actions to execute before predicting again."""
        chunk = np.asarray(chunk)
        actions = self.ensembler.add_and_pick(chunk)[None] if self.ensembler else chunk[: self.execute_steps]
        return self.gripper_latch.apply(actions) if self.gripper_latch else actions
