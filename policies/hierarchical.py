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

A forward-only planner starts a new pick after a release (long-horizon tasks chain pick-and-place cycles).
With `memory` (a memory of completed subtasks), the policy remembers the cubes it has reached and then
released this episode, and the planner may not choose to reach any of them again: on a long-horizon
task, what is done is part of the policy's state, not only of what the cameras see.

With `step_instructions` (a step planner: a long-horizon instruction -> one instruction per pick-and-place step,
None for any other text), the policy pursues one step at a time: the subtask planner and the controller are
told the current step's instruction ("put the green cube on the red cube", words the one-step tasks taught
them) instead of the whole task's, and the policy moves to the next step once a "release" is done (the
fingers open) after the fingers had closed in this step. Measured on stack-three, the default told the whole
instruction did its first step on 1 of 24 seeds, and told that step alone on 17 of the same 24 (docs/results.md,
Long horizons).

With `phase_timeout` (control steps), a subtask the planner has kept longer than that is taken
to have stalled: the controller then acts without a subtask (as the flat policy does; it is
trained with subtask dropout) until the planner picks another one.

Interventions (`intervene(text, kind)`, an operator's correction):
- "subtask": the controller pursues that phrase from the next act(). The planner is still asked on
  its schedule, but may replace the phrase only with one of a later phase (phase_rank higher than the
  pinned one's); the pin also ends when `subtask_done` judges the phrase done or after
  `intervention_hold` control steps, and the planner continues from there as usual. A phrase outside
  the phase order (rank None) is held until the planner proposes something else after at least
  2 * plan_every steps (or the same two ends). A pinned subtask is never dropped as stalled.
- "instruction": replaces the episode's instruction (over observation["instruction"] too) for the
  planner and the controller until reset(); the current subtask is dropped, so the planner replans at once.
  A long-horizon instruction starts again from its first step; a one-step instruction is pursued as it is.
- "auto": a subtask if the text is one of the planner's phrases (`phrases`) or has their form (a bare
  phase of PHASE_ORDER, or "reach ...", "move above ...", "move behind ...", "push it ..."; not "lift the
  red cube", which is lift's instruction), else an instruction.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from policies.base import ActionChunk, Intervention, Observation, intervention_text
from policies.chunking import ChunkExecutor

FINGERS_CLOSED_WIDTH = 0.06  # metres between Panda fingers below which "grasp" is over
FINGERS_OPEN_WIDTH = 0.07
PHASE_ORDER = ("reach", "grasp", "lift", "move above", "lower", "release")  # the experts' subtask phrases
OBJECT_PHASES = ("reach", "move above", "move behind", "push it")  # phrases that go on to name what they act on


def phase_rank(phrase: str) -> int | None:
    """Where a subtask phrase sits in PHASE_ORDER (None: not a manipulation phase)."""
    return next((i for i, phase in enumerate(PHASE_ORDER) if phrase == phase or phrase.startswith(phase + " ")),
                None)


def phrases_from(phrases: Sequence[str], current: str) -> list[str]:
    """The phrases a forward-only planner may pick while pursuing `current`: those of its phase or a later
    one, and any phrase outside the phase order; after a release, any (the next pick may start)."""
    now = phase_rank(current)
    if now is None or now == len(PHASE_ORDER) - 1:
        return list(phrases)
    return [p for p in phrases if (rank := phase_rank(p)) is None or rank >= now]


def looks_like_subtask(text: str, phrases: Sequence[str] = ()) -> bool:
    """Whether an "auto" intervention is a subtask: one of the planner's phrases, or of their form."""
    text = text.lower()
    return text in phrases or text in PHASE_ORDER or text.startswith(tuple(p + " " for p in OBJECT_PHASES))


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
                 forward_only_phrases: Sequence[str] | None = None, phase_timeout: int = 0,
                 phrases: Sequence[str] = (), intervention_hold: int = 120, memory: bool = False,
                 step_instructions: Callable[[str], list[str] | None] | None = None):
        """planner(obs, instruction[, allowed]) -> str; controller(obs, instruction, subtask) -> (K, A);
        executor: which actions of each chunk run (default: the first 4); forward_only_phrases: the
        planner's phrases, to keep it from going back a phase (it is then called with `allowed`);
        phase_timeout: control steps after which an unchanged subtask is dropped (0: never); phrases: the
        planner's phrases (for "auto" interventions); intervention_hold: control steps an intervened
        subtask is held at most; memory: never reach again for a cube reached and released this episode
        (needs `phrases`)."""
        if phase_timeout < 0:
            raise ValueError(f"phase_timeout is a number of control steps, >= 0 (0: off), got {phase_timeout}")
        if intervention_hold < 1:
            raise ValueError(f"intervention_hold is a number of control steps, >= 1, got {intervention_hold}")
        self.planner, self.controller = planner, controller
        self.plan_every = plan_every
        self.forward_only_phrases = forward_only_phrases
        self.phase_timeout = phase_timeout
        self.phrases = tuple(phrases)
        if memory and not self.phrases:
            raise ValueError("a planner memory needs the planner's phrases (phrases=...)")
        self.memory = memory
        self.intervention_hold = intervention_hold
        self.step_instructions = step_instructions
        self.executor = executor or ChunkExecutor(execute_steps=4)
        self.subtask_done = subtask_done
        self.plan_calls = 0
        self.reset("")

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.intervened_instruction: str | None = None
        self.pinned: str | None = None  # an intervened subtask the planner may not replace yet
        self.pinned_steps = 0
        self.subtask = ""
        self.steps_since_plan = 0
        self.steps_in_subtask = 0
        self.reached = ""  # the last "reach ..." phrase pursued
        self.done: list[str] = []  # the "reach ..." phrases of the cubes placed since (memory)
        self.steps: list[str] | None = None  # the step planner's instructions of `stepped` (None: not stepped)
        self.stepped: str | None = None
        self.step = 0
        self.closed_in_step = False
        self.executor.reset()

    def intervene(self, text: str, kind: str = "auto") -> Intervention:
        """An operator's subtask or new instruction, pursued from the next act() (module docstring)."""
        text = intervention_text(text, kind)
        if kind == "subtask" or (kind == "auto" and looks_like_subtask(text, self.phrases)):
            self.pinned = self.subtask = text.lower()
            self.pinned_steps = self.steps_in_subtask = 0
            return Intervention("subtask", self.pinned, f"subtask {self.pinned!r} until it is done, the planner moves "
                                f"to a later phase, or {self.intervention_hold} steps pass")
        self.intervened_instruction, self.pinned, self.subtask = text, None, ""
        return Intervention("instruction", text, f"instruction {text!r} for the rest of the episode; the planner "
                            "replans now")

    def act(self, observation: Observation) -> ActionChunk:
        given = self.intervened_instruction or observation.get("instruction") or self.instruction
        instruction = self._current_step(observation, given)
        if self._replan_due(observation):
            subtask = self._choose_subtask(observation, instruction)
            self.steps_in_subtask = self.steps_in_subtask if subtask == self.subtask else 0
            self._note_reach(subtask)
            self.subtask = subtask
            self.plan_calls += 1
            self.steps_since_plan = 0
        stalled = self.phase_timeout and self.steps_in_subtask >= self.phase_timeout and self.pinned is None
        actions = self.executor.select(self.controller(observation, instruction, "" if stalled else self.subtask))
        self.steps_since_plan += len(actions)
        self.steps_in_subtask += len(actions)
        self.pinned_steps += len(actions)
        return ActionChunk(actions, subtask=self.subtask)

    @property
    def step_instruction(self) -> str | None:
        """The instruction of the step the step planner is on (None: the instruction is pursued whole)."""
        return self.steps[self.step] if self.steps else None

    def _current_step(self, observation: Observation, instruction: str) -> str:
        """What the planner and controller are told: the instruction, or its current step's (step planner)."""
        if self.step_instructions is None:
            return instruction
        if instruction != self.stepped:
            self.stepped, self.steps = instruction, self.step_instructions(instruction)
            self.step, self.closed_in_step = 0, False
        self.closed_in_step |= self.subtask_done(observation, "grasp")
        if self.steps and self._step_placed(observation):
            self.step, self.closed_in_step = min(self.step + 1, len(self.steps) - 1), False
        return self.step_instruction or instruction

    def _step_placed(self, observation: Observation) -> bool:
        """Whether the current step's cube has been let go: a release done after the fingers closed in this step."""
        return self.closed_in_step and self.subtask == "release" and self.subtask_done(observation, "release")

    def _plan(self, observation: Observation, instruction: str) -> str:
        if self.forward_only_phrases is None and not self.memory:
            return self.planner(observation, instruction)
        self._remember_placed()
        allowed = (list(self.phrases) if self.forward_only_phrases is None
                   else phrases_from(self.forward_only_phrases, self.subtask))
        remaining = [phrase for phrase in allowed if phrase not in self.done]
        return self.planner(observation, instruction, remaining or allowed)

    def _remember_placed(self) -> None:
        """Asked for the next subtask while releasing: the cube last reached for is placed."""
        if self.memory and self.subtask == "release" and self.reached and self.reached not in self.done:
            self.done.append(self.reached)

    def _note_reach(self, subtask: str) -> None:
        if phase_rank(subtask) == 0:
            self.reached = subtask

    def _replan_due(self, observation: Observation) -> bool:
        if self.pinned is not None and (self.pinned_steps >= self.intervention_hold
                                        or self.subtask_done(observation, self.pinned)):
            self.pinned = None  # done, or held long enough: the planner takes over now
            return True
        return (not self.subtask or self.steps_since_plan >= self.plan_every
                or self.subtask_done(observation, self.subtask))

    def _choose_subtask(self, observation: Observation, instruction: str) -> str:
        """The planner's choice, unless an intervened subtask is pinned and the choice may not replace it."""
        proposal = self._plan(observation, instruction)
        if self.pinned is not None and not self._replaces_pin(proposal):
            return self.pinned
        self.pinned = None
        return proposal

    def _replaces_pin(self, proposal: str) -> bool:
        pinned_rank, rank = phase_rank(self.pinned), phase_rank(proposal)
        if pinned_rank is None:
            return proposal != self.pinned and self.pinned_steps >= 2 * self.plan_every
        return rank is not None and rank > pinned_rank


def from_predictor(predictor, forward_only: bool = False, **options) -> HierarchicalPolicy:
    """A hierarchical policy on one checkpoint: its planner head and its subtask-conditioned controller."""
    if not predictor.has_planner:
        raise ValueError("this checkpoint has no planner: train it with `vla train --subtasks`, or run it flat")
    return HierarchicalPolicy(planner=predictor.plan,
                              controller=lambda obs, instruction, subtask: predictor.predict(obs, instruction, subtask),
                              forward_only_phrases=predictor.planner_phrases if forward_only else None,
                              phrases=predictor.planner_phrases, **options)
