"""Expert takeover while a learner collects (`vla collect --learner P --takeover STEPS`, HG-DAgger-style).

Plain DAgger lets the learner drive the whole episode: a learner caught at a fixed point (fingers around a
cube, never closing; hovering a few centimetres off a cube) fills the rest of the step limit with hundreds
of near-identical frames. With a takeover rule, once the labelling expert has named the same subtask for
the learner's states for `stuck_steps` control steps (the learner is not getting on: 95% of the phases in
crate-three's expert demos are over within 40 steps), the expert drives for `drive_steps` steps (its own labels
executed: a recovery demonstrated from the very state the learner was stuck in), then hands back. With
`expert_only` (`--takeover-only`), only those stretches are kept, each a demo of its own, as HG-DAgger keeps
its expert's interventions: the learner-driven frames, labelled or not, stay out of the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.episode import Episode

DRIVE_STEPS = 60  # control steps the expert drives once it has taken over (3 s at 20 Hz)
ATTR_TAKEOVERS = "takeovers"
ATTR_EXPERT_STEPS = "expert_driven_steps"
ATTR_EXPERT_SPANS = "expert_driven_spans"  # (N, 2) int: [first, end) frame of each stretch the expert drove
ATTR_SOURCE_FRAMES = "source_frames"  # [first, end) of a kept stretch in the learner's episode


@dataclass(frozen=True)
class TakeoverRule:
    stuck_steps: int  # the expert named one subtask for the learner's states this many control steps ...
    drive_steps: int = DRIVE_STEPS  # ... so the expert drives for this many
    expert_only: bool = False  # keep only the stretches the expert drove (expert_stretches)

    def __post_init__(self):
        if self.stuck_steps < 1 or self.drive_steps < 1:
            raise ValueError(f"--takeover needs at least 1 stuck step and 1 expert step, got {self.stuck_steps} "
                             f"and {self.drive_steps}")

    def kept(self, episode: Episode) -> list[Episode]:
        """What a collection keeps of one learner episode."""
        return expert_stretches(episode) if self.expert_only else [episode]

    def tracker(self) -> TakeoverTracker:
        return TakeoverTracker(self)


class TakeoverTracker:
    """Call expert_drives(subtask) once per control step with the expert's label for the state, before the
    step executes; counts what it hands over and records which steps (frames) the expert drove."""

    def __init__(self, rule: TakeoverRule):
        self.rule = rule
        self.subtask: str | None = None  # the label of the current stretch
        self.repeats = 0  # steps of the stretch after its first
        self.driving_left = 0
        self.takeovers = 0
        self.frame = -1  # the control step being decided
        self.spans: list[list[int]] = []

    def expert_drives(self, subtask: str) -> bool:
        self.frame += 1
        return self._decide(subtask)

    def _decide(self, subtask: str) -> bool:
        if self.driving_left > 0:
            self.driving_left -= 1
            self._extend_span()
            self.subtask = None  # the learner's stretch starts afresh when it drives again
            return True
        if subtask != self.subtask:
            self.subtask, self.repeats = subtask, 0
            return False
        self.repeats += 1
        if self.repeats < self.rule.stuck_steps:
            return False
        self.takeovers += 1
        self.driving_left = self.rule.drive_steps
        return self._decide(subtask)

    def _extend_span(self) -> None:
        if self.spans and self.spans[-1][1] == self.frame:
            self.spans[-1][1] += 1
        else:
            self.spans.append([self.frame, self.frame + 1])

    def attrs(self) -> dict:
        spans = np.array(self.spans, dtype=np.int64).reshape(-1, 2)
        expert_steps = int((spans[:, 1] - spans[:, 0]).sum())
        return {ATTR_TAKEOVERS: self.takeovers, ATTR_EXPERT_STEPS: expert_steps, ATTR_EXPERT_SPANS: spans}


def expert_stretches(episode: Episode) -> list[Episode]:
    """Each stretch of a takeover episode that the expert drove, as an episode of its own."""
    stretches = []
    for start, end in np.asarray(episode.extra_attrs[ATTR_EXPERT_SPANS]).reshape(-1, 2).tolist():
        stretch = episode.frames(start, end)
        stretch.extra_attrs.update({ATTR_EXPERT_SPANS: np.array([[0, end - start]]), ATTR_SOURCE_FRAMES: [start, end]})
        stretches.append(stretch)
    return stretches
