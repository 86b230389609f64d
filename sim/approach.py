"""Where a rollout's gripper went relative to the cube it had to pick: the failure analysis of `vla eval`.

Per episode: whether the policy ever commanded the gripper closed, and the sideways (x-y) distance
between the gripper and the target cube at the step where the gripper was nearest the cube's height,
the lowest point of the approach. A policy that descends beside the cube shows a large offset; one
that grasps shows ~1-2 cm. On long-horizon tasks also how many of the goal's steps were done, in order: a step
counts once it and every earlier step have held together for SETTLED_STEPS control steps, or at the episode's end
(a success ends the episode at once). A cube that touches its base for a moment while carried, or slides off it
right after the release, is not a step done. Reads privileged simulator state, so it exists only in simulation.
"""

from __future__ import annotations

import numpy as np

GRIPPER_CLOSE_COMMAND = 0.5  # action[-1] above this closes the gripper (sim/env.py)
AT_CUBE_CM = 3.0  # an approach this close sideways puts the cube between the open fingers
SETTLED_STEPS = 10  # control steps (0.5 s) a placement stands before it counts as a step done


class ApproachTracker:
    def __init__(self, env):
        self.env = env
        self.target = env.goal.target if env.goal.target in env.task.cube_bodies else None
        self.closed = False
        self.best_height_gap, self.offset_m = np.inf, None
        self.steps = env.goal.steps if env.goal.then else ()
        self.steps_done = 0
        self.held_for = [0] * len(self.steps)  # control steps each prefix of the goal's steps has held, unbroken

    def observe(self, obs: dict, action: np.ndarray) -> None:
        self.closed = self.closed or float(action[-1]) > GRIPPER_CLOSE_COMMAND
        self._count_steps_done()
        if self.target is None:
            return
        cube, _ = self.env.cube_pose(self.target)
        gap = cube - np.asarray(obs["robot0_eef_pos"])
        if abs(gap[2]) < self.best_height_gap:
            self.best_height_gap, self.offset_m = abs(gap[2]), float(np.linalg.norm(gap[:2]))

    def _count_steps_done(self) -> None:
        standing = self._standing()
        self.held_for = [held + 1 if k < standing else 0 for k, held in enumerate(self.held_for)]
        self.steps_done = max([self.steps_done] + [k + 1 for k, held in enumerate(self.held_for)
                                                   if held >= SETTLED_STEPS])

    def _standing(self) -> int:
        """How many of the goal's steps hold now, counted in order up to the first that does not."""
        holds = (self.env.suite_env.step_holds(step.target, step.base) for step in self.steps)
        return next((k for k, held in enumerate(holds) if not held), len(self.steps))

    def summary(self) -> dict:
        """At the end of the episode (what stands in its last state counts, however briefly)."""
        steps_done = max(self.steps_done, self._standing())
        offset = None if self.offset_m is None else round(100 * self.offset_m, 2)
        progress = {"steps_done": steps_done} if self.steps else {}
        return {"closed_gripper": self.closed, "approach_offset_cm": offset, **progress}


def summarize_failures(details: list[dict]) -> dict:
    """How the failed episodes of an eval report failed (None where no episode failed): never closed
    the gripper; closed it with the cube between the fingers (so the lift, not the reach, failed);
    and how far beside the cube the approach came down; on long-horizon tasks, how many failures had done
    how many steps ({"0": n, "1": n, ...})."""
    failed = [d for d in details if not d["success"] and "closed_gripper" in d]
    offsets = [d["approach_offset_cm"] for d in failed if d.get("approach_offset_cm") is not None]
    closed_at_cube = [d for d in failed if d["closed_gripper"] and _at_cube(d.get("approach_offset_cm"))]
    return {"failed": len(failed), "never_closed_gripper": sum(not d["closed_gripper"] for d in failed),
            "closed_at_cube": len(closed_at_cube),
            "median_approach_offset_cm": round(float(np.median(offsets)), 2) if offsets else None,
            **_steps_done(failed)}


def _steps_done(failed: list[dict]) -> dict:
    counts = [d["steps_done"] for d in failed if "steps_done" in d]
    return {"steps_done": {str(k): counts.count(k) for k in sorted(set(counts))}} if counts else {}


def _at_cube(offset_cm: float | None) -> bool:
    return offset_cm is not None and offset_cm < AT_CUBE_CM
