"""`vla generate`: many demonstrations of a task from a few recorded ones, by moving each demo's
object-centric segments into new scenes (the MimicGen recipe: Mandlekar et al., CoRL 2023).

A source demo is cut where the object its motion is about changes:
- a pick or a place: the approach, grasp and lift are about the target cube; the carry, lowering and
  release about where it goes (a cube or a fixture such as the bin);
- a push (move behind, push it onto the marker): one segment about the cube and the line from the cube
  to the marker.
Each segment keeps, from the first step the gripper is within NEAR_M (sideways) of its object:
- the path the gripper took: each step's target is where the gripper was after it, plus the lead of the
  operator's command over it up to MAX_LEAD_M (what presses on a cube; a command can run far ahead of
  the arm when the table or a cube stops it);
- the gripper's commanded orientation (forward kinematics of the recorded joint targets) and the
  open/close command;
expressed relative to its object where the segment starts (read from the demo's MuJoCo states).

In a new scene (a new seed: new cube positions, a new goal) a source demo of the same kind of goal is
chosen (at random; for a push the one most like the scene: PushGeometry.mismatch), each segment is put on
the same object of the new scene (translated; a push also turned about the vertical to the new
cube-to-marker line and stretched along it to the new distance), and the gripper moves between segments
along a path clear of the table (up, across, down) at TRANSIT_STEP_M a step, keeping its last command.
Inverse kinematics turns the positions into the project's actions (absolute joint targets + gripper), the
simulator runs them, and only episodes that succeed are kept. The generated demos carry the operator's
tremor, pauses and corrections into scenes the operator never saw; the cameras see the new scene.

It needs the demos' MuJoCo states: simulated recordings (`vla teleop`, `vla collect`), not a robot's or
an import's. One-step goals (pick, place, push); long-horizon goals are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from policies.base import ActionChunk
from sim.experts.scene import Scene
from sim.segmentation import segment_subtasks
from sim.tasks import Goal

Pose = tuple[np.ndarray, np.ndarray]  # world position (3,), quaternion (w, x, y, z)

NEAR_M = 0.10  # a segment starts where the gripper first comes within this of its object (sideways)
TRANSIT_STEP_M = 0.015  # the move between segments, per control step
TRANSIT_MIN_STEPS = 3
TARGET_PHASES = ("reach", "grasp", "lift", "move behind", "push it")  # about the cube that is picked or pushed
PUSH_METRE_WEIGHT = 10.0  # choosing a push's source: 10 cm of distance count as much as a turn of 1 rad
MAX_LEAD_M = 0.03  # how far a replayed target may lead the recorded path (the operator's push into a cube)


@dataclass(frozen=True)
class Segment:
    """Gripper positions relative to the segment's object (in its push frame for a push), with the
    source's rotations and gripper commands, one row per control step."""

    about: str  # "target" or "base": which object of the goal
    offsets: np.ndarray  # (n, 3) metres
    rotations: np.ndarray  # (n, 3, 3)
    gripper: np.ndarray  # (n,) in [0, 1]


@dataclass(frozen=True)
class SourceDemo:
    name: str
    kind: str  # the goal's kind: pick, place, push
    segments: tuple[Segment, ...]
    push: PushGeometry | None = None  # a push: where it went


def _wrap(angle: float, period: float = 2 * np.pi) -> float:
    """angle folded into [-period / 2, period / 2)."""
    return float((angle + period / 2) % period - period / 2)


@dataclass(frozen=True)
class PushGeometry:
    """Where a push goes: the cube-to-marker distance (m, sideways), its direction (rad), and the cube's yaw
    against that direction, folded to a quarter turn (a cube looks the same every quarter turn)."""

    distance: float
    direction: float
    face: float

    @staticmethod
    def of(cube: Pose, marker: Pose) -> "PushGeometry":
        (x, y), (w, qx, qy, qz) = np.asarray(marker[0][:2]) - np.asarray(cube[0][:2]), cube[1]
        direction = float(np.arctan2(y, x))
        yaw = float(np.arctan2(2 * (w * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz)))
        return PushGeometry(float(np.hypot(x, y)), direction, _wrap(yaw - direction, np.pi / 2))

    def mismatch(self, other: "PushGeometry") -> float:
        """How unlike two pushes are: PUSH_METRE_WEIGHT per metre of distance plus the turns between their
        directions and between the cube's faces, in radians."""
        return (PUSH_METRE_WEIGHT * abs(self.distance - other.distance) + abs(_wrap(self.direction - other.direction))
                + abs(_wrap(self.face - other.face, np.pi / 2)))


def push_frame(cube: np.ndarray, marker: np.ndarray) -> tuple[np.ndarray, float]:
    """(2, 2) rotation from world xy to a frame whose x axis points from the cube to the marker, and the
    sideways distance between them."""
    direction = np.asarray(marker[:2], dtype=np.float64) - np.asarray(cube[:2], dtype=np.float64)
    distance = float(np.linalg.norm(direction))
    c, s = (direction / distance) if distance > 1e-9 else (1.0, 0.0)
    return np.array([[c, s], [-s, c]]), distance


def source_demo(name: str, episode, object_pose: Callable[[str, int], Pose],
                forward: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> SourceDemo:
    """The segments of one recorded episode: object_pose(name, t) is the pose of the goal's object `name`
    (a colour or a fixture) before step t, forward(q) the gripper's pose at arm joint targets q."""
    goal = Goal.from_dict(episode.goal)
    if goal.then:
        raise ValueError(f"{name}: a long-horizon goal ({len(goal.steps)} steps); generation takes one-step "
                         "goals (pick, place, push)")
    poses = [forward(action[:-1]) for action in episode.actions]
    rotations = np.array([rot for _, rot in poses])
    path = gripper_path(np.array([pos for pos, _ in poses]), episode.observations["robot0_eef_pos"])
    gripper = np.asarray(episode.actions[:, -1], dtype=np.float64)
    if goal.kind == "push":
        cube, marker = object_pose(goal.target, 0), object_pose(goal.base, 0)
        frame, _ = push_frame(cube[0], marker[0])
        rows = _from_near(path, cube[0], 0, len(path))
        offsets = path[rows] - cube[0]
        offsets[:, :2] = offsets[:, :2] @ frame.T
        segment = Segment("target", offsets, rotations[rows], gripper[rows])
        return SourceDemo(name, "push", (segment,), PushGeometry.of(cube, marker))
    labels = episode.subtasks if all(episode.subtasks) else segment_subtasks(gripper, episode.observations[
        "robot0_eef_pos"], goal)  # a demo recorded without subtask phrases is segmented first
    about = ["target" if subtask.startswith(TARGET_PHASES) else "base" for subtask in labels]
    segments = []
    for which, start, stop in _runs(about):
        anchor = object_pose(goal.target if which == "target" else goal.base, start)[0]
        rows = _from_near(path, anchor, start, stop)
        segments.append(Segment(which, path[rows] - anchor, rotations[rows], gripper[rows]))
    return SourceDemo(name, goal.kind, tuple(segments))


def gripper_path(commanded: np.ndarray, reached: np.ndarray) -> np.ndarray:
    """(T, 3) targets to replay: where the gripper was after each step, plus how far the command led it there
    (what pushes a cube), at most MAX_LEAD_M."""
    reached = np.asarray(reached, dtype=np.float64)
    after = np.concatenate([reached[1:], reached[-1:]])
    lead = commanded - after
    norm = np.linalg.norm(lead, axis=1, keepdims=True)
    return after + lead * np.minimum(1.0, MAX_LEAD_M / np.maximum(norm, 1e-12))


def _runs(labels: list[str]) -> list[tuple[str, int, int]]:
    """(label, start, stop) of each run of equal labels."""
    runs, start = [], 0
    for t in range(1, len(labels) + 1):
        if t == len(labels) or labels[t] != labels[start]:
            runs.append((labels[start], start, t))
            start = t
    return runs


def _from_near(path: np.ndarray, anchor: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Row indices [first step within NEAR_M of anchor sideways, stop) (all of [start, stop) if none is)."""
    sideways = np.linalg.norm(path[start:stop, :2] - anchor[:2], axis=1)
    near = np.flatnonzero(sideways < NEAR_M)
    return np.arange(start + (int(near[0]) if near.size else 0), stop)


@dataclass(frozen=True)
class Waypoint:
    position: np.ndarray
    rotation: np.ndarray
    gripper: float


def place_segments(source: SourceDemo, goal: Goal, object_pose: Callable[[str], Pose]) -> list[list[Waypoint]]:
    """The source's segments put on the new scene's objects (object_pose(name): where the goal's cubes and
    fixture are now)."""
    placed = []
    for segment in source.segments:
        anchor = object_pose(goal.target if segment.about == "target" else goal.base)[0]
        offsets = segment.offsets.copy()
        if source.push is not None:
            frame, distance = push_frame(anchor, object_pose(goal.base)[0])
            along = offsets[:, 0]
            stretch = distance / source.push.distance if source.push.distance > 1e-6 else 1.0
            offsets[:, 0] = np.where(along > 0, along * stretch, along)
            offsets[:, :2] = offsets[:, :2] @ frame  # back to world xy
        placed.append([Waypoint(p, r, float(g))
                       for p, r, g in zip(anchor + offsets, segment.rotations, segment.gripper)])
    return placed


def with_transits(start: np.ndarray, start_rotation: np.ndarray, segments: list[list[Waypoint]]) -> list[Waypoint]:
    """One plan: the segments joined by transits (from `start` to the first segment, from each segment's end to
    the next one's start) that keep the last command."""
    plan, here = [], Waypoint(np.asarray(start, dtype=np.float64), start_rotation, 0.0)
    for segment in segments:
        if segment:
            plan += transit(here, segment[0].position) + segment
            here = segment[-1]
    return plan


def transit(here: Waypoint, to: np.ndarray) -> list[Waypoint]:
    """From `here` (excluded) to `to` (excluded) clear of what is on the table: up (if `to` is higher),
    across at the higher of the two heights, then down, at TRANSIT_STEP_M a step."""
    top = max(here.position[2], to[2])
    corners = [here.position, np.append(here.position[:2], top), np.append(to[:2], top), np.asarray(to, dtype=float)]
    points = []
    for a, b in zip(corners[:-1], corners[1:]):
        steps = int(np.ceil(np.linalg.norm(b - a) / TRANSIT_STEP_M))
        points += [a + (b - a) * (i / steps) for i in range(1, steps + 1)]
    points = points[:-1]  # `to` itself is the segment's first waypoint
    while len(points) < TRANSIT_MIN_STEPS - 1:  # a short hop still takes a few steps to settle
        points.insert(0, here.position)
    return [Waypoint(p, here.rotation, here.gripper) for p in points]


class SegmentPlayer:
    """The Policy that drives a generated episode: at reset, chooses a source demo for the scene's goal and
    plans its segments there; every act() is the next waypoint through inverse kinematics (the last one is
    held once the plan is done)."""

    def __init__(self, env, sources: list[SourceDemo], rng: np.random.Generator):
        self.env, self.sources, self.rng = env, sources, rng
        self.source: SourceDemo | None = None

    def reset(self, instruction: str) -> None:
        scene = Scene(self.env)
        self.ik = scene.arm_ik()
        self.q = scene.joint_positions()
        goal = self.env.goal
        self.source = choose_source(self.sources, goal, self.env.cube_pose, self.rng)
        start, rotation = self.ik.forward(self.q)
        placed = place_segments(self.source, goal, self.env.cube_pose)
        self.plan = with_transits(start, rotation, placed)
        self.t = 0

    def act(self, observation) -> ActionChunk:
        point = self.plan[min(self.t, len(self.plan) - 1)]
        self.t += 1
        self.q = self.ik.solve(self.q, point.position, point.rotation)
        return ActionChunk(np.append(self.q, point.gripper)[None].astype(np.float32))


def choose_source(sources: list[SourceDemo], goal: Goal, object_pose: Callable[[str], Pose],
                  rng: np.random.Generator) -> SourceDemo:
    """A source demo of the goal's kind: for a push the one most like the scene's (PushGeometry.mismatch),
    otherwise one at random."""
    same_kind = [source for source in sources if source.kind == goal.kind]
    if not same_kind:
        kinds = sorted({source.kind for source in sources})
        raise ValueError(f"no source demo of a {goal.kind} goal (the sources have {', '.join(kinds)} goals)")
    if goal.kind == "push":
        push = PushGeometry.of(object_pose(goal.target), object_pose(goal.base))
        return min(same_kind, key=lambda source: push.mismatch(source.push))
    return same_kind[int(rng.integers(len(same_kind)))]
