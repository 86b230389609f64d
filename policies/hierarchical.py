"""The hierarchical policy: a planner picks the subtask at a low rate, a controller acts on it.

planner:    (images, goal, proprio) -> subtask phrase ("reach the red cube", "grasp", ...)
controller: (images, proprio, goal, subtask) -> (K, A) action chunk, every chunk

The planner is asked every `plan_every` control steps, and at once when the current
subtask is judged done (`subtask_done(observation, subtask)`, by default from the gripper:
"grasp" ends once the fingers have closed, "release" once they have opened).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from policies.base import ActionChunk, Observation
from policies.chunking import ChunkExecutor

FINGERS_CLOSED_WIDTH = 0.06  # metres between Panda fingers below which "grasp" is over
FINGERS_OPEN_WIDTH = 0.07


def gripper_judge(observation: Observation, subtask: str) -> bool:
    width = float(np.sum(np.abs(observation["robot0_gripper_qpos"])))
    if subtask == "grasp":
        return width < FINGERS_CLOSED_WIDTH
    if subtask == "release":
        return width > FINGERS_OPEN_WIDTH
    return False


class HierarchicalPolicy:
    def __init__(self, planner, controller, plan_every: int = 8, executor: ChunkExecutor | None = None,
                 subtask_done: Callable[[Observation, str], bool] = gripper_judge):
        """planner(obs, instruction) -> str; controller(obs, instruction, subtask) -> (K, A);
        executor: which actions of each chunk run (default: the first 4)."""
        self.planner, self.controller = planner, controller
        self.plan_every = plan_every
        self.executor = executor or ChunkExecutor(execute_steps=4)
        self.subtask_done = subtask_done
        self.plan_calls = 0
        self.reset("")

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.subtask = ""
        self.steps_since_plan = 0
        self.executor.reset()

    def act(self, observation: Observation) -> ActionChunk:
        instruction = observation.get("instruction") or self.instruction
        if self._replan_due(observation):
            self.subtask = self.planner(observation, instruction)
            self.plan_calls += 1
            self.steps_since_plan = 0
        actions = self.executor.select(self.controller(observation, instruction, self.subtask))
        self.steps_since_plan += len(actions)
        return ActionChunk(actions, subtask=self.subtask)

    def _replan_due(self, observation: Observation) -> bool:
        return (not self.subtask or self.steps_since_plan >= self.plan_every
                or self.subtask_done(observation, self.subtask))


def from_predictor(predictor, **options) -> HierarchicalPolicy:
    """A hierarchical policy on one checkpoint: its planner head and its subtask-conditioned controller."""
    if not predictor.has_planner:
        raise ValueError("this checkpoint has no planner: train it with `vla train --subtasks`, or run it flat")
    return HierarchicalPolicy(planner=predictor.plan,
                              controller=lambda obs, instruction, subtask: predictor.predict(obs, instruction, subtask),
                              **options)
