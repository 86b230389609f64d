"""A state-feedback expert: the scripted expert's phases, chosen from the scene at every step.

The scripted expert walks through its phases in order from the start of an episode. This one
decides the phase from where the gripper, the fingers and the cubes are now, so it can label
any state a learned policy drives into (DAgger, `vla collect --learner`): a missed grasp is
re-opened and approached again, the wrong cube is let go, a cube dropped on the way is picked
up again, a gripper that drifted off the base goes back above it. Its targets, speeds and
labels are the scripted expert's, so its labels continue the demonstrations. A long-horizon goal is
worked on at its first step that does not hold yet (after a place, the fingers first rise clear of it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.base import ActionChunk
from sim.experts.ik import yaw_rotation
from sim.experts.scene import Scene
from sim.experts.scripted import GRIPPER_CLOSED, GRIPPER_OPEN, ExpertConfig, drop_offset, grasp_yaw_offset
from sim.fixtures import FIXTURES
from sim.tasks import describe

MAX_LEAD_M = 0.06  # the scripted expert's set-point runs at most 5.6 cm ahead of the grip site
MAX_JOINT_LEAD_RAD = 0.25  # ... and its joint targets at most 0.17 rad ahead of the joints
GRASP_SETTLE_STEPS = 12  # the scripted expert's grasp phase: fingers shut before lifting
GRASP_GIVE_UP_STEPS = 30  # closing this long without holding the cube: open and approach again
CLOSING_RATE = 0.01  # m/s: fingers parting slower than -this are shutting


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
        self.drop = np.zeros(3)
        self.rest_z = {step.target: self.scene.cube_pos(step.target)[2] for step in self.steps}
        self.last: Decision | None = None
        self.grasp_steps = 0

    def act(self, observation=None) -> ActionChunk:
        decision = self.decide()
        self._follow_robot()
        step = np.clip(decision.target - self.setpoint, -self.config.max_speed, self.config.max_speed)
        self.setpoint = self.setpoint + step
        self.q_cmd = self.ik.solve(self.q_cmd, self.setpoint, self.target_rot)
        self.grasp_steps = self.grasp_steps + 1 if decision.label == "grasp" else 0
        self.last = decision
        return ActionChunk(np.append(self.q_cmd, decision.gripper)[None], subtask=decision.label)

    # -- deciding the phase from the scene -------------------------------------------------
    def decide(self) -> Decision:
        number = next((i for i, step in enumerate(self.steps) if not self._step_done(step)), len(self.steps) - 1)
        goal = self.step = self.steps[number]
        self.drop = drop_offset(goal, len(self.steps))
        if goal.base is not None and self._placed(goal.target, goal.base):
            return self._retreat(goal.base)
        if number > 0 and self._still_at(self.steps[number - 1]):  # rise above where that cube went
            self.drop = drop_offset(self.steps[number - 1], len(self.steps))
            return self._retreat(self.steps[number - 1].base)
        if self.scene.is_grasped(goal.target) and not self._settling():
            return self._carry(goal.base)
        return self._pick(goal.target)

    def _step_done(self, step) -> bool:
        return step.base is not None and self._placed(step.target, step.base)

    def _still_at(self, placed) -> bool:
        """The fingers are still down by a cube just placed (they rise clear before the next step)."""
        grip, cube = self.scene.grip_site_pos(), self.scene.cube_pos(placed.target)
        return np.linalg.norm(grip[:2] - cube[:2]) < 0.05 and grip[2] < cube[2] + 0.06

    def _pick(self, color: str) -> Decision:
        cfg = self.config
        cube = self.scene.cube_pos(color)
        self._turn_to(color)
        grip = self.scene.grip_site_pos()
        grasp_point = cube - [0, 0, cfg.grasp_depth]
        if self._closing(grip, cube):
            return Decision("grasp", self.setpoint.copy(), GRIPPER_CLOSED)
        reach = f"reach {describe(color)}"
        if np.linalg.norm(grip - grasp_point) < cfg.tolerance / 2 and self._fingers_open(color):
            return Decision("grasp", self.setpoint.copy(), GRIPPER_CLOSED)
        hover = cube + [0, 0, cfg.hover_height]
        above = np.linalg.norm(grip[:2] - cube[:2]) < 2 * cfg.tolerance and grip[2] < hover[2] + 2 * cfg.tolerance
        return Decision(reach, grasp_point if above else hover, GRIPPER_OPEN)

    def _carry(self, base: str | None) -> Decision:
        cfg = self.config
        grip = self.scene.grip_site_pos()
        lift_z = self.rest_z[self.step.target] - cfg.grasp_depth + cfg.lift_height
        if base is None:
            return Decision("lift", np.array([grip[0], grip[1], lift_z]), GRIPPER_CLOSED)
        on_base = self._on_base(base)
        lowering = self.last is not None and self.last.label in ("lower", "release")
        near_base = np.linalg.norm(grip[:2] - on_base[:2]) < (2 if lowering else 1) * cfg.tolerance
        if near_base and (self._releasing() or np.linalg.norm(grip - on_base) < cfg.tolerance / 2):
            return Decision("release", self.setpoint.copy(), GRIPPER_OPEN)
        if near_base:
            return Decision("lower", on_base, GRIPPER_CLOSED)
        if grip[2] < lift_z - cfg.tolerance:
            return Decision("lift", np.array([grip[0], grip[1], lift_z]), GRIPPER_CLOSED)
        carry_z = lift_z + 0.02
        return Decision(f"move above {describe(base)}", np.array([on_base[0], on_base[1], carry_z]), GRIPPER_CLOSED)

    def _retreat(self, base: str) -> Decision:
        return Decision("release", self._on_base(base) + [0, 0, 0.08], GRIPPER_OPEN)

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
        return around and self.scene.finger_gap_rate() < -CLOSING_RATE

    def _settling(self) -> bool:
        """Holding the cube, but the grasp has not had the scripted expert's time to tighten."""
        return self.last is not None and self.last.label == "grasp" and self.grasp_steps < GRASP_SETTLE_STEPS

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

    def _on_base(self, base: str) -> np.ndarray:
        stack_height = 2 * self.scene.cube_half_height(base) + self.config.place_clearance
        return self.scene.cube_pos(base) + self.drop + [0, 0, stack_height]

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
