"""`replay:FILE[#DEMO]`: one recorded demo's commands played in order, blind to the cameras.

The baseline a learned policy has to beat: it succeeds exactly as often as the scene's
randomization (cube placement, the robot's start pose) lets one fixed trajectory succeed.
"""

from __future__ import annotations

import numpy as np

from policies.base import ActionChunk, Observation


class OpenLoopReplay:
    """Answers each call with the next recorded action (one per call, so any chunk execution plays
    the trajectory at the recorded rate); after the last one it keeps sending the last."""

    def __init__(self, actions: np.ndarray, name: str = "replay"):
        actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim != 2 or len(actions) == 0:
            raise ValueError(f"{name}: a replay needs (T, A) actions with T >= 1, got shape {actions.shape}")
        self.actions, self.name, self.step = actions, name, 0

    def reset(self, instruction: str) -> None:
        self.step = 0

    def act(self, observation: Observation) -> ActionChunk:
        action = self.actions[min(self.step, len(self.actions) - 1)]
        self.step += 1
        return ActionChunk(action[None], subtask=self.name)


def parse_replay_spec(spec: str) -> tuple[str, str | None]:
    """`replay:FILE[#DEMO]` -> (FILE, DEMO or None for the file's first demo)."""
    body = spec.removeprefix("replay:")
    path, _, demo = body.partition("#")
    if not path:
        raise ValueError(f"{spec!r}: name a dataset, e.g. replay:data/lift.hdf5#demo_0")
    return path, demo or None


def load_replay(spec: str, task: str | None) -> OpenLoopReplay:
    """The policy `replay:FILE[#DEMO]` names; refused when FILE was recorded on another task
    (None: the task is not known here, e.g. when served)."""
    from sim.dataset import open_dataset, read_episode

    path, demo = parse_replay_spec(spec)
    info = open_dataset(path)
    recorded = info.env_args.get("task", info.env_name)
    if task is not None and recorded != task:
        raise ValueError(f"{path} holds {recorded!r} demos, the episode is {task!r}: "
                         f"replay a file collected with `vla collect --task {task}`")
    name = demo or info.demo_names[0]
    return OpenLoopReplay(read_episode(path, name).actions, name=f"replay {name}")
