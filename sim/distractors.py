"""A simulated dataset re-rendered with a fixture standing in its scenes as a distractor (`vla augment`).

A policy trained on scenes of cubes alone may lose its skills when a new object stands beside the cubes: the
shipped default, told to pick up the named cube, lifts it in 7 of 20 bin-color scenes and in 16 of the same 20
with the bin made invisible (docs/results.md, Teaching new tasks). Fine-tuning replays what the checkpoint
learned from, and that replay never shows the new object. This module re-renders a recorded demo's frames with
the fixture (sim.fixtures: a bin, a marker, a crate) standing still where no cube comes near it during the
demo. Actions, states, subtasks and the model XML stay the source's, so the scene labels still read them; only
the camera images change, and each demo says where the fixture stood (attribute `distractor`).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from sim.dataset import open_dataset, read_episode
from sim.env import VlaEnv
from sim.fixtures import FIXTURE_X_RANGE, FIXTURE_Y_RANGE, FIXTURES, MAX_PLACEMENT_TRIES
from sim.generate import source_env_config
from sim.tasks import TASKS

FREE_JOINT_QPOS = 7
POSITIONS_CHECKED = 20  # frames per demo whose cube positions the fixture keeps clear of


@dataclass(frozen=True)
class AugmentReport:
    out: str
    written: int
    skipped: int  # demos with no room for the fixture


def fixture_task(fixture: str) -> str:
    """The first task whose scene has `fixture` (its scene renders the fixture)."""
    if fixture not in FIXTURES:
        raise ValueError(f"--distractor {fixture}: no such fixture; there are {', '.join(FIXTURES)}")
    return next(spec.name for spec in TASKS.values() if spec.fixture == fixture)


def check_source_task(task: str, fixture: str) -> None:
    """ValueError unless `task` is a task of the fixture's scene without a fixture of its own."""
    spec, host = TASKS.get(task), TASKS[fixture_task(fixture)]
    if spec is None or spec.robosuite_env != host.robosuite_env or spec.fixture is not None:
        fitting = [s.name for s in TASKS.values() if s.robosuite_env == host.robosuite_env and s.fixture is None]
        raise ValueError(f"a {fixture} can stand in the scenes of {', '.join(fitting)}; this dataset is of "
                         f"{task!r}")


def add_distractor(source: str, out: str, fixture: str, *, seed: int = 0, append: bool = False,
                   on_demo=None) -> AugmentReport:
    """Write every demo of `source` to `out` with `fixture` rendered standing in its scene."""
    from sim.collect import env_args
    from sim.dataset_output import dataset_output

    info = open_dataset(source)
    task = info.env_args.get("task", info.env_name)
    check_source_task(task, fixture)
    config = source_env_config(info.env_args)
    attrs = {**info.env_args, **env_args(task, config), "distractor": fixture}
    rng = np.random.default_rng(seed)
    written = skipped = 0
    with VlaEnv(task, config) as plain, VlaEnv(fixture_task(fixture), config) as host, \
            dataset_output(out, task, attrs, append=append) as writer:
        for name in info.demo_names:
            episode = read_episode(source, name)
            _check_states(source, name, episode)
            placed = _render_with_fixture(plain, host, episode, fixture, rng)
            if placed:
                writer.write(episode)
            written, skipped = written + placed, skipped + (not placed)
            if on_demo:
                on_demo(name, episode.extra_attrs.get("distractor") if placed else None)
    return AugmentReport(str(out), written, skipped)


def _check_states(source: str, name: str, episode) -> None:
    if np.shape(episode.states)[-1] == 0:
        raise ValueError(f"{source} {name} has no MuJoCo states (a robot's recording or an import): only a "
                         "demo recorded in simulation can be re-rendered; record with `vla collect` or `vla teleop`")


def _render_with_fixture(plain: VlaEnv, host: VlaEnv, episode, fixture: str, rng: np.random.Generator) -> bool:
    """Replace the episode's images with the host scene's, the fixture placed clear of every cube (False: no
    room for it; the episode is left as it was)."""
    plain.reset(seed=episode.seed)
    host.reset(seed=episode.seed)
    plain_joints, host_joints = _joint_qpos(plain), _joint_qpos(host)
    extra = [name for name in host_joints if name not in plain_joints]
    if len(extra) != 1 or host_joints[extra[0]].stop - host_joints[extra[0]].start != FREE_JOINT_QPOS:
        raise ValueError(f"the {fixture} scene differs from the {plain.task.name} scene by joints {extra}, "
                         "expected the fixture's free joint alone")
    host_state = host.mujoco_state()
    nq_plain, nq_host = plain.suite_env.sim.model.nq, host.suite_env.sim.model.nq
    pose = _clear_pose(host_state[1:][host_joints[extra[0]]], _cube_positions(episode, plain_joints, nq_plain),
                       FIXTURES[fixture].clearance, np.asarray(host.suite_env.table_offset[:2]), rng)
    if pose is None:
        return False
    images = {key: [] for key in episode.observations if key.endswith("_image")}
    for state in episode.states:
        qpos = host_state[1:1 + nq_host].copy()
        for joint, where in plain_joints.items():
            qpos[host_joints[joint]] = state[1:1 + nq_plain][where]
        qpos[host_joints[extra[0]]] = pose
        host.set_mujoco_state(np.concatenate([state[:1], qpos, np.zeros(len(host_state) - 1 - nq_host)]))
        observation = host.observe()
        for key in images:
            images[key].append(observation[key])
    for key, frames in images.items():
        episode.observations[key] = np.stack(frames).astype(episode.observations[key].dtype)
    episode.extra_attrs = {**episode.extra_attrs, "distractor": f"{fixture} at x {pose[0]:.3f}, y {pose[1]:.3f}"}
    return True


def _joint_qpos(env: VlaEnv) -> dict[str, slice]:
    """Each joint's slice of the scene's qpos."""
    model = env.suite_env.sim.model._model
    sizes = {mujoco.mjtJoint.mjJNT_FREE: 7, mujoco.mjtJoint.mjJNT_BALL: 4}
    slices = {}
    for joint in range(model.njnt):
        start = int(model.jnt_qposadr[joint])
        size = sizes.get(mujoco.mjtJoint(model.jnt_type[joint]), 1)
        slices[mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, joint)] = slice(start, start + size)
    return slices


def _cube_positions(episode, joints: dict[str, slice], nq: int) -> np.ndarray:
    """(K, 2) xy of every free body (the cubes) at POSITIONS_CHECKED frames spread over the episode."""
    frames = episode.states[np.linspace(0, len(episode.states) - 1, POSITIONS_CHECKED).astype(int)]
    free = [where for where in joints.values() if where.stop - where.start == FREE_JOINT_QPOS]
    return np.array([state[1:1 + nq][where][:2] for state in frames for where in free])


def _clear_pose(pose: np.ndarray, cubes_xy: np.ndarray, clearance: float, table_xy: np.ndarray,
                rng: np.random.Generator) -> np.ndarray | None:
    """The fixture's free-joint qpos: where the host scene put it if every cube stays `clearance` from it all
    demo long, else a random spot that does (None: none found)."""
    pose = pose.copy()
    for _ in range(MAX_PLACEMENT_TRIES):
        if np.linalg.norm(cubes_xy - pose[:2], axis=1).min() >= clearance:
            return pose
        pose[:2] = table_xy + [rng.uniform(*FIXTURE_X_RANGE), rng.uniform(*FIXTURE_Y_RANGE)]
    return None
