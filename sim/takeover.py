"""Expert takeover while a learner collects (`vla collect --learner P --takeover STEPS`, HG-DAgger-style).

Plain DAgger lets the learner drive the whole episode: a learner that stands still at a fixed point
(fingers around a cube, never closing) fills the rest of the step limit with hundreds of near-identical
frames. With a takeover rule, once no arm joint has moved by more than STILL_RAD for `still_steps` control
steps, the labelling expert drives for `drive_steps` steps (its own labels executed: a recovery
demonstrated from the very state the learner stopped in), then hands control back to the learner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STILL_RAD = 0.01  # an arm joint that moved less than this since the still stretch began has not moved
DRIVE_STEPS = 60  # control steps the expert drives once it has taken over (3 s at 20 Hz)
ATTR_TAKEOVERS = "takeovers"
ATTR_EXPERT_STEPS = "expert_driven_steps"


@dataclass(frozen=True)
class TakeoverRule:
    still_steps: int  # the learner kept every arm joint within STILL_RAD for this many control steps ...
    drive_steps: int = DRIVE_STEPS  # ... so the expert drives for this many

    def __post_init__(self):
        if self.still_steps < 1 or self.drive_steps < 1:
            raise ValueError(f"--takeover needs at least 1 still step and 1 expert step, got {self.still_steps} "
                             f"and {self.drive_steps}")

    def tracker(self) -> TakeoverTracker:
        return TakeoverTracker(self)


class TakeoverTracker:
    """Call expert_drives(joints) once per control step, before it executes; counts what it hands over."""

    def __init__(self, rule: TakeoverRule):
        self.rule = rule
        self.anchor: np.ndarray | None = None  # the joints where the current still stretch began
        self.still = 0
        self.driving_left = 0
        self.takeovers = 0
        self.expert_steps = 0

    def expert_drives(self, joints: np.ndarray) -> bool:
        joints = np.asarray(joints, dtype=np.float64)
        if self.driving_left > 0:
            self.driving_left -= 1
            self.expert_steps += 1
            self.anchor, self.still = joints, 0  # the learner's still stretch starts again when it drives
            return True
        if self.anchor is None or np.abs(joints - self.anchor).max() > STILL_RAD:
            self.anchor, self.still = joints, 0
            return False
        self.still += 1
        if self.still < self.rule.still_steps:
            return False
        self.takeovers += 1
        self.driving_left = self.rule.drive_steps
        return self.expert_drives(joints)

    def attrs(self) -> dict:
        return {ATTR_TAKEOVERS: self.takeovers, ATTR_EXPERT_STEPS: self.expert_steps}
