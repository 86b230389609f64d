"""The flat VLA policy: a checkpoint's predictor behind the policy contract."""

from __future__ import annotations

from policies.base import ActionChunk, Observation
from policies.chunking import ChunkExecutor


class FlatVlaPolicy:
    """Predicts a K-step chunk from (images, proprio, instruction) and hands back what the
    executor picks from it to run before asking again (default: the whole chunk)."""

    def __init__(self, predictor, executor: ChunkExecutor | None = None):
        self.predictor = predictor
        self.executor = executor or ChunkExecutor()
        self.instruction = ""

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.executor.reset()

    def act(self, observation: Observation) -> ActionChunk:
        instruction = observation.get("instruction") or self.instruction
        return ActionChunk(self.executor.select(self.predictor.predict(observation, instruction)))
