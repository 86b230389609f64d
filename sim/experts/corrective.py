"""A state-feedback expert: the scripted expert's phases, chosen from the scene at every step.

The scripted expert walks through its phases in order from the start of an episode. This one
decides the phase from where the gripper, the fingers and the cubes are now, so it can label
any state a learned policy drives into (DAgger, `vla collect --learner`): a missed grasp is
re-opened and approached again, the wrong cube is let go, a cube dropped on the way is picked
up again, a gripper that drifted off the base goes back above it. Its targets, speeds and
labels are the scripted expert's, so its labels continue the demonstrations: on the scripted
expert's own states it names the same subtask and commands the same joints and gripper at every
step. A long-horizon goal is worked on at its first step that does not hold yet (after a place,
the fingers first rise clear of it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.base import ActionChunk
from sim.experts.ik import yaw_rotation
from sim.experts.scene import Scene
from sim.experts.scripted import (CARRY_CLEARANCE, GRASP_STEPS, GRIPPER_CLOSED, GRIPPER_OPEN, RELEASE_STEPS,
                                  RETREAT_HEIGHT, SETTLED_M, ExpertConfig, drop_offset, grasp_yaw_offset, settled_at)
from sim.fixtures import FIXTURES
from sim.tasks import describe

MAX_LEAD_M = 0.10  # the scripted expert's set-point runs up to 9.1 cm ahead of the grip site (crate-three)
MAX_JOINT_LEAD_RAD = 0.30  # ... and its joint targets up to 0.25 rad ahead of the joints
LIFT_COLUMN_M = 0.03  # the lift goes straight up while the grip site is this near where the grasp began
FIXTURE_DROP_REACH_M = 0.035  # a cube let go this far from its spot of a crate still falls clear of the others
GRASP_GIVE_UP_STEPS = 30  # closing this long without holding the cube: open and approach again
CLOSING_RATE = 0.01  # m/s: fingers parting slower than -this are shutting ...
SHUTTING_MARGIN_M = 0.035  # ... once within this of the cube's width (fingers brushing a cube on the way down are not)


@dataclass(frozen=True)
class Decision:
    label: str  # the subtask phrase, as the scripted expert labels it
    target: np.ndarray  # where the grip site should go (3,)
    gripper: float


class CorrectiveExpert:
    """Policy-contract expert for one VlaEnv that acts from the current state; reset() after env.reset()."""

    def __init__(self, env, config: ExpertConfig = ExpertConfig()):
        self.env = env
        self.config = config
        self.scene = Scene(env)
        self.ik = self.scene.arm_ik()

    def reset(self, instruction: str = "") -> None:
        if self.env.goal.kind == "push":
            raise ValueError(f"the corrective expert labels pick and place goals; {self.env.task.name} is a push "
                             "(collect its demos with the scripted expert or `vla teleop`, without --learner)")
        self.q_cmd = self.scene.joint_positions()
        self.setpoint, self.down_rot = self.ik.forward(self.q_cmd)
        self.target_rot = self.down_rot
        self.steps = self.env.goal.steps
        self.step = self.steps[0]
        self.rest_z = {step.target: self.scene.cube_pos(step.target)[2] for step in self.steps}
        self.last: Decision | None = None
        self.grasp_steps = self.release_steps = 0
        self.grasp_point: np.ndarray | None = None  # the set-point where the fingers last began to close

    def act(self, observation=None) -> ActionChunk:
        decision = self.decide()
        self._follow_robot()
        step = np.clip(decision.target - self.setpoint, -self.config.max_speed, self.config.max_speed)
        self.setpoint = self.setpoint + step
        self.q_cmd = self.ik.solve(self.q_cmd, self.setpoint, self.target_rot)
        if decision.label == "grasp" and self.grasp_steps == 0:
            self.grasp_point = self.setpoint.copy()
        self.grasp_steps = self.grasp_steps + 1 if decision.label == "grasp" else 0
        self.release_steps = self.release_steps + 1 if decision.label == "release" else 0
        self.last = decision
        return ActionChunk(np.append(self.q_cmd, decision.gripper)[None], subtask=decision.label)

    # -- deciding the phase from the scene -------------------------------------------------
    def decide(self) -> Decision:
        number = next((i for i, step in enumerate(self.steps) if not self._step_done(step)), len(self.steps) - 1)
        goal_changed = self.steps[number] is not self.step
        goal = self.step = self.steps[number]
        if goal.base is not None and self._placed(goal.target, goal.base):
            return self._retreat(goal)
        if number > 0 and (goal_changed or self._releasing()) and self._rising_from(self.steps[number - 1]):
            return self._retreat(self.steps[number - 1])
        if self.scene.is_grasped(goal.target) and not self._settling():
            return self._carry(goal)
        return self._pick(goal.target)

    def _step_done(self, step) -> bool:
        return step.base is not None and self._placed(step.target, step.base)

    def _rising_from(self, placed) -> bool:
        """The fingers have not yet risen clear of where the `placed` step let its cube go (the scripted
        expert rises RETREAT_HEIGHT above it before the next reach)."""
        grip, clear = self.scene.grip_site_pos(), self._retreat_point(placed)
        below = np.linalg.norm(grip[:2] - clear[:2]) < 0.05 and grip[2] < clear[2] + 2 * self.config.tolerance
        return below and not self._settled_at(clear, 2 * self.config.tolerance)

    def _pick(self, color: str) -> Decision:
        cfg = self.config
        cube = self.scene.cube_pos(color)
        self._turn_to(color)
        grip = self.scene.grip_site_pos()
        grasp_point = cube - [0, 0, cfg.grasp_depth]
        if self._closing(grip, cube):
            return Decision("grasp", self.setpoint.copy(), GRIPPER_CLOSED)
        reach = f"reach {describe(color)}"
        if self._settled_at(grasp_point, cfg.tolerance / 2) and self._fingers_open(color):
            return Decision("grasp", self.setpoint.copy(), GRIPPER_CLOSED)
        hover = cube + [0, 0, cfg.hover_height]
        return Decision(reach, grasp_point if self._descending(reach, grip, hover) else hover, GRIPPER_OPEN)

    def _descending(self, reach: str, grip: np.ndarray, hover: np.ndarray) -> bool:
        """Going down onto the cube: from the hover point once there (as the scripted expert does), and on down
        once begun, or where a learner has already come down above the cube."""
        tolerance = 2 * self.config.tolerance
        column = np.linalg.norm(grip[:2] - hover[:2]) < tolerance and grip[2] < hover[2] + tolerance
        begun = self.last is not None and self.last.label == reach and self.last.target[2] < hover[2] - tolerance
        return self._settled_at(hover, tolerance) or column and (begun or grip[2] < hover[2] - tolerance)

    def _carry(self, step) -> Decision:
        cfg = self.config
        grip = self.scene.grip_site_pos()
        lift = self._lift_point(step)
        if step.base is None:
            return Decision("lift", lift, GRIPPER_CLOSED)
        on_base = self._on_base(step)
        near_base = np.linalg.norm(grip[:2] - on_base[:2]) < self._drop_reach(step, lift)
        if near_base and (self._releasing() or self._settled_at(on_base, cfg.tolerance / 2)):
            return Decision("release", self.setpoint.copy(), GRIPPER_OPEN)
        if near_base:
            return Decision("lower", on_base, GRIPPER_CLOSED)
        if self._lifting(lift):
            return Decision("lift", lift, GRIPPER_CLOSED)
        carry_z = lift[2] + CARRY_CLEARANCE
        return Decision(f"move above {describe(step.base)}", np.array([on_base[0], on_base[1], carry_z]),
                        GRIPPER_CLOSED)

    def _drop_reach(self, step, lift: np.ndarray) -> float:
        """How far (m, horizontally) from where its cube is let go the fingers may start lowering: the
        scripted expert's tolerance; twice that once lowering; over a fixture, wherever a learner has already
        come down below the lift height within FIXTURE_DROP_REACH_M of the cube's spot and inside the opening
        (the cube falls in from there)."""
        cfg = self.config
        if step.base in FIXTURES and self._low_over_opening(step, lift):
            return FIXTURE_DROP_REACH_M
        lowering = self.last is not None and self.last.label in ("lower", "release")
        return (2 if lowering else 1) * cfg.tolerance

    def _low_over_opening(self, step, lift: np.ndarray) -> bool:
        grip, centre = self.scene.grip_site_pos(), self.scene.cube_pos(step.base)
        half = self.scene.cube_half_height(step.target)
        inside = np.abs(grip[:2] - centre[:2]).max() + half < FIXTURES[step.base].opening
        return inside and grip[2] < lift[2] - 2 * self.config.tolerance

    def _lift_point(self, step) -> np.ndarray:
        """Straight up from where the fingers closed on the cube, as the scripted expert lifts (from above
        the grip site once it has left there; from the cube's resting height if no grasp was seen)."""
        grip, start = self.scene.grip_site_pos(), self.grasp_point
        if start is None:
            start = np.array([grip[0], grip[1], self.rest_z[step.target] - self.config.grasp_depth])
        x, y = start[:2] if self._over_grasp_point() else grip[:2]
        return np.array([x, y, start[2] + self.config.lift_height])

    def _over_grasp_point(self) -> bool:
        grip, start = self.scene.grip_site_pos(), self.grasp_point
        return start is None or np.linalg.norm(grip[:2] - start[:2]) <= LIFT_COLUMN_M

    def _lifting(self, lift: np.ndarray) -> bool:
        """Straight up above where the cube was picked: below the lift height, or the set-point still on the way
        there. Not once carrying it over, nor once the fingers have left that column (a learner carrying it low)."""
        last = self.last.label if self.last is not None else ""
        grip = self.scene.grip_site_pos()
        if last.startswith("move above") or not self._over_grasp_point():
            return False
        on_the_way = last == "lift" and np.linalg.norm(self.setpoint - lift) >= SETTLED_M
        return grip[2] < lift[2] - self.config.tolerance or on_the_way

    def _retreat(self, placed) -> Decision:
        """Let go where the fingers are for the scripted expert's release steps, then rise clear."""
        if self.release_steps < RELEASE_STEPS:
            return Decision("release", self.setpoint.copy(), GRIPPER_OPEN)
        return Decision("release", self._retreat_point(placed), GRIPPER_OPEN)

    # -- scene tests ------------------------------------------------------------------------
    def _closing(self, grip: np.ndarray, cube: np.ndarray) -> bool:
        """The fingers are shutting around the cube (the expert's grasp, or a learner's that would
        hold it): keep closing, unless they have shut on nothing or taken too long."""
        half = self.scene.cube_half_height(self.step.target)
        if self.scene.finger_gap() <= 1.5 * half or self.grasp_steps >= GRASP_GIVE_UP_STEPS:
            return False
        if self.last is not None and self.last.label == "grasp":
            return np.linalg.norm(grip - cube) < 2 * half
        around = np.linalg.norm(grip[:2] - cube[:2]) < 2 * self.config.tolerance and abs(grip[2] - cube[2]) < half
        gap = self.scene.finger_gap()
        shutting = self.scene.finger_gap_rate() < -CLOSING_RATE and gap < 2 * half + SHUTTING_MARGIN_M
        return around and shutting

    def _settling(self) -> bool:
        """Holding the cube, but the grasp has not had the scripted expert's time to tighten."""
        return self.last is not None and self.last.label == "grasp" and self.grasp_steps < GRASP_STEPS

    def _settled_at(self, target: np.ndarray, tolerance: float) -> bool:
        """The scripted expert's end of a phase, for this expert's set-point."""
        return settled_at(self.setpoint, self.scene.grip_site_pos(), target, tolerance)

    def _releasing(self) -> bool:
        return self.last is not None and self.last.label == "release"

    def _fingers_open(self, color: str) -> bool:
        return self.scene.finger_gap() > 2 * self.scene.cube_half_height(color) + 0.02

    def _placed(self, color: str, base: str) -> bool:
        """The cube rests on the base (lies in the bin) and the fingers have let go."""
        cube, below = self.scene.cube_pos(color), self.scene.cube_pos(base)
        if base in FIXTURES:  # in the bin, or let go above it and falling in
            released = self.last is not None and self.last.label == "release"
            over = np.abs(cube[:2] - below[:2]).max() < FIXTURES[base].opening
            return self.env.suite_env.step_holds(color, base) or (released and over)
        on_top = cube[2] > below[2] + self.scene.cube_half_height(base)
        return on_top and np.linalg.norm(cube[:2] - below[:2]) < 0.025 and not self.scene.is_grasped(color)

    def _on_base(self, step) -> np.ndarray:
        """Where the grip site lets `step`'s cube go: on its base, at its colour's spot of a fixture."""
        stack_height = 2 * self.scene.cube_half_height(step.base) + self.config.place_clearance
        return self.scene.cube_pos(step.base) + drop_offset(step, len(self.steps)) + [0, 0, stack_height]

    def _retreat_point(self, placed) -> np.ndarray:
        return self._on_base(placed) + [0, 0, RETREAT_HEIGHT]

    def _turn_to(self, color: str) -> None:
        if self.config.align_yaw:
            offset = grasp_yaw_offset(self.scene.cube_quat(color), self.down_rot)
            self.target_rot = yaw_rotation(offset) @ self.down_rot

    def _follow_robot(self) -> None:
        """Keep the set-point and joint targets as far ahead of the robot as the scripted expert's
        ever are: whatever moved the robot last (a learned policy), the labels start from where it is."""
        grip = self.scene.grip_site_pos()
        lead = self.setpoint - grip
        distance = np.linalg.norm(lead)
        if distance > MAX_LEAD_M:
            self.setpoint = grip + lead * (MAX_LEAD_M / distance)
        joints = self.scene.joint_positions()
        if np.abs(self.q_cmd - joints).max() > MAX_JOINT_LEAD_RAD:
            self.q_cmd = joints
