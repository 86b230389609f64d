"""A robosuite table-top scene with a red, a green and a blue cube at random places, and optionally a fixture.

The goal (which cube to pick, and onto which cube or fixture to move it) is set by the task layer
through `set_goal`; the success check follows robosuite's Lift (picked: lifted 4 cm above
the table) and Stack (placed: resting on the base cube, touching it, not grasped). Fixtures (sim.fixtures):
a yellow marker on the table to push a cube onto, or a bin to drop it into; the base of such a goal is the
fixture's name, and the fixture's own check decides. A long-horizon goal is several (target, base) steps:
it succeeds when every step holds at once and, for a fixture, the cubes went into it in the steps' order.
"""

from __future__ import annotations

import numpy as np
from robosuite.environments.manipulation.manipulation_env import ManipulationEnv
from robosuite.models.arenas import TableArena
from robosuite.models.objects import BoxObject
from robosuite.models.tasks import ManipulationTask
from robosuite.utils.placement_samplers import UniformRandomSampler

from sim.fixtures import FIXTURES, place_fixture

CUBE_COLORS = {"red": (0.85, 0.1, 0.1, 1), "green": (0.1, 0.7, 0.15, 1), "blue": (0.1, 0.25, 0.9, 1)}
CUBE_HALF_SIZE = 0.02
LIFT_MARGIN = 0.04
MIN_CUBE_SPACING = 0.09  # centre to centre, so open fingers clear the neighbours
MAX_PLACEMENT_TRIES = 200


class ColorCubes(ManipulationEnv):
    """Three coloured cubes; `goal = (target, base)` where base is None for picking."""

    def __init__(self, robots, table_full_size=(0.8, 0.8, 0.05), table_friction=(1.0, 5e-3, 1e-4),
                 fixture: str | None = None, **kwargs):
        if fixture is not None and fixture not in FIXTURES:
            raise ValueError(f"unknown fixture {fixture!r}; choose from {sorted(FIXTURES)}")
        self.fixture_name = fixture
        self.table_full_size = table_full_size
        self.table_friction = table_friction
        self.table_offset = np.array((0, 0, 0.8))
        self.steps: list[tuple[str, str | None]] = [("red", None)]
        self.fixture_order: list[str] = []  # the cubes' order into the fixture, when the goal has several
        self.fixture_entries: list[str] = []  # colours in the order they first lay in the fixture
        self.placement_initializer = None
        super().__init__(robots=robots, **kwargs)

    def set_goal(self, steps: list[tuple[str, str | None]]) -> None:
        """The goal as (target, base) steps in order: one for a pick or a place, more for a long-horizon task."""
        for color in (c for step in steps for c in step):
            if color is not None and color not in CUBE_COLORS and color != self.fixture_name:
                raise ValueError(f"unknown cube colour {color!r}; choose from {sorted(CUBE_COLORS)}"
                                 + (f" or the {self.fixture_name}" if self.fixture_name else ""))
        self.steps = list(steps)
        into_fixture = [target for target, base in self.steps if base is not None and base == self.fixture_name]
        self.fixture_order = into_fixture if len(into_fixture) > 1 else []  # an order to check (several cubes)

    def cube_body_id(self, color: str) -> int:
        return self.sim.model.body_name2id(self.cubes[color].root_body)

    def is_grasped(self, color: str) -> bool:
        return bool(self._check_grasp(gripper=self.robots[0].gripper, object_geoms=self.cubes[color]))

    def reward(self, action=None):
        return 1.0 if self._check_success() else 0.0

    def _check_success(self) -> bool:
        if not all(self.step_holds(target, base) for target, base in self.steps):
            return False
        return self.fixture_entries[:len(self.fixture_order)] == self.fixture_order

    def _post_action(self, action):
        reward, done, info = super()._post_action(action)
        if self.fixture_order:  # only an ordered goal needs the entries (contact checks every step)
            self.fixture_entries += [color for color in CUBE_COLORS if color not in self.fixture_entries
                                     and FIXTURES[self.fixture_name].holds(self, color)]
        return reward, done, info

    def step_holds(self, target: str, base: str | None) -> bool:
        """One step's goal holds now: picked (lifted), on its base cube, or in / on its fixture."""
        if base is not None and base == self.fixture_name:
            return FIXTURES[base].holds(self, target)
        target_z = self.sim.data.body_xpos[self.cube_body_id(target)][2]
        lifted = target_z > self.table_offset[2] + LIFT_MARGIN
        if base is None:
            return bool(lifted)
        grasped = self.is_grasped(target)
        touching = self.check_contact(self.cubes[target], self.cubes[base])
        return bool(lifted and touching and not grasped)

    def _load_model(self):
        super()._load_model()
        robot_model = self.robots[0].robot_model
        robot_model.set_base_xpos(robot_model.base_xpos_offset["table"](self.table_full_size[0]))
        arena = TableArena(
            table_full_size=self.table_full_size, table_friction=self.table_friction, table_offset=self.table_offset
        )
        arena.set_origin([0, 0, 0])
        half = [CUBE_HALF_SIZE] * 3
        self.cubes = {
            color: BoxObject(name=f"{color}_cube", size_min=half, size_max=half, rgba=rgba)
            for color, rgba in CUBE_COLORS.items()
        }
        self.placement_initializer = UniformRandomSampler(
            name="CubeSampler",
            mujoco_objects=list(self.cubes.values()),
            x_range=[-0.12, 0.12],
            y_range=[-0.15, 0.15],
            rotation=None,
            ensure_object_boundary_in_range=False,
            ensure_valid_placement=True,
            reference_pos=self.table_offset,
            z_offset=0.01,
            rng=self.rng,
        )
        self.fixture = FIXTURES[self.fixture_name].build() if self.fixture_name else None
        self.model = ManipulationTask(
            mujoco_arena=arena,
            mujoco_robots=[robot.robot_model for robot in self.robots],
            mujoco_objects=list(self.cubes.values()) + ([self.fixture] if self.fixture else []),
        )

    def _reset_internal(self):
        super()._reset_internal()
        self.fixture_entries = []
        if self.deterministic_reset:
            return
        placement = self._sample_spaced_placement()
        for pos, quat, obj in placement.values():
            self.sim.data.set_joint_qpos(obj.joints[0], np.concatenate([np.array(pos), np.array(quat)]))
        if self.fixture is not None:
            cubes_xy = np.array([pos[:2] for pos, _, _ in placement.values()])
            place_fixture(self, FIXTURES[self.fixture_name], cubes_xy)

    def _sample_spaced_placement(self) -> dict:
        """Resample (from the seeded rng) until every pair of cubes is MIN_CUBE_SPACING apart."""
        for _ in range(MAX_PLACEMENT_TRIES):
            placement = self.placement_initializer.sample()
            xy = np.array([pos[:2] for pos, _, _ in placement.values()])
            gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(xy))
            if gaps.min() >= MIN_CUBE_SPACING:
                return placement
        raise RuntimeError("could not place the cubes apart; widen the sampler ranges")
