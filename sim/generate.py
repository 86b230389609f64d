"""Generating demonstrations from recorded ones in simulation (`vla generate`; the method: sim.demo_generation).

Reads the source dataset's demos (they need MuJoCo states), builds the task's scene with the source's
cameras and image size, and runs the generator on seeds seed, seed + 1, ... until `episodes` succeed
(at most MAX_ATTEMPTS_PER_EPISODE attempts each). Kept demos are labelled by sim.segmentation like
teleoperated ones and say which source demo they came from (attribute `generated_from`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.dataset import open_dataset, read_episode
from sim.demo_generation import SegmentPlayer, SourceDemo, source_demo
from sim.env import EnvConfig, VlaEnv
from sim.experts.scene import Scene
from sim.replay import start_recorded
from sim.tasks import Goal

MAX_ATTEMPTS_PER_EPISODE = 3


@dataclass(frozen=True)
class GenerateReport:
    out: str
    kept: int
    attempts: int
    sources: int


def source_env_config(env_args: dict) -> EnvConfig:
    """The cameras and image size the source was recorded with (the defaults where it does not say)."""
    recorded = env_args.get("vla", {})
    known = {key: recorded[key] for key in ("image_size", "control_hz") if key in recorded}
    if "cameras" in recorded:
        known["cameras"] = tuple(recorded["cameras"])
    return EnvConfig(**known)


def read_sources(env: VlaEnv, path: str, first: int | None = None) -> list[SourceDemo]:
    """The dataset's demos (its `first` ones) cut into segments (ValueError for a demo without MuJoCo states)."""
    info = open_dataset(path)
    if first is not None and not 1 <= first <= info.num_demos:
        raise ValueError(f"--sources {first}: {path} has {info.num_demos} demos")
    forward = Scene(env).arm_ik().forward
    sources = []
    for name in info.demo_names[:first]:
        episode = read_episode(path, name)
        if np.shape(episode.states)[-1] == 0:
            raise ValueError(f"{path} {name} has no MuJoCo states (a robot's recording or an import): generation "
                             "moves simulated demos into new scenes; record them with `vla teleop` or `vla collect`")
        sources.append(source_demo(name, episode, _object_poses(env, episode), forward))
    return sources


def _object_poses(env: VlaEnv, episode):
    """object_pose(name, t) of a recorded episode, by setting its MuJoCo state of step t."""
    start_recorded(env, episode)

    def object_pose(name: str, t: int):
        env.set_mujoco_state(episode.states[t])
        return env.cube_pose(name)
    return object_pose


def generate_demos(source_path: str, episodes: int, out: str, *, seed: int = 0, sources: int | None = None,
                   append: bool = False, on_episode=None) -> GenerateReport:
    """Keep `episodes` successful generated episodes of the source dataset's task in `out`, from its first
    `sources` demos (None: all)."""
    from sim.collect import env_args
    from sim.dataset_output import dataset_output
    from sim.rollout import run_episode
    from sim.segmentation import segment_subtasks

    info = open_dataset(source_path)
    task = info.env_args.get("task", info.env_name)
    config = source_env_config(info.env_args)
    attrs = {**env_args(task, config), "demonstrator": "generated", "generated_from": str(source_path)}
    kept = attempts = 0
    with VlaEnv(task, config) as env, dataset_output(out, task, attrs, append=append) as writer:
        demos = read_sources(env, source_path, sources)
        player = SegmentPlayer(env, demos, np.random.default_rng(seed))
        for episode_seed in range(seed, seed + MAX_ATTEMPTS_PER_EPISODE * episodes):
            result = run_episode(env, player, episode_seed, record=True)
            attempts += 1
            if result.success:
                episode = result.episode
                episode.subtasks = segment_subtasks(episode.actions[:, -1], episode.observations["robot0_eef_pos"],
                                                    Goal.from_dict(episode.goal))
                episode.extra_attrs = {**episode.extra_attrs, "generated_from": player.source.name}
                writer.write(episode)
                kept += 1
            if on_episode:
                on_episode({"seed": episode_seed, "success": bool(result.success), "steps": result.steps,
                            "source": player.source.name}, kept)
            if kept == episodes:
                break
    return GenerateReport(str(out), kept, attempts, len(demos))
