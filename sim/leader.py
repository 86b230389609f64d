"""Simulated leader arms (robots.leader.LeaderArm) for `vla robot --teleop leader` and tests.

- ExpertLeader: a person moving the leader arm while watching the robot, played by the scripted expert: its
  joint targets on the live scene are the leader's joints (closed loop, so the follower's lag is corrected).
- ReplayLeader: the leader moves through a recorded demo's actions (joint targets + gripper), one per read,
  then stays at the last one; run it on the demo's seed to redo the demo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.experts.scripted import ScriptedExpert


class ExpertLeader:
    """The scripted expert's joint targets on env's current episode (set up at the first read)."""

    def __init__(self, env):
        self.env = env
        self.expert: ScriptedExpert | None = None

    def read(self) -> tuple[np.ndarray, float]:
        if self.expert is None:
            self.expert = ScriptedExpert(self.env)
            self.expert.reset(self.env.instruction)
        action = self.expert.act().actions[0]
        return np.asarray(action[:-1], dtype=np.float64), float(action[-1])


class ReplayLeader:
    """actions (T, N + 1): joint targets + gripper in [0, 1], read one per read(); the last one repeats."""

    def __init__(self, actions: np.ndarray, seed: int | None = None):
        self.actions = np.asarray(actions, dtype=np.float64)
        if self.actions.ndim != 2 or len(self.actions) == 0:
            raise ValueError(f"a replayed leader needs (T, N + 1) actions, got shape {self.actions.shape}")
        self.seed, self.reads = seed, 0

    @classmethod
    def from_file(cls, where: str) -> "ReplayLeader":
        """where: FILE.hdf5 (its first demo) or FILE.hdf5:DEMO_NAME."""
        from sim.dataset import open_dataset, read_episode

        path, demo = where, ""
        if not Path(where).exists() and ":" in where:
            path, _, demo = where.rpartition(":")
        names = open_dataset(path).demo_names
        if not names:
            raise ValueError(f"{path} holds no demo to replay")
        if demo and demo not in names:
            raise ValueError(f"{path} has no demo {demo!r} (it has {', '.join(names[:5])}"
                             f"{', ...' if len(names) > 5 else ''})")
        episode = read_episode(path, demo or names[0])
        return cls(episode.actions, seed=episode.seed)

    def read(self) -> tuple[np.ndarray, float]:
        action = self.actions[min(self.reads, len(self.actions) - 1)]
        self.reads += 1
        return action[:-1].copy(), float(action[-1])


def simulated_leader(env, replay: str | None = None):
    """The leader of `vla robot --teleop leader`: ReplayLeader of `replay` (FILE.hdf5[:DEMO]) or ExpertLeader."""
    if replay is None:
        return ExpertLeader(env)
    leader = ReplayLeader.from_file(replay)
    if leader.seed is not None and leader.seed != env.seed_used:
        print(f"note: the replayed demo was recorded on seed {leader.seed}, this scene is seed {env.seed_used}: "
              f"the leader moves the same way but the objects are elsewhere", flush=True)
    return leader
