"""The flat VLA policy: a checkpoint's predictor behind the policy contract."""

from __future__ import annotations

from policies.base import ActionChunk, Observation
from policies.chunking import ChunkExecutor


class FlatVlaPolicy:
    """Predicts a K-step chunk from (images, proprio, instruction) and hands back the first
    `execute_steps` of it (None: the whole chunk) to run before asking again, or, with
    `ensemble`, one temporally ensembled action per step."""

    def __init__(self, predictor, execute_steps: int | None = None, ensemble: bool = False,
                 ensemble_decay: float = 0.1):
        self.predictor = predictor
        self.executor = ChunkExecutor(execute_steps, ensemble, ensemble_decay)
        self.instruction = ""

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.executor.reset()

    def act(self, observation: Observation) -> ActionChunk:
        instruction = observation.get("instruction") or self.instruction
        return ActionChunk(self.executor.select(self.predictor.predict(observation, instruction)))
