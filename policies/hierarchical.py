"""The hierarchical policy: a planner picks the subtask at a low rate, a controller acts on it.

planner:    (images, goal, proprio) -> subtask phrase ("reach the red cube", "grasp", ...)
controller: (images, proprio, goal, subtask) -> (K, A) action chunk, every chunk

The planner is asked every `plan_every` control steps, and at once when the current
subtask is judged done (`subtask_done(observation, subtask)`, by default from the gripper:
"grasp" ends once the fingers have closed, "release" once they have opened).

With `forward_only_phrases` (`from_predictor(..., forward_only=True)`), the planner may not go
back to an earlier phase of the manipulation (reach -> grasp -> lift -> move above -> lower ->
release): it chooses among the current phase's and later phases' phrases. Measured on stack, the
free planner would turn "lower" back into "lift" and circle over the base cube instead of
releasing. PHASE_ORDER names the scripted experts' phases (sim/experts/scripted.py), kept here so
that policies do not import the simulator's experts.

With `phase_timeout` (control steps), a subtask the planner has kept longer than that is taken
to have stalled: the controller then acts without a subtask (as the flat policy does; it is
trained with subtask dropout) until the planner picks another one.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from policies.base import ActionChunk, Observation
from policies.chunking import ChunkExecutor

FINGERS_CLOSED_WIDTH = 0.06  # metres between Panda fingers below which "grasp" is over
FINGERS_OPEN_WIDTH = 0.07
PHASE_ORDER = ("reach", "grasp", "lift", "move above", "lower", "release")  # the experts' subtask phrases


def phase_rank(phrase: str) -> int | None:
    """Where a subtask phrase sits in PHASE_ORDER (None: not a manipulation phase)."""
    return next((i for i, phase in enumerate(PHASE_ORDER) if phrase == phase or phrase.startswith(phase + " ")),
                None)


def phrases_from(phrases: Sequence[str], current: str) -> list[str]:
    """The phrases a forward-only planner may pick while pursuing `current`: those of its phase or a later
    one, and any phrase outside the phase order."""
    now = phase_rank(current)
    if now is None:
        return list(phrases)
    return [p for p in phrases if (rank := phase_rank(p)) is None or rank >= now]


def gripper_judge(observation: Observation, subtask: str) -> bool:
    width = float(np.sum(np.abs(observation["robot0_gripper_qpos"])))
    if subtask == "grasp":
        return width < FINGERS_CLOSED_WIDTH
    if subtask == "release":
        return width > FINGERS_OPEN_WIDTH
    return False


class HierarchicalPolicy:
    def __init__(self, planner, controller, plan_every: int = 8, executor: ChunkExecutor | None = None,
                 subtask_done: Callable[[Observation, str], bool] = gripper_judge,
                 forward_only_phrases: Sequence[str] | None = None, phase_timeout: int = 0):
        """planner(obs, instruction[, allowed]) -> str; controller(obs, instruction, subtask) -> (K, A);
        executor: which actions of each chunk run (default: the first 4); forward_only_phrases: the
        planner's phrases, to keep it from going back a phase (it is then called with `allowed`);
        phase_timeout: control steps after which an unchanged subtask is dropped (0: never)."""
        if phase_timeout < 0:
            raise ValueError(f"phase_timeout is a number of control steps, >= 0 (0: off), got {phase_timeout}")
        self.planner, self.controller = planner, controller
        self.plan_every = plan_every
        self.forward_only_phrases = forward_only_phrases
        self.phase_timeout = phase_timeout
        self.executor = executor or ChunkExecutor(execute_steps=4)
        self.subtask_done = subtask_done
        self.plan_calls = 0
        self.reset("")

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.subtask = ""
        self.steps_since_plan = 0
        self.steps_in_subtask = 0
        self.executor.reset()

    def act(self, observation: Observation) -> ActionChunk:
        instruction = observation.get("instruction") or self.instruction
        if self._replan_due(observation):
            subtask = self._plan(observation, instruction)
            self.steps_in_subtask = self.steps_in_subtask if subtask == self.subtask else 0
            self.subtask = subtask
            self.plan_calls += 1
            self.steps_since_plan = 0
        stalled = self.phase_timeout and self.steps_in_subtask >= self.phase_timeout
        actions = self.executor.select(self.controller(observation, instruction, "" if stalled else self.subtask))
        self.steps_since_plan += len(actions)
        self.steps_in_subtask += len(actions)
        return ActionChunk(actions, subtask=self.subtask)

    def _plan(self, observation: Observation, instruction: str) -> str:
        if self.forward_only_phrases is None:
            return self.planner(observation, instruction)
        return self.planner(observation, instruction, phrases_from(self.forward_only_phrases, self.subtask))

    def _replan_due(self, observation: Observation) -> bool:
        return (not self.subtask or self.steps_since_plan >= self.plan_every
                or self.subtask_done(observation, self.subtask))


def from_predictor(predictor, forward_only: bool = False, **options) -> HierarchicalPolicy:
    """A hierarchical policy on one checkpoint: its planner head and its subtask-conditioned controller."""
    if not predictor.has_planner:
        raise ValueError("this checkpoint has no planner: train it with `vla train --subtasks`, or run it flat")
    return HierarchicalPolicy(planner=predictor.plan,
                              controller=lambda obs, instruction, subtask: predictor.predict(obs, instruction, subtask),
                              forward_only_phrases=predictor.planner_phrases if forward_only else None, **options)
