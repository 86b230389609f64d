"""Demonstrations replayed at a working pace: slow stretches of a demo merged into fewer, longer steps.

A person (or the scripted operator) slows down near the object, creeps the last centimetres and pauses
now and then; an expert moves at one pace and closes. Trained on the slow demo as recorded, a policy learns
to creep too: tens of near-identical frames over the cube, all but the last labelled "keep the gripper
open", and it hovers a few centimetres off the cube for the rest of the episode (docs/results.md, Teaching
new tasks). Retiming (as in DemoSpeedup and SAIL) cuts each demo into runs of consecutive frames and keeps
one frame per run: the run's first observation with its last action, so every kept step moves the joint
targets at least `min_step` rad. A run never spans a change of the gripper command, and a grasp or release
keeps every frame until the fingers come to rest; pauses and dwells vanish. Pure function of the recorded actions
and states: it works on data without simulator states (robot recordings, LeRobot imports).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from vla.data import IDLE_STATE_CHANGE  # m per step: fingers moving at least this fast keep every frame

GRIPPER_CLOSED = 0.5  # a gripper command above this closes it


def run_ends(actions: np.ndarray, finger_states: np.ndarray, min_step: float) -> np.ndarray:
    """Indices of the last frame of each run: (T, A) actions (joint targets then the gripper command) and
    (T, F) finger positions. A run ends where its joint targets have moved `min_step` (rad, any joint)
    beyond the previous run's, before a change of the gripper command, at every frame of a grasp or release
    (gripper_settling), and at the end."""
    joints, closed = actions[:, :-1], actions[:, -1] > GRIPPER_CLOSED
    settling = gripper_settling(closed, finger_states)
    ends, reference = [], joints[0]
    for t in range(len(actions)):
        last = t == len(actions) - 1
        if last or closed[t + 1] != closed[t] or settling[t] or np.abs(joints[t] - reference).max() >= min_step:
            ends.append(t)
            reference = joints[t]
    return np.asarray(ends, dtype=int)


def gripper_settling(closed: np.ndarray, finger_states: np.ndarray) -> np.ndarray:
    """(T,) True from each change of the gripper command until the fingers come to rest (they start moving
    the step after the command). Fingers pushed about by a touch while the command holds do not count."""
    moving = np.zeros(len(closed), dtype=bool)
    if finger_states.shape[1]:
        moving[1:] = np.abs(np.diff(finger_states, axis=0)).max(1) >= IDLE_STATE_CHANGE
    settling = np.zeros(len(closed), dtype=bool)
    for change in np.flatnonzero(closed[1:] != closed[:-1]) + 1:
        t = change
        while t < len(closed) and (t <= change + 1 or moving[t]):
            settling[t] = True
            t += 1
    return settling


def retimed(demo, min_step: float):
    """The demo (vla.data.Demo) with one frame per run (run_ends): each run's first frame and its last action.
    The state's columns after the arm's joints (one per joint target) are the fingers. min_step 0 keeps the
    demo as it is."""
    if min_step <= 0 or len(demo.actions) < 2:
        return demo
    fingers = demo.states[:, demo.actions.shape[1] - 1:]
    ends = run_ends(demo.actions, fingers, min_step)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return replace(
        demo, images=demo.images[starts], states=demo.states[starts], actions=demo.actions[ends],
        subtasks=[demo.subtasks[t] for t in starts],
        objects=None if demo.objects is None else demo.objects[starts],
        cubes=None if demo.cubes is None else {c: p[starts] for c, p in demo.cubes.items()},
        cube_pixels=None if demo.cube_pixels is None else {c: p[starts] for c, p in demo.cube_pixels.items()},
        goal_pixels=None if demo.goal_pixels is None else demo.goal_pixels[starts],
        step_instructions=None if demo.step_instructions is None else [demo.step_instructions[t] for t in starts])
