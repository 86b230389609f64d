"""The flat VLA policy: a checkpoint's predictor behind the policy contract."""

from __future__ import annotations

from policies.base import ActionChunk, Observation


class FlatVlaPolicy:
    """Predicts a K-step chunk from (images, proprio, instruction) and hands back the first
    `execute_steps` of it (None: the whole chunk) to run before asking again."""

    def __init__(self, predictor, execute_steps: int | None = None):
        self.predictor = predictor
        self.execute_steps = execute_steps
        self.instruction = ""

    def reset(self, instruction: str) -> None:
        self.instruction = instruction

    def act(self, observation: Observation) -> ActionChunk:
        instruction = observation.get("instruction") or self.instruction
        chunk = self.predictor.predict(observation, instruction)
        return ActionChunk(chunk[: self.execute_steps])
