"""What an operator's device says every control step (TeleopCommand) and the Device protocol that says it.

Its own module so that device adapters (sim.teleop_devices) and the teleop policy (sim.teleop) both depend
on it without depending on each other; sim.teleop re-exports both names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class TeleopCommand:
    """One step of an operator: dpos (3,) m and drot (3,) rad in the world frame, close the gripper or not."""

    dpos: np.ndarray
    drot: np.ndarray
    close: bool


class Device(Protocol):
    def start(self, env) -> None:
        """A new episode in env begins."""

    def read(self) -> TeleopCommand:
        """The operator's command for this control step."""
