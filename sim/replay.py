"""`vla replay`: re-run a dataset in simulation to prove the file is faithful.

mode "actions": reset to the demo's seed (and recorded first state), execute the
recorded actions, and compare every simulated state with the recorded one.
mode "states": set each recorded state in turn (for files whose actions are in another
controller's space, e.g. converted robosuite demos) and check the final success.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from sim.action_noise import ActionNoise
from sim.dataset import DRIVEN_BY_ATTR, open_dataset, read_episode
from sim.env import EnvConfig, VlaEnv
from sim.tasks import Goal

FAITHFUL_TOLERANCE = 1e-6  # max |qpos difference|, radians / metres


@dataclass
class ReplayResult:
    demo: str
    steps: int
    max_divergence: float  # max over steps of max |qpos_replayed - qpos_recorded|
    final_divergence: float
    recorded_success: bool
    replayed_success: bool

    @property
    def faithful(self) -> bool:
        return self.max_divergence <= FAITHFUL_TOLERANCE and self.replayed_success == self.recorded_success

    def to_dict(self) -> dict:
        return {**asdict(self), "faithful": self.faithful}


def replay_file(path: str, demos: list[str] | None = None, mode: str = "actions",
                progress: bool = True) -> list[ReplayResult]:
    info = open_dataset(path)
    task = info.env_args.get("task", info.env_name)
    names = demos or list(info.demo_names)
    missing = sorted(set(names) - set(info.demo_names))
    if missing:
        raise ValueError(f"{path} has no demos {missing}; it has {info.num_demos} demos")
    env = VlaEnv(task, EnvConfig(cameras=()))
    replay_one = _replay_actions if mode == "actions" else _replay_states
    try:
        return [replay_one(env, name, read_episode(path, name)) for name in _bar(names, progress)]
    finally:
        env.close()


def start_recorded(env: VlaEnv, episode) -> None:
    """Put env in the recorded episode's scene (its seed, goal and model) at its first MuJoCo state."""
    if np.shape(episode.states)[-1] == 0:
        raise ValueError("the demos have no MuJoCo states (a real robot's recording or an import, e.g. from "
                         "LeRobot): they train, but there is no scene to replay them in")
    env.reset(seed=episode.seed)
    if episode.goal:
        env.set_goal(Goal.from_dict(episode.goal))
    if episode.model_file and episode.model_file != env.model_xml():
        env.load_model_xml(episode.model_file)
    env.set_mujoco_state(episode.states[0])


def _replay_actions(env: VlaEnv, name: str, episode) -> ReplayResult:
    """Demos collected with --action-noise replay the perturbed commands the robot executed."""
    if DRIVEN_BY_ATTR in episode.extra_attrs:
        raise ValueError(f"{name} was driven by {episode.extra_attrs[DRIVEN_BY_ATTR]} and labelled by the expert "
                         "(vla collect --learner): its actions were never executed; check it with --mode states")
    start_recorded(env, episode)
    nq = env.suite_env.sim.model.nq
    noise = ActionNoise.from_attrs(episode.extra_attrs)
    perturb = noise.drift(episode.seed) if noise else None
    divergences = []
    for t, action in enumerate(episode.actions):
        divergences.append(_qpos_gap(env.mujoco_state(), episode.states[t], nq))
        env.step(perturb(action) if perturb else action)
    final = divergences[-1] if divergences else 0.0
    return ReplayResult(name, len(episode.actions), float(max(divergences, default=0.0)), final,
                        episode.success, env.is_success())


def _replay_states(env: VlaEnv, name: str, episode) -> ReplayResult:
    start_recorded(env, episode)
    nq = env.suite_env.sim.model.nq
    divergences = []
    for state in episode.states:
        env.set_mujoco_state(state)
        divergences.append(_qpos_gap(env.mujoco_state(), state, nq))
    return ReplayResult(name, len(episode.states), float(max(divergences, default=0.0)), divergences[-1],
                        episode.success, env.is_success())


def _qpos_gap(state: np.ndarray, recorded: np.ndarray, nq: int) -> float:
    return float(np.max(np.abs(state[1:1 + nq] - recorded[1:1 + nq])))


def format_replay(results: list[ReplayResult]) -> str:
    lines = [f"{'demo':<12}{'steps':>7}{'max div':>12}{'recorded':>10}{'replayed':>10}  faithful"]
    for r in results:
        lines.append(f"{r.demo:<12}{r.steps:>7}{r.max_divergence:>12.2e}{str(r.recorded_success):>10}"
                     f"{str(r.replayed_success):>10}  {'yes' if r.faithful else 'NO'}")
    faithful = sum(r.faithful for r in results)
    lines.append(f"{faithful}/{len(results)} demos faithful (max |qpos divergence| <= {FAITHFUL_TOLERANCE:g})")
    return "\n".join(lines)


def _bar(items, enabled: bool):
    from tqdm import tqdm

    return tqdm(items, desc="replay", unit="demo", disable=not enabled)



