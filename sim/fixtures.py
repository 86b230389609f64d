"""Fixtures of the ColorCubes scene that new tasks are about: a marker to push a cube onto, a bin to drop it in.

A fixture is one more free body of the scene, so the recorded MuJoCo states keep where it is (replays and
the object head's labels read it like a cube's). It is placed at reset from the scene's seeded generator,
clear of every cube, and it decides its task's success: `holds(scene, colour)`.

- marker: a flat yellow square drawn on the table (visual only: nothing collides with it, gravity
  compensated so it stays put). Success: the cube rests on the table with its centre over the square,
  not held.
- bin: an open box with low walls (heavy, so a nudge barely moves it). Success: the cube lies inside
  below the rim, not held.
- crate: a wider bin, room for the three cubes side by side (bin-three).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

MAX_PLACEMENT_TRIES = 500
FIXTURE_X_RANGE = (-0.15, 0.15)
FIXTURE_Y_RANGE = (-0.2, 0.2)

MARKER_HALF_SIZE = 0.045
MARKER_TOLERANCE = 0.03  # cube centre within this of the marker's centre, along x and y
BIN_SIZE = (0.13, 0.13, 0.045)
CRATE_SIZE = (0.19, 0.19, 0.045)
BIN_WALL = 0.008
CUBE_RESTING_HEIGHT = 0.03  # a 4 cm cube resting on the table has its centre 2 cm up; 1 cm of slack


@dataclass(frozen=True)
class Fixture:
    name: str  # the goal's base names it ("marker", "bin")
    phrase: str  # how instructions and subtasks name it
    kind: str  # "push": a cube is slid onto it; "place": a cube is carried into it
    clearance: float  # centre to centre distance from every cube at reset
    rest_height: float  # its body's centre above the table
    build: Callable[[], object]  # -> the robosuite object
    holds: Callable[[object, str], bool]  # (ColorCubes, cube colour) -> success
    opening: float = 0.0  # half the inside width of a bin-like fixture (m): a cube let go over it falls in


def _build_marker():
    import xml.etree.ElementTree as ET

    from robosuite.models.objects import BoxObject

    marker = BoxObject(name="marker", size=[MARKER_HALF_SIZE, MARKER_HALF_SIZE, 0.0005],
                       rgba=(0.95, 0.8, 0.1, 1), obj_type="visual")
    body = marker.get_obj()
    body.set("gravcomp", "1")  # no contacts hold it up: it floats exactly where it is placed
    ET.SubElement(body, "inertial", pos="0 0 0", mass="0.01", diaginertia="1e-6 1e-6 1e-6")
    return marker


def _bin_builder(name: str, size: tuple[float, float, float]) -> Callable[[], object]:
    def build():
        from robosuite.models.objects.composite import Bin

        return Bin(name=name, bin_size=size, wall_thickness=BIN_WALL, transparent_walls=False,
                   use_texture=False, rgba=(0.55, 0.4, 0.25, 1), density=3000)
    return build


def _cube_over_marker(scene, color: str) -> bool:
    cube = scene.sim.data.body_xpos[scene.cube_body_id(color)]
    marker = scene.sim.data.body_xpos[scene.sim.model.body_name2id(scene.fixture.root_body)]
    centred = np.all(np.abs(cube[:2] - marker[:2]) < MARKER_TOLERANCE)
    resting = cube[2] < scene.table_offset[2] + CUBE_RESTING_HEIGHT
    return bool(centred and resting and not scene.is_grasped(color))


def _in_bin_check(size: tuple[float, float, float]) -> Callable[[object, str], bool]:
    def holds(scene, color: str) -> bool:
        cube = scene.sim.data.body_xpos[scene.cube_body_id(color)]
        box = scene.sim.data.body_xpos[scene.sim.model.body_name2id(scene.fixture.root_body)]
        inside = np.all(np.abs(cube[:2] - box[:2]) < size[0] / 2 - BIN_WALL)  # the fixture's opening
        below_rim = cube[2] < box[2] + size[2] / 2
        return bool(inside and below_rim and not scene.is_grasped(color))
    return holds


FIXTURES: dict[str, Fixture] = {
    "marker": Fixture("marker", "yellow marker", "push", clearance=0.11, rest_height=0.0005,
                      build=_build_marker, holds=_cube_over_marker),
    "bin": Fixture("bin", "bin", "place", clearance=0.125, rest_height=BIN_SIZE[2] / 2,
                   build=_bin_builder("bin", BIN_SIZE), holds=_in_bin_check(BIN_SIZE),
                   opening=BIN_SIZE[0] / 2 - BIN_WALL),
    "crate": Fixture("crate", "crate", "place", clearance=0.16, rest_height=CRATE_SIZE[2] / 2,
                     build=_bin_builder("crate", CRATE_SIZE), holds=_in_bin_check(CRATE_SIZE),
                     opening=CRATE_SIZE[0] / 2 - BIN_WALL),
}


def place_fixture(scene, fixture: Fixture, cubes_xy: np.ndarray) -> None:
    """Put the scene's fixture at a random spot (scene.rng) at least fixture.clearance from every cube."""
    for _ in range(MAX_PLACEMENT_TRIES):
        xy = np.array([scene.rng.uniform(*FIXTURE_X_RANGE), scene.rng.uniform(*FIXTURE_Y_RANGE)])
        if np.linalg.norm(cubes_xy - xy, axis=1).min() >= fixture.clearance:
            position = np.append(xy + scene.table_offset[:2], scene.table_offset[2] + fixture.rest_height)
            scene.sim.data.set_joint_qpos(scene.fixture.joints[0], np.concatenate([position, [1, 0, 0, 0]]))
            return
    raise RuntimeError(f"could not place the {fixture.name} clear of the cubes; widen FIXTURE_X_RANGE/Y_RANGE")
