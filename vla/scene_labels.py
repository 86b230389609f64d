"""Training-only labels that come from the simulator, handed to training from outside: vla/ never imports sim/.

The object head and the goal keypoints are trained on where the goal's cubes are (from the gripper, and
in each camera image) and, with `relabel_goals`, on other goals of the same scene. Those labels need the
recorded MuJoCo states, the task's goals and its instruction templates, which only sim/ knows;
`sim.scene_labels.SIM_SCENE_LABELS` implements this interface and `vla train` passes it in. A dataset
without MuJoCo states (a real robot's, an import) trains without these side losses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Goal = Any  # the task's goal object (sim.tasks.Goal): opaque here, handed back to the functions below


@dataclass(frozen=True)
class SceneLabels:
    """locator(path, data group, DataConfig) -> locate(demo group) -> (task, goal, colour -> (T, 3) every cube
    relative to the gripper, colour -> (T, N_cam, 2) its pixel x, y in each camera);
    goal_slots(colour -> (..., 3), goal) -> (..., 6) the goal's target and base cube (NaN: none);
    per_goal_slot(colour -> (..., N_cam, 2), goal) -> (..., N_cam, 2, 2) the same in pixels;
    counterfactual_goal(task, goal, colours, rng) -> (instruction, goal) of another goal of the scene, or None;
    step_instructions(goal) -> for a long-horizon goal, each frame's step as a one-step instruction (else None);
    unavailable(path) -> why a dataset file cannot give these labels (no MuJoCo states), None when it can."""

    locator: Callable[..., Callable]
    goal_slots: Callable[[dict[str, np.ndarray], Goal], np.ndarray]
    per_goal_slot: Callable[[dict[str, np.ndarray], Goal], np.ndarray]
    counterfactual_goal: Callable[[str, Goal, Any, np.random.Generator], tuple[str, Goal] | None]
    step_instructions: Callable[[Goal], list[str] | None]
    unavailable: Callable[[str], str | None]
