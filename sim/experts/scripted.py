"""A scripted pick / pick-and-place / push expert on privileged simulator state.

It plans in Cartesian space (a moving set-point toward each phase's target), turns the
set-point into joint targets with damped least-squares IK, and labels every step with
the phrase of the phase it is in ("reach the red cube", "grasp", "lift", ...). A long-horizon goal
chains the phases of its steps (after each release but the last, the fingers rise clear before the
next reach); several cubes dropped into one fixture each go to their colour's spot of it, so the words of a
step ("put the red cube in the crate") say where its cube goes. A push goes
behind the cube (seen from the marker), lowers the closed fingers beside it and slides it
along the line to the marker, re-aimed every step at where the cube now is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import mujoco
import numpy as np

from policies.base import ActionChunk
from sim.experts.ik import yaw_of, yaw_rotation
from sim.experts.scene import Scene
from sim.fixtures import FIXTURES
from sim.tasks import describe

GRIPPER_OPEN, GRIPPER_CLOSED = 0.0, 1.0
GRASP_STEPS = 12  # fingers shut on the cube before lifting
RELEASE_STEPS = 10  # fingers open where they are before rising
RETREAT_HEIGHT = 0.08  # m the fingers rise above where a cube was let go
CARRY_CLEARANCE = 0.02  # m a held cube is carried above its lift height
SETTLED_M = 1e-3  # a set-point this near its phase's target has arrived
FIXTURE_DROP_SPOTS = {"red": (-0.04, -0.04), "green": (0.04, 0.04), "blue": (-0.04, 0.04)}  # m from a crate's centre


@dataclass(frozen=True)
class ExpertConfig:
    max_speed: float = 0.015  # metres per control step (0.3 m/s at 20 Hz)
    hover_height: float = 0.10  # above the cube before descending
    grasp_depth: float = 0.0  # grip site below the cube centre when grasping
    lift_height: float = 0.15
    place_clearance: float = 0.012  # gap between held cube and base cube before release
    tolerance: float = 0.008
    align_yaw: bool = True  # turn the fingers to the cube's faces; False: keep the start yaw (cubes <= 5 cm fit anyway)
    push_standoff: float = 0.06  # grip site behind the cube's centre before a push
    push_contact: float = 0.035  # grip site behind the cube's centre while pushing (fingers touch it)
    push_height: float = -0.005  # grip site relative to the cube's centre while pushing
    push_lead: float = 0.02  # how far ahead of touching the cube the pushing set-point aims
    push_lateral: float = 0.008  # fingers further than this sideways of the push line line up again
    push_speed: float = 0.006  # metres per control step while pushing


@dataclass(frozen=True)
class Phase:
    label: str
    target: Callable[[], np.ndarray]  # desired grip-site position (3,)
    gripper: float
    min_steps: int = 0
    max_steps: int = 80
    tolerance: float | None = None  # None: ends on min_steps alone


class ScriptedExpert:
    """Policy-contract expert for one VlaEnv; call reset() after env.reset()."""

    def __init__(self, env, config: ExpertConfig = ExpertConfig()):
        self.env = env
        self.config = config
        self.scene = Scene(env)
        self.ik = self.scene.arm_ik()
        self.phases: list[Phase] = []

    # -- Policy contract -----------------------------------------------------------------
    def reset(self, instruction: str = "") -> None:
        goal = self.env.goal
        q_now = self.scene.joint_positions()
        self.q_cmd = q_now
        self.setpoint, rot = self.ik.forward(q_now)
        self.down_rot = rot
        self.target_rot = rot
        self.phase_index, self.phase_steps = 0, 0
        self.grasp_point = None
        if goal.kind == "push":
            self.phases = self._push_phases(goal.target, goal.base)
            return
        steps = goal.steps
        self.phases = []
        for number, step in enumerate(steps):
            self.phases += self._pick_phases(step.target)
            if step.base is not None:
                self.phases += self._place_phases(step.base, last=number == len(steps) - 1,
                                                  offset=drop_offset(step, len(steps)))

    def act(self, observation=None) -> ActionChunk:
        phase = self._current_phase()
        target = phase.target()
        speed = self.config.push_speed if phase.label.startswith("push") else self.config.max_speed
        step = np.clip(target - self.setpoint, -speed, speed)
        self.setpoint = self.setpoint + step
        self.q_cmd = self.ik.solve(self.q_cmd, self.setpoint, self.target_rot)
        self.phase_steps += 1
        action = np.append(self.q_cmd, phase.gripper)
        return ActionChunk(action[None], subtask=phase.label)

    # -- phases --------------------------------------------------------------------------
    def _pick_phases(self, color: str) -> list[Phase]:
        cfg = self.config
        reach = f"reach the {color} cube"

        def hover() -> np.ndarray:
            self.grasp_point = None  # a new pick: the grasp phase takes the point where the fingers close
            return self._cube_pos(color, align=True) + [0, 0, cfg.hover_height]

        return [
            Phase(reach, hover, GRIPPER_OPEN, tolerance=2 * cfg.tolerance),
            Phase(reach, lambda: self._cube_pos(color, align=True) - [0, 0, cfg.grasp_depth], GRIPPER_OPEN,
                  tolerance=cfg.tolerance / 2, min_steps=3),
            Phase("grasp", self._hold_grasp_point, GRIPPER_CLOSED, min_steps=GRASP_STEPS),
            Phase("lift", lambda: self.grasp_point + [0, 0, cfg.lift_height], GRIPPER_CLOSED,
                  tolerance=cfg.tolerance, max_steps=60),
        ]

    def _place_phases(self, base: str, last: bool = True, offset: np.ndarray | None = None) -> list[Phase]:
        """Carry the held cube above `base` (plus a horizontal `offset`), lower it, let go and rise; the
        last place of a goal keeps rising until the episode ends."""
        cfg = self.config
        offset = np.zeros(3) if offset is None else offset
        carry_height = cfg.lift_height + CARRY_CLEARANCE

        def above_base() -> np.ndarray:
            return (self._cube_pos(base) + offset) * [1, 1, 0] + [0, 0, self.grasp_point[2] + carry_height]

        def on_base() -> np.ndarray:
            stack_height = 2 * self.scene.cube_half_height(base) + cfg.place_clearance
            return self._cube_pos(base) + offset + [0, 0, stack_height]

        return [
            Phase(f"move above {describe(base)}", above_base, GRIPPER_CLOSED, tolerance=cfg.tolerance),
            Phase("lower", on_base, GRIPPER_CLOSED, tolerance=cfg.tolerance / 2, min_steps=3),
            Phase("release", lambda: self.setpoint.copy(), GRIPPER_OPEN, min_steps=RELEASE_STEPS),
            Phase("release", lambda: on_base() + [0, 0, RETREAT_HEIGHT], GRIPPER_OPEN, max_steps=10**6 if last else 80,
                  tolerance=None if last else 2 * cfg.tolerance),
        ]

    def _push_phases(self, color: str, marker: str) -> list[Phase]:
        cfg = self.config

        def behind(distance: float, height: float) -> np.ndarray:
            cube = self._cube_pos(color)
            return cube - distance * self._push_direction(color, marker) + [0, 0, height]

        def pushing() -> np.ndarray:
            """Just ahead of touching the cube, on its line to the marker; back off and line up again when the
            fingers have slipped sideways off that line."""
            remaining = np.linalg.norm((self._cube_pos(marker) - self._cube_pos(color))[:2])
            lead = min(cfg.push_lead, remaining) if self._push_offline(color, marker) < cfg.push_lateral else -0.01
            return behind(cfg.push_contact - lead, cfg.push_height)

        approach = f"move behind {describe(color)}"  # not "reach": that phrase means going down onto it
        return [
            Phase(approach, lambda: behind(cfg.push_standoff, cfg.hover_height), GRIPPER_CLOSED,
                  tolerance=2 * cfg.tolerance),
            Phase(approach, lambda: behind(cfg.push_standoff, cfg.push_height), GRIPPER_CLOSED,
                  tolerance=cfg.tolerance / 2, min_steps=3),
            Phase(f"push it onto {describe(marker)}", pushing, GRIPPER_CLOSED, max_steps=10**6),
        ]

    def _push_offline(self, color: str, marker: str) -> float:
        """How far (m) the grip site is sideways of the line through the cube toward the marker."""
        offset = (self.scene.grip_site_pos() - self._cube_pos(color)) * [1, 1, 0]
        along = self._push_direction(color, marker)
        return float(np.linalg.norm(offset - (offset @ along) * along))

    def _push_direction(self, color: str, marker: str) -> np.ndarray:
        """Unit vector (3,), horizontal, from the cube to the marker."""
        delta = (self._cube_pos(marker) - self._cube_pos(color)) * [1, 1, 0]
        return delta / max(float(np.linalg.norm(delta)), 1e-6)

    def _current_phase(self) -> Phase:
        while self.phase_index < len(self.phases) - 1 and self._phase_done(self.phases[self.phase_index]):
            self.phase_index += 1
            self.phase_steps = 0
        return self.phases[self.phase_index]

    def _phase_done(self, phase: Phase) -> bool:
        if self.phase_steps < phase.min_steps:
            return False
        if self.phase_steps >= phase.max_steps or phase.tolerance is None:
            return True
        return settled_at(self.setpoint, self.scene.grip_site_pos(), phase.target(), phase.tolerance)

    # -- privileged state ----------------------------------------------------------------
    def _hold_grasp_point(self) -> np.ndarray:
        if self.grasp_point is None:
            self.grasp_point = self.setpoint.copy()
        return self.grasp_point

    def _cube_pos(self, color: str, align: bool = False) -> np.ndarray:
        if align and self.config.align_yaw:
            self.target_rot = yaw_rotation(grasp_yaw_offset(self.scene.cube_quat(color), self.down_rot)) @ self.down_rot
        return self.scene.cube_pos(color)


def settled_at(setpoint: np.ndarray, grip: np.ndarray, target: np.ndarray, tolerance: float) -> bool:
    """Where a phase ends: the set-point has arrived at the target and the grip site is within `tolerance` of it."""
    return np.linalg.norm(setpoint - target) < SETTLED_M and np.linalg.norm(grip - target) < tolerance


def drop_offset(step, steps: int) -> np.ndarray:
    """(3,) where, from a fixture's centre, a `step` of a goal of `steps` steps lets its cube go: each of several
    cubes dropped into one fixture on its colour's spot (whatever the order); one cube, and a cube base, the centre."""
    if steps == 1 or step.base not in FIXTURES:
        return np.zeros(3)
    return np.array([*FIXTURE_DROP_SPOTS[step.target], 0.0])


def grasp_yaw_offset(cube_quat: np.ndarray, gripper_rot: np.ndarray) -> float:
    """Yaw turn (rad, within +-45 deg) that lines the fingers up with the cube's faces."""
    cube_rot = np.zeros(9)
    mujoco.mju_quat2Mat(cube_rot, cube_quat)
    delta = yaw_of(cube_rot.reshape(3, 3)) - yaw_of(gripper_rot)
    return float((delta + np.pi / 4) % (np.pi / 2) - np.pi / 4)
