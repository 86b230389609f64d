"""The simulator's training-only labels for vla training (vla.scene_labels.SceneLabels): where every cube
is in each recorded frame (from the MuJoCo states), relative to the gripper and projected into each
camera, and other goals of the same scene. `vla train` hands SIM_SCENE_LABELS to vla.train.train."""

from __future__ import annotations

import json

import h5py
import numpy as np

from sim.camera_projection import CameraProjector
from sim.goal_relabel import counterfactual_goal
from sim.object_positions import (GoalSchedule, cube_positions, cube_qpos_addresses, goal_schedule, goal_slots,
                                  per_goal_slot)
from sim.tasks import Goal, step_instruction
from vla.config import DataConfig
from vla.dataset_file import DatasetError, attribute, child, data_group, has, member_names, open_hdf5, read
from vla.scene_labels import SceneLabels


def object_locator(path: str, data: h5py.Group, config: DataConfig):
    """A function demo group -> (task, goal, colour -> (T, 3) every cube relative to the gripper, world
    frame, colour -> (T, N_cam, 2) its pixel position in each camera), for the scene this file was recorded in.
    A long-horizon goal comes as a GoalSchedule: the step each frame is on."""
    demos = member_names(path, data)
    env_args = attribute(path, data, "env_args")
    model_xml = attribute(path, child(path, data, demos[0]), "model_file") if demos else None
    try:
        task = json.loads(env_args)["task"]
        addresses = cube_qpos_addresses(task, model_xml) if demos else {}
        projector = CameraProjector(model_xml, config.cameras, config.image_size) if demos else None
    except (KeyError, ValueError) as error:
        raise DatasetError(f"{path}: cannot tell where the cubes are ({error}); --object-loss and "
                           "--goal-keypoint-loss need files recorded by `vla collect` (env_args with the task, "
                           "model_file and states per demo)") from error

    def locate(group: h5py.Group) -> tuple[str, Goal | GoalSchedule, dict[str, np.ndarray], dict[str, np.ndarray]]:
        gripper, states = read(path, group, "obs/robot0_eef_pos"), read(path, group, "states")
        goal_json = attribute(path, group, "goal")
        try:
            goal = Goal.from_dict(json.loads(goal_json))
            world = cube_positions(addresses, states)
            pixels = projector.pixels(states, world)
        except (KeyError, ValueError) as error:
            raise DatasetError(f"{path}:{group.name}: cannot tell where the goal's cubes are ({error}); "
                               "--object-loss and --goal-keypoint-loss need its goal, states and "
                               "obs/robot0_eef_pos as `vla collect` writes them") from error
        offsets = {color: xyz - gripper for color, xyz in world.items()}
        return task, goal_schedule(goal, offsets) if goal.then else goal, offsets, pixels

    return locate


def unavailable(path: str) -> str | None:
    """Why `path` cannot give scene labels (a demo without MuJoCo states or model, as a real robot's or an
    imported dataset), None when every demo has them."""
    with open_hdf5(path) as f:
        data = data_group(path, f)
        for name in member_names(path, data):
            group = child(path, data, name)
            states = child(path, group, "states") if has(path, group, "states") else None
            if states is None or states.shape[-1] == 0 or not attribute(path, group, "model_file", ""):
                return f"{path}:{group.name} has no MuJoCo states (a real robot's or an imported dataset)"
    return None


def frame_step_instructions(goal: Goal | GoalSchedule) -> list[str] | None:
    """For a long-horizon goal, each frame's step as a one-step instruction (sim.tasks.step_instruction); None
    for a one-step goal."""
    if not isinstance(goal, GoalSchedule):
        return None
    texts = [step_instruction(step) for step in goal.goal.steps]
    return [texts[step] for step in goal.step]


SIM_SCENE_LABELS = SceneLabels(locator=object_locator, goal_slots=goal_slots, per_goal_slot=per_goal_slot,
                               counterfactual_goal=counterfactual_goal, step_instructions=frame_step_instructions,
                               unavailable=unavailable)
