"""`replay:FILE[#DEMO]` (built by sim.policy_loader.load_replay): one recorded demo's commands played in
order, blind to the cameras.

The baseline a learned policy has to beat: it succeeds exactly as often as the scene's
randomization (cube placement, the robot's start pose) lets one fixed trajectory succeed.
"""

from __future__ import annotations

import numpy as np

from policies.base import ActionChunk, Observation


class OpenLoopReplay:
    """Answers each call with the next recorded action (one per call, so any chunk execution plays
    the trajectory at the recorded rate); after the last one it keeps sending the last."""

    def __init__(self, actions: np.ndarray, name: str = "replay"):
        actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim != 2 or len(actions) == 0:
            raise ValueError(f"{name}: a replay needs (T, A) actions with T >= 1, got shape {actions.shape}")
        self.actions, self.name, self.step = actions, name, 0

    def reset(self, instruction: str) -> None:
        self.step = 0

    def act(self, observation: Observation) -> ActionChunk:
        action = self.actions[min(self.step, len(self.actions) - 1)]
        self.step += 1
        return ActionChunk(action[None], subtask=self.name)
