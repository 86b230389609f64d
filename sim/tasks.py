"""The task registry: names, robosuite scenes, goals and instruction templates.

A task is data: which robosuite scene to build (and which fixture it has, sim.fixtures), how to draw a
goal (which cube to pick, onto which cube or into which fixture to move it) and how to phrase it. `TASKS`
is the one registry; push-color and bin-color are the tasks the shipped default never saw (teach them
with `vla teleop` and `vla train --init default`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from sim.fixtures import FIXTURES

COLORS = ("red", "green", "blue")


@dataclass(frozen=True)
class Goal:
    """Pick `target`; if `base` is set, place it on `base`."""

    target: str
    base: str | None = None

    @property
    def kind(self) -> str:
        """pick (no base), place (onto a cube or into a bin) or push (onto a marker)."""
        if self.base is None:
            return "pick"
        return "push" if self.base in FIXTURES and FIXTURES[self.base].kind == "push" else "place"

    def to_dict(self) -> dict:
        return {"target": self.target, "base": self.base}

    @staticmethod
    def from_dict(data: dict) -> "Goal":
        return Goal(target=data["target"], base=data.get("base"))


@dataclass(frozen=True)
class TaskSpec:
    name: str
    gym_id: str
    robosuite_env: str
    cube_bodies: dict[str, str]  # colour -> robosuite body name
    draw_goal: Callable[[np.random.Generator], Goal]
    templates: tuple[str, ...]  # format fields: {target}, {base}
    max_steps: int
    fixture: str | None = None  # sim.fixtures name the scene has besides its cubes

    def suite_kwargs(self) -> dict:
        """Keyword arguments of robosuite.make beyond the project's defaults."""
        return {"fixture": self.fixture} if self.fixture else {}

    def instruction(self, goal: Goal, rng: np.random.Generator) -> str:
        template = self.templates[int(rng.integers(len(self.templates)))]
        return template.format(target=goal.target, base=goal.base)


def _fixed_goal(target: str, base: str | None = None) -> Callable[[np.random.Generator], Goal]:
    return lambda rng: Goal(target, base)


def _random_pick(rng: np.random.Generator) -> Goal:
    return Goal(COLORS[int(rng.integers(len(COLORS)))])


def _random_place(rng: np.random.Generator) -> Goal:
    target, base = rng.choice(len(COLORS), size=2, replace=False)
    return Goal(COLORS[int(target)], COLORS[int(base)])


def _random_to_fixture(fixture: str) -> Callable[[np.random.Generator], Goal]:
    return lambda rng: Goal(_random_pick(rng).target, fixture)


def describe(name: str) -> str:
    """How instructions and subtask phrases name a cube colour or a fixture: "the red cube", "the bin"."""
    return f"the {FIXTURES[name].phrase}" if name in FIXTURES else f"the {name} cube"


_PICK_TEMPLATES = (
    "pick up the {target} cube",
    "grab the {target} cube",
    "lift the {target} cube",
    "pick the {target} block up",
)
_PLACE_TEMPLATES = (
    "put the {target} cube on the {base} cube",
    "stack the {target} cube on top of the {base} cube",
    "place the {target} block onto the {base} block",
)
_PUSH_TEMPLATES = (
    "push the {target} cube onto the yellow marker",
    "slide the {target} cube onto the yellow marker",
    "push the {target} block to the yellow square",
)
_BIN_TEMPLATES = (
    "put the {target} cube in the bin",
    "drop the {target} cube into the bin",
    "place the {target} block in the bin",
)
_COLOR_CUBE_BODIES = {color: f"{color}_cube_main" for color in COLORS}

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("lift", "vla/Lift-v0", "Lift", {"red": "cube_main"}, _fixed_goal("red"),
                 ("lift the red cube", "pick up the red cube"), 150),
        TaskSpec("stack", "vla/Stack-v0", "Stack", {"red": "cubeA_main", "green": "cubeB_main"},
                 _fixed_goal("red", "green"),
                 ("stack the red cube on the green cube", "put the red cube on the green cube"), 250),
        TaskSpec("pick-color", "vla/PickColor-v0", "ColorCubes", _COLOR_CUBE_BODIES, _random_pick,
                 _PICK_TEMPLATES, 150),
        TaskSpec("place-color", "vla/PlaceColor-v0", "ColorCubes", _COLOR_CUBE_BODIES, _random_place,
                 _PLACE_TEMPLATES, 250),
        TaskSpec("push-color", "vla/PushColor-v0", "ColorCubes", {**_COLOR_CUBE_BODIES, "marker": "marker_main"},
                 _random_to_fixture("marker"), _PUSH_TEMPLATES, 250, fixture="marker"),
        TaskSpec("bin-color", "vla/BinColor-v0", "ColorCubes", {**_COLOR_CUBE_BODIES, "bin": "bin_root"},
                 _random_to_fixture("bin"), _BIN_TEMPLATES, 250, fixture="bin"),
    )
}


def get_task(name: str) -> TaskSpec:
    """The task called `name`, or a ValueError listing the valid names."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[name]
