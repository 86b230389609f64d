"""The task registry: names, robosuite scenes, goals and instruction templates.

A task is data: which robosuite scene to build (and which fixture it has, sim.fixtures), how to draw a
goal (which cube to pick, onto which cube or into which fixture to move it) and how to phrase it. `TASKS`
is the one registry; push-color and bin-color are the tasks the shipped default never saw (teach them
with `vla teleop` and `vla train --init default`).

Long-horizon tasks chain pick-and-place steps (a Goal with `then`): stack-three builds a three-cube
tower in a named order, crate-three drops the three cubes into a crate in a named order. Two of the six
orders are held out (HELD_OUT_ORDERS): stack-three and crate-three never draw them, their `-unseen`
twins draw only them, so unseen compositions of seen words are evaluated apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations
from typing import Callable

import numpy as np

from sim.fixtures import FIXTURES

COLORS = ("red", "green", "blue")


@dataclass(frozen=True)
class Goal:
    """Pick `target`; if `base` is set, place it on `base`; then, in order, the goals of `then` (long-horizon)."""

    target: str
    base: str | None = None
    then: tuple["Goal", ...] = ()

    @property
    def steps(self) -> tuple["Goal", ...]:
        """Every pick-and-place step in order, each a one-step Goal."""
        return (Goal(self.target, self.base),) + tuple(step for goal in self.then for step in goal.steps)

    def template_fields(self) -> dict[str, str | None]:
        """Instruction template fields: {target}, {base} of the first step, {target2}, {base2}, ... of the next."""
        fields = {}
        for number, step in enumerate(self.steps, 1):
            suffix = "" if number == 1 else str(number)
            fields |= {f"target{suffix}": step.target, f"base{suffix}": step.base}
        return fields

    @property
    def kind(self) -> str:
        """pick (no base), place (onto a cube or into a bin) or push (onto a marker)."""
        if self.base is None:
            return "pick"
        return "push" if self.base in FIXTURES and FIXTURES[self.base].kind == "push" else "place"

    def to_dict(self) -> dict:
        data = {"target": self.target, "base": self.base}
        return data | {"then": [goal.to_dict() for goal in self.then]} if self.then else data

    @staticmethod
    def from_dict(data: dict) -> "Goal":
        then = tuple(Goal.from_dict(goal) for goal in data.get("then", ()))
        return Goal(target=data["target"], base=data.get("base"), then=then)


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

    @property
    def long_horizon(self) -> bool:
        """Whether its goals chain several pick-and-place steps."""
        return bool(self.draw_goal(np.random.default_rng(0)).then)

    def suite_kwargs(self) -> dict:
        """Keyword arguments of robosuite.make beyond the project's defaults."""
        return {"fixture": self.fixture} if self.fixture else {}

    def instruction(self, goal: Goal, rng: np.random.Generator) -> str:
        template = self.templates[int(rng.integers(len(self.templates)))]
        return template.format(**goal.template_fields())


def _fixed_goal(target: str, base: str | None = None) -> Callable[[np.random.Generator], Goal]:
    return lambda rng: Goal(target, base)


def _random_pick(rng: np.random.Generator) -> Goal:
    return Goal(COLORS[int(rng.integers(len(COLORS)))])


def _random_place(rng: np.random.Generator) -> Goal:
    target, base = rng.choice(len(COLORS), size=2, replace=False)
    return Goal(COLORS[int(target)], COLORS[int(base)])


def _random_to_fixture(fixture: str) -> Callable[[np.random.Generator], Goal]:
    return lambda rng: Goal(_random_pick(rng).target, fixture)


# Orders (first, second, third cube) the long-horizon tasks hold out of training: the -unseen tasks.
HELD_OUT_ORDERS = (("green", "blue", "red"), ("blue", "red", "green"))
SEEN_ORDERS = tuple(order for order in permutations(COLORS) if order not in HELD_OUT_ORDERS)


@dataclass(frozen=True)
class OrderedGoals:
    """A long-horizon goal draw: one of `orders` (cube colours, first to last), built into its goal by `build`."""

    build: Callable[[tuple[str, ...]], Goal]
    orders: tuple[tuple[str, ...], ...]

    def __call__(self, rng: np.random.Generator) -> Goal:
        return self.build(self.orders[int(rng.integers(len(self.orders)))])

    def every_goal(self) -> tuple[Goal, ...]:
        return tuple(self.build(order) for order in self.orders)


def _tower(order: tuple[str, ...]) -> Goal:
    """Stack the first cube on the second, then the third on top of the first."""
    first, second, third = order
    return Goal(first, second, then=(Goal(third, first),))


def _into_crate_in_order(order: tuple[str, ...]) -> Goal:
    first, *rest = order
    return Goal(first, "crate", then=tuple(Goal(color, "crate") for color in rest))


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
_STACK_THREE_TEMPLATES = (
    "stack the {target} cube on the {base} cube, then the {target2} cube on top",
    "put the {target} cube on the {base} cube and then the {target2} cube on the {target} cube",
    "build a tower with the {base} cube at the bottom, the {target} cube on it and the {target2} cube on top",
)
_CRATE_THREE_TEMPLATES = (
    "put the {target}, the {target2} and the {target3} cube in the crate, in that order",
    "drop the {target} cube into the crate, then the {target2} cube, then the {target3} cube",
    "first the {target} cube, then the {target2} cube, then the {target3} cube into the crate",
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
        TaskSpec("stack-three", "vla/StackThree-v0", "ColorCubes", _COLOR_CUBE_BODIES,
                 OrderedGoals(_tower, SEEN_ORDERS), _STACK_THREE_TEMPLATES, 500),
        TaskSpec("stack-three-unseen", "vla/StackThreeUnseen-v0", "ColorCubes", _COLOR_CUBE_BODIES,
                 OrderedGoals(_tower, HELD_OUT_ORDERS), _STACK_THREE_TEMPLATES, 500),
        TaskSpec("crate-three", "vla/CrateThree-v0", "ColorCubes", {**_COLOR_CUBE_BODIES, "crate": "crate_root"},
                 OrderedGoals(_into_crate_in_order, SEEN_ORDERS), _CRATE_THREE_TEMPLATES, 600, fixture="crate"),
        TaskSpec("crate-three-unseen", "vla/CrateThreeUnseen-v0", "ColorCubes",
                 {**_COLOR_CUBE_BODIES, "crate": "crate_root"},
                 OrderedGoals(_into_crate_in_order, HELD_OUT_ORDERS), _CRATE_THREE_TEMPLATES, 600, fixture="crate"),
    )
}


def get_task(name: str) -> TaskSpec:
    """The task called `name`, or a ValueError listing the valid names."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[name]


def step_instruction(step: Goal) -> str:
    """One pick-and-place step in the words of the one-step tasks (their first template): "put the green cube on
    the red cube", "put the blue cube in the crate"."""
    if step.base is None:
        return _PICK_TEMPLATES[0].format(target=step.target)
    if step.base in COLORS:
        return _PLACE_TEMPLATES[0].format(target=step.target, base=step.base)
    if FIXTURES[step.base].kind == "push":
        return _PUSH_TEMPLATES[0].format(target=step.target)
    return f"put the {step.target} cube in {describe(step.base)}"


def long_horizon_goal(instruction: str) -> Goal | None:
    """The goal a long-horizon task's instruction names (any of its phrasings, any order of its cubes, held out or
    not), None for any other text. Case, spacing and punctuation do not matter."""
    wanted = _normalized(instruction)
    for spec in TASKS.values():
        if isinstance(spec.draw_goal, OrderedGoals):
            for goal in spec.draw_goal.every_goal():
                if any(_normalized(t.format(**goal.template_fields())) == wanted for t in spec.templates):
                    return goal
    return None


def step_instructions(instruction: str) -> list[str] | None:
    """A long-horizon instruction as one instruction per step, in order (step_instruction); None for any other."""
    goal = long_horizon_goal(instruction)
    return None if goal is None else [step_instruction(step) for step in goal.steps]


def _normalized(text: str) -> str:
    return " ".join("".join(c if c.isalnum() else " " for c in text.lower()).split())
