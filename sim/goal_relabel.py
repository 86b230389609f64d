"""Counterfactual goals for the object head (`vla train --set train.relabel_goals=P`).

In a demonstration of "pick up the red cube" the arm heads for the red cube from its first steps,
so the object head can learn where the goal's cube is from where the arm is going instead of from
the colour the instruction names. It then fails exactly where that cue is missing or misleading:
at the first frame (the arm at rest) and wherever a policy's arm heads for another cube, which the
head then follows (README, Results). A relabelled row keeps the frame and names another goal of
the same task - another colour, for place goals another ordered pair - so the same pixels and arm
motion come with an answer that only the words decide. Its object targets are the new goal's
cubes; its recorded actions belong to the old goal, so it trains the object head only.
"""

from __future__ import annotations

import numpy as np

from sim.tasks import COLORS, Goal, get_task


def other_goals(goal: Goal, colors) -> list[Goal]:
    """Goals of the same kind as `goal` (pick: a target; place: a target on a base; to a fixture: a target to
    that fixture) over the cube `colors`, but it."""
    colors = sorted(color for color in colors if color in COLORS)
    if goal.base is None:
        candidates = [Goal(color) for color in colors]
    elif goal.base not in COLORS:  # a fixture (marker, bin): another cube to the same fixture
        candidates = [Goal(color, goal.base) for color in colors]
    else:
        candidates = [Goal(target, base) for target in colors for base in colors if target != base]
    return [candidate for candidate in candidates if candidate != goal]


def counterfactual_goal(task: str, goal: Goal, colors, rng: np.random.Generator) -> tuple[str, Goal] | None:
    """(an instruction for another goal of `task` over the scene's cube `colors`, that goal); None when
    the scene allows no other goal, and for long-horizon goals (relabelled as a whole, one frame's object
    targets would name a step the recorded arm is not on)."""
    if not isinstance(goal, Goal) or goal.then:
        return None
    goals = other_goals(goal, colors)
    if not goals:
        return None
    chosen = goals[int(rng.integers(len(goals)))]
    return get_task(task).instruction(chosen, rng), chosen
