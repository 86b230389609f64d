"""The flat VLA policy: a checkpoint's predictor behind the policy contract."""

from __future__ import annotations

from policies.base import ActionChunk, Intervention, Observation, intervention_text
from policies.chunking import ChunkExecutor


class FlatVlaPolicy:
    """Predicts a K-step chunk from (images, proprio, instruction) and hands back what the
    executor picks from it to run before asking again (default: the whole chunk)."""

    def __init__(self, predictor, executor: ChunkExecutor | None = None):
        self.predictor = predictor
        self.executor = executor or ChunkExecutor()
        self.instruction = ""
        self.intervened_instruction: str | None = None

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.intervened_instruction = None
        self.executor.reset()

    def intervene(self, text: str, kind: str = "auto") -> Intervention:
        """A new instruction for the rest of the episode (over observation["instruction"] too); a flat
        policy has no subtask to replace, so kind "subtask" is a ValueError."""
        text = intervention_text(text, kind)
        if kind == "subtask":
            raise ValueError("this policy runs flat (no planner): it takes a new instruction, not a subtask")
        self.intervened_instruction = text
        return Intervention("instruction", text, f"instruction {text!r} for the rest of the episode")

    def act(self, observation: Observation) -> ActionChunk:
        instruction = self.intervened_instruction or observation.get("instruction") or self.instruction
        return ActionChunk(self.executor.select(self.predictor.predict(observation, instruction)))
