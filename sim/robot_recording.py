"""`vla robot --record`: what a simulated robot driven over the wire saw and did, as a dataset demo.

The recorded actions are the commands the robot executed (after the client's safety filter,
holds included), each paired with the observation and MuJoCo state it was executed from, so the
file trains (`vla train`) and replays (`vla replay`) like one written by `vla collect`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ContextManager

import numpy as np

from robots.driver import SimDriver
from sim.collect import env_args
from sim.dataset import DatasetWriter
from sim.dataset_output import dataset_output
from sim.episode import Episode
from sim.rollout import EpisodeRecorder


class RecordingDriver:
    """A robots.driver.Driver around a SimDriver that records every executed command."""

    def __init__(self, driver: SimDriver):
        self.driver = driver
        self.recorder = EpisodeRecorder()
        self.commands = 0

    def read_state(self) -> tuple[np.ndarray, float]:
        return self.driver.read_state()

    def read_images(self) -> dict[str, np.ndarray]:
        return self.driver.read_images()

    def send_command(self, command: np.ndarray) -> None:
        obs, state = self.driver.observation(), self.driver.env.mujoco_state()
        self.driver.send_command(command)
        self.recorder.add(obs, state, np.asarray(command, dtype=np.float32), self.driver.reward, self.driver.done)
        self.commands += 1

    def stop(self) -> None:
        self.driver.stop()

    def episode(self, subtasks: list[str]) -> Episode:
        """The recording as one Episode; subtasks: one label per executed command."""
        if len(subtasks) != self.commands:
            raise ValueError(f"{len(subtasks)} subtask labels for {self.commands} recorded commands")
        return self.recorder.to_episode(self.driver.env, subtasks, self.driver.is_success())


def recording_output(path: str | Path, env) -> ContextManager[DatasetWriter]:
    """The dataset a run records into (a context): created, and removed again if the run records nothing,
    or appended to when it exists (same task only). Opened before the robot moves, so a wrong file is
    reported before anything is lost."""
    path = Path(path)
    return dataset_output(path, env.task.name, env_args(env.task.name, env.config), append=path.exists())
