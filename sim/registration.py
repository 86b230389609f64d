"""gymnasium registration of every task ("vla/PickColor-v0", ...)."""

from __future__ import annotations

import gymnasium as gym

from sim.tasks import TASKS


def register_envs() -> None:
    """Idempotent: registers each task under its gym id. Builds nothing."""
    for spec in TASKS.values():
        if spec.gym_id not in gym.registry:
            gym.register(id=spec.gym_id, entry_point="sim.env:VlaEnv", kwargs={"task": spec.name})


def make(task: str, **config):
    """Build the environment for a task name (e.g. "pick-color") with EnvConfig overrides."""
    from sim.env import VlaEnv

    return VlaEnv(task, **config)
