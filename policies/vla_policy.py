"""The flat VLA policy: a checkpoint's predictor behind the policy contract."""

from __future__ import annotations

import numpy as np

from policies.base import ActionChunk, Observation
from policies.chunking import TemporalEnsembler


class FlatVlaPolicy:
    """Predicts a K-step chunk from (images, proprio, instruction) and hands back the first
    `execute_steps` of it (None: the whole chunk) to run before asking again, or, with
    `ensemble`, one temporally ensembled action per step."""

    def __init__(self, predictor, execute_steps: int | None = None, ensemble: bool = False):
        self.predictor = predictor
        self.execute_steps = execute_steps
        self.ensembler = TemporalEnsembler() if ensemble else None
        self.instruction = ""

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        if self.ensembler:
            self.ensembler.reset()

    def act(self, observation: Observation) -> ActionChunk:
        instruction = observation.get("instruction") or self.instruction
        chunk = self.predictor.predict(observation, instruction)
        if self.ensembler:
            return ActionChunk(np.asarray(self.ensembler.add_and_pick(chunk))[None])
        return ActionChunk(chunk[: self.execute_steps])
