"""Where the goal's cubes are in a recorded episode, read from its simulator states.

Privileged information: training may use it as an auxiliary target (`vla train --object-loss`);
no policy sees it. A recorded state is [time, qpos, qvel] (robosuite's flattened MjSimState), and
a cube's free joint keeps its world position in the first three of its seven qpos values.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from sim.env import localize_asset_paths
from sim.fixtures import FIXTURES
from sim.tasks import Goal, get_task

GOAL_CUBE_VALUES = 6  # target xyz, then base xyz (NaN when the goal has no base cube)
STACKED_XY = 0.02  # m: a cube this close (horizontally) above its base cube, 3-5 cm higher, is on it
STACKED_DZ = (0.03, 0.05)
LET_GO = 0.03  # m: a placed cube counts once the gripper is this far from it
IN_FIXTURE_DZ = 0.04  # m: a cube less than this above a bin-like fixture's centre lies in it


@dataclass(frozen=True)
class GoalSchedule:
    """A long-horizon goal and, per recorded frame, the index of the step it is on (of goal.steps)."""

    goal: Goal
    step: np.ndarray  # (T,) int


def goal_schedule(goal: Goal, offsets: dict[str, np.ndarray]) -> GoalSchedule:
    """The step of a long-horizon goal each frame is on, from colour -> (T, 3) every cube (and fixture)
    relative to the gripper: a step is done once its cube lies on its base (in its fixture) and the
    gripper has left it; steps are done in order and stay done."""
    first = next(iter(offsets.values()))
    done = np.ones(len(first), dtype=bool)
    step = np.zeros(len(first), dtype=int)
    for one in goal.steps[:-1]:
        done &= np.maximum.accumulate(_placed(offsets, one))
        step += done
    return GoalSchedule(goal, step)


def _placed(offsets: dict[str, np.ndarray], step: Goal) -> np.ndarray:
    cube, base = offsets[step.target], offsets[step.base]
    gap = cube - base
    let_go = np.linalg.norm(cube, axis=-1) > LET_GO
    if step.base in FIXTURES:
        return let_go & (np.abs(gap[:, :2]).max(-1) < FIXTURES[step.base].opening) & (gap[:, 2] < IN_FIXTURE_DZ)
    on_top = (np.linalg.norm(gap[:, :2], axis=-1) < STACKED_XY) & (gap[:, 2] > STACKED_DZ[0]) & (gap[:, 2] < STACKED_DZ[1])
    return let_go & on_top


def cube_qpos_addresses(task: str, model_xml: str) -> dict[str, int]:
    """Colour -> index of the cube's x position in the flattened state, for the scene in `model_xml`."""
    model = mujoco.MjModel.from_xml_string(localize_asset_paths(model_xml))
    addresses = {}
    for color, body_name in get_task(task).cube_bodies.items():
        body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body_name)
        if body < 0 or model.body_jntnum[body] != 1:
            raise ValueError(f"the recorded scene has no free cube body {body_name!r} for task {task!r}: "
                             "was the file recorded on another task?")
        joint = model.body_jntadr[body]
        if model.jnt_type[joint] != mujoco.mjtJoint.mjJNT_FREE:
            raise ValueError(f"{body_name!r} is not a free body in the recorded scene of task {task!r}")
        addresses[color] = 1 + int(model.jnt_qposadr[joint])  # 1: the state starts with the time
    return addresses


def cube_positions(addresses: dict[str, int], states: np.ndarray) -> dict[str, np.ndarray]:
    """Colour -> (T, 3) world xyz of that cube at each state."""
    return {color: states[:, address:address + 3] for color, address in addresses.items()}


def goal_slots(cubes: dict[str, np.ndarray], goal: Goal | GoalSchedule) -> np.ndarray:
    """(..., 6): the goal's target cube, then its base cube (NaN without one), from colour -> (..., 3);
    for a GoalSchedule, colour -> (T, 3) and each frame's step."""
    slots = per_goal_slot(cubes, goal)
    return slots.reshape(slots.shape[:-2] + (GOAL_CUBE_VALUES,))


def per_goal_slot(values: dict[str, np.ndarray], goal: Goal | GoalSchedule) -> np.ndarray:
    """(..., 2, D): the goal's target cube's values, then its base cube's (NaN without one), from
    colour -> (..., D) (world positions, offsets, pixel positions in each camera); for a GoalSchedule,
    colour -> (T, ..., D) with each frame's step."""
    if isinstance(goal, GoalSchedule):
        slots = [per_goal_slot(values, step) for step in goal.goal.steps]
        return np.stack(slots)[goal.step, np.arange(len(goal.step))]
    first = next(iter(values.values()))
    out = np.full(first.shape[:-1] + (2, first.shape[-1]), np.nan)
    for slot, color in enumerate((goal.target, goal.base)):
        if color is None:
            continue
        if color not in values:
            raise ValueError(f"goal colour {color!r} has no cube in this scene (cubes: {sorted(values)})")
        out[..., slot, :] = values[color]
    return out
