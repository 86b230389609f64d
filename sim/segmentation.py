"""Subtask labels for demonstrations that come without them (teleoperation, imports).

The hierarchical policy trains its planner on per-step subtask phrases, which the scripted experts
write and a person driving the arm does not. A pick-and-place demonstration is segmented from what
any recording has: the gripper command (the close and open events) and the end effector's motion:

    reach the {target} cube | grasp | lift | move above the {base} cube | lower | release

- reach: until the gripper is first commanded closed;
- grasp: from then until the end effector has risen RISE_M above where it closed;
- lift: then, until it has moved MOVE_M sideways from there (pick goals: lift to the end);
- move above the base: then, until it starts to descend for the place;
- lower: the descent, until the gripper is commanded open;
- release: from the opening to the end.
A demonstration that never closes the gripper is all "reach". A push (onto a marker) is

    move behind the {target} cube | push it onto the yellow marker

- move behind: until the end effector first comes down within LOW_M of the lowest it goes;
- push: from then to the end.
A long-horizon goal (several pick-and-place steps) is cut into one piece per step, each segmented as
above: a piece ends, after its gripper opening, where the end effector has risen to within
TOP_M of the highest it goes before the next closing (the fingers clear of the placed cube).
The phrases are the experts' own (sim/experts/scripted.py), so labelled demonstrations train the same
planner head.
"""

from __future__ import annotations

import numpy as np

from sim.tasks import Goal, describe

CLOSED = 0.5  # a gripper command above this closes the fingers
RISE_M = 0.003  # grasp -> lift: the end effector 3 mm above where the gripper closed
MOVE_M = 0.01  # lift -> move above: 1 cm sideways from where the gripper closed
DESCENT_M = 0.005  # move above -> lower: 5 mm below the highest point of the carry
LOW_M = 0.005  # reach -> push: the end effector within 5 mm of the lowest it goes
TOP_M = 0.005  # release -> the next step's reach: within 5 mm of the highest point between two grasps


def segment_subtasks(gripper: np.ndarray, eef_pos: np.ndarray, goal: Goal) -> list[str]:
    """gripper (T,) commands in [0, 1] (1 = closed), eef_pos (T, 3) metres -> T subtask phrases."""
    gripper, eef_pos = np.asarray(gripper, dtype=np.float64), np.asarray(eef_pos, dtype=np.float64)
    if gripper.ndim != 1 or eef_pos.shape != (len(gripper), 3):
        raise ValueError(f"segment_subtasks: gripper (T,) and eef_pos (T, 3), got {gripper.shape} and {eef_pos.shape}")
    if goal.then:
        return _segment_steps(gripper, eef_pos, goal.steps)
    if goal.kind == "push":
        labels = [f"move behind {describe(goal.target)}"] * len(gripper)
        t_push = _first(eef_pos[:, 2] <= eef_pos[:, 2].min() + LOW_M, 0, len(gripper))
        _fill(labels, t_push, len(gripper), f"push it onto {describe(goal.base)}")
        return labels
    labels = [f"reach {describe(goal.target)}"] * len(gripper)
    closed = gripper > CLOSED
    if not closed.any():
        return labels
    t_close = int(np.argmax(closed))
    t_lift = _first(eef_pos[t_close:, 2] - eef_pos[t_close, 2] > RISE_M, t_close, len(gripper))
    _fill(labels, t_close, t_lift, "grasp")
    if goal.base is None:
        _fill(labels, t_lift, len(gripper), "lift")
        return labels
    t_open = _first(~closed[t_close:], t_close, len(gripper))
    sideways = np.linalg.norm(eef_pos[t_lift:t_open, :2] - eef_pos[t_close, :2], axis=1)
    t_move = _first(sideways > MOVE_M, t_lift, t_open)
    t_lower = _descent_start(eef_pos[:, 2], t_move, t_open)
    _fill(labels, t_lift, t_move, "lift")
    _fill(labels, t_move, t_lower, f"move above {describe(goal.base)}")
    _fill(labels, t_lower, t_open, "lower")
    _fill(labels, t_open, len(gripper), "release")
    return labels


def _segment_steps(gripper: np.ndarray, eef_pos: np.ndarray, steps: tuple[Goal, ...]) -> list[str]:
    """Labels of a long-horizon demonstration: one piece per step (module docstring), the last to the end."""
    closed = gripper > CLOSED
    closes = np.flatnonzero(closed[1:] & ~closed[:-1]) + 1
    closes = np.concatenate([[0] if closed[0] else [], closes]).astype(int)
    opens = np.flatnonzero(~closed[1:] & closed[:-1]) + 1
    labels, start = [], 0
    for number, step in enumerate(steps):
        later_opens = opens[opens > start]
        next_closes = closes[closes > later_opens[0]] if len(later_opens) else []
        if number == len(steps) - 1 or not len(later_opens) or not len(next_closes):
            return labels + segment_subtasks(gripper[start:], eef_pos[start:], step)
        window = eef_pos[later_opens[0]:next_closes[0], 2]
        end = int(later_opens[0] + np.argmax(window >= window.max() - TOP_M)) + 1
        labels += segment_subtasks(gripper[start:end], eef_pos[start:end], step)
        start = end
    return labels


def _first(condition: np.ndarray, offset: int, default: int) -> int:
    """offset + the first index where condition holds, else default."""
    hits = np.flatnonzero(condition)
    return offset + int(hits[0]) if hits.size else default


def _descent_start(height: np.ndarray, start: int, stop: int) -> int:
    """The last step in [start, stop) still within DESCENT_M of the carry's highest point."""
    if stop <= start:
        return stop
    carry = height[start:stop]
    near_top = np.flatnonzero(carry >= carry.max() - DESCENT_M)
    return start + int(near_top[-1]) + 1 if near_top[-1] + 1 < len(carry) else stop


def _fill(labels: list[str], start: int, stop: int, phrase: str) -> None:
    labels[start:stop] = [phrase] * max(0, stop - start)


def agreement(labels: list[str], reference: list[str]) -> float:
    """Share of steps where two labellings name the same subtask."""
    if len(labels) != len(reference) or not labels:
        raise ValueError(f"agreement: two labellings of the same steps, got {len(labels)} and {len(reference)}")
    return sum(a == b for a, b in zip(labels, reference)) / len(labels)
