"""How a checkpoint runs best, stored with it: `execution.json` next to its weights.

`vla eval`, `vla serve`, `vla select` and `vla collect --learner` run a checkpoint with these settings
unless a flag overrides one (`--no-ensemble`, `--readout mean`, ...); a checkpoint without the file
runs with the defaults below. `vla train` writes the file (a fine-tuned checkpoint inherits the
settings of the one it started from).

    settings = ExecutionSettings.load(checkpoint_dir).overridden({"ensemble": False})
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from vla.config import READOUTS

EXECUTION_FILE = "execution.json"


@dataclass(frozen=True)
class ExecutionSettings:
    """flat: the controller without the planner; execute_steps: actions run per chunk (None: half the
    chunk); ensemble: temporal ensembling, a prediction every step, the i-th oldest weighing
    exp(-ensemble_decay * i); plan_every: control steps between planner calls; readout: each action
    token's likeliest bin or its expected value; gripper_latch: gripper commands 0 or 1 with
    hysteresis; forward_planner: the planner never goes back a phase; planner_memory: it never reaches
    again for a cube placed this episode; step_planner: a long-horizon instruction is pursued one step at a
    time (policies/hierarchical.py); phase_timeout: control steps after which a subtask the
    planner keeps is dropped (0: off)."""

    flat: bool = False
    execute_steps: int | None = None
    ensemble: bool = False
    ensemble_decay: float = 0.1
    plan_every: int = 8
    readout: str = "argmax"
    gripper_latch: bool = False
    forward_planner: bool = False
    planner_memory: bool = False
    step_planner: bool = True
    phase_timeout: int = 0

    def __post_init__(self) -> None:
        if self.readout not in READOUTS:
            raise ValueError(f"execution readout must be one of {', '.join(READOUTS)}, got {self.readout!r}")
        if self.execute_steps is not None and self.execute_steps < 1:
            raise ValueError(f"execution execute_steps must be >= 1 (or null: half the chunk), got {self.execute_steps}")
        if self.plan_every < 1 or self.phase_timeout < 0:
            raise ValueError(f"execution plan_every must be >= 1 and phase_timeout >= 0, got {self.plan_every} "
                             f"and {self.phase_timeout}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def load(cls, directory: str | Path) -> "ExecutionSettings":
        """The settings stored in a checkpoint directory (the defaults when it has none)."""
        path = Path(directory) / EXECUTION_FILE
        if not path.is_file():
            return cls()
        try:
            stored = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is corrupt: {error}; fix or delete it (then the defaults apply)") from None
        unknown = sorted(set(stored) - set(cls.names())) if isinstance(stored, dict) else ["(not an object)"]
        if unknown:
            raise ValueError(f"{path}: unknown settings {', '.join(unknown)}; known: {', '.join(cls.names())}")
        return cls(**stored)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / EXECUTION_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    def overridden(self, overrides: dict) -> "ExecutionSettings":
        """These settings with some replaced (names of ExecutionSettings fields)."""
        return replace(self, **overrides)

    def describe(self) -> str:
        """One line: what a run with these settings does."""
        parts = ["flat" if self.flat else f"hierarchical (planner every {self.plan_every} steps"
                 + (", forward only" if self.forward_planner else "")
                 + (", memory of placed cubes" if self.planner_memory else "")
                 + ("" if self.step_planner else ", long instructions whole")
                 + (f", subtask dropped after {self.phase_timeout} steps" if self.phase_timeout else "") + ")"]
        if self.ensemble:
            parts.append(f"temporal ensembling (decay {self.ensemble_decay:g})")
        else:
            parts.append(f"execute {self.execute_steps or 'half'} of each chunk")
        parts.append(f"{self.readout} readout")
        if self.gripper_latch:
            parts.append("gripper latch")
        return ", ".join(parts)
