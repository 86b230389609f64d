"""Turn a robosuite demonstration file into a full vla-stack dataset.

robosuite's own tooling (DataCollectionWrapper + gather_demonstrations_as_hdf5) stores,
per demo, the MuJoCo states, the actions of whatever controller was used and the model
XML, but no observations. Here every state is set in simulation and rendered again.

Actions are re-expressed in this project's action space: the joint positions of the next
recorded state as absolute targets, and the gripper from the sign of the source action
(robosuite: -1 open, +1 close -> 0 / 1). The source actions are kept, as JSON, in the demo
attribute `source_actions`.

gather_demonstrations_as_hdf5 drops the state reached by the last action, so a demo that
ended on its first successful step has no successful state left; such demos are written
with success False (what the kept states show) and counted under "unsuccessful" in the
report. robosuite's collect_human_demonstrations keeps going for 10 steps after success,
so its demos end in success.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from sim.dataset import DatasetError
from sim.dataset_output import dataset_output
from sim.env import EnvConfig, VlaEnv, localize_asset_paths
from sim.episode import Episode
from sim.rollout import EpisodeRecorder
from sim.tasks import TASKS
from vla.dataset_file import attribute, child, has, member_names, open_hdf5, read

_ROBOSUITE_TO_TASK = {"Lift": "lift", "Stack": "stack"}


def convert_robosuite_demos(source: str, out: str, *, task: str | None = None, image_size: int = 128,
                            progress: bool = True) -> dict:
    demos, env_name = _read_source(source)
    task = task or _task_for(env_name, source)
    config = EnvConfig(image_size=image_size)
    from sim.collect import env_args

    # Before the (slow) scene is built: an existing --out fails here, untouched.
    with (dataset_output(out, task, {**env_args(task, config), "converted_from": str(source)}) as writer,
          VlaEnv(task, config) as env):
        samples, unsuccessful = _convert_demos(env, demos, source, writer, progress)
    return {"demos": len(demos), "samples": samples, "unsuccessful": unsuccessful}


def _convert_demos(env: VlaEnv, demos: list, source: str, writer, progress: bool) -> tuple[int, int]:
    """Render and write every demo -> (frames written, demos that do not end in success)."""
    samples = unsuccessful = 0
    for name, states, actions, xml in _bar(demos, progress):
        episode = _render_demo(env, states, actions, xml)
        episode.extra_attrs = {"source_file": str(source), "source_demo": name,
                               "source_actions": json.dumps(actions.tolist())}
        writer.write(episode)
        samples += episode.num_samples
        unsuccessful += not episode.success
    return samples, unsuccessful


def _read_source(source: str) -> tuple[list, str]:
    with open_hdf5(source) as f:
        data = child(source, f, "data") if has(source, f, "data") else None
        if not isinstance(data, h5py.Group):
            raise _not_robosuite(source, "no /data group")
        env_name = _text(attribute(source, data, "env", ""))
        demos = [_read_source_demo(source, data, name) for name in sorted(member_names(source, data), key=_index)]
    if not demos:
        raise DatasetError(f"{source} holds no demos")
    return demos, env_name


def _read_source_demo(source: str, data: h5py.Group, name: str) -> tuple[str, np.ndarray, np.ndarray, str]:
    """(name, states, actions, model XML) of /data/<name>."""
    demo = child(source, data, name)
    xml = attribute(source, demo, "model_file", None)
    if not isinstance(demo, h5py.Group) or xml is None or not all(has(source, demo, k) for k in ("states", "actions")):
        raise _not_robosuite(source, f"/data/{name} is not a group with states, actions and a model_file attribute")
    states, actions = read(source, demo, "states"), read(source, demo, "actions")
    if states.ndim != 2 or actions.ndim != 2 or len(states) != len(actions) or not len(states):
        raise _not_robosuite(source, f"/data/{name} has states {states.shape} and actions {actions.shape}; "
                                     "expected (T, 1+nq+nv) and (T, A) with the same T >= 1")
    return name, states, actions, _text(xml)


def _not_robosuite(source: str, why: str) -> DatasetError:
    return DatasetError(f"{source} is not a robosuite demonstration file with /data/demo_*/states, "
                        f"actions and a model_file attribute ({why})")


def _task_for(env_name: str, source: str) -> str:
    if env_name in _ROBOSUITE_TO_TASK:
        return _ROBOSUITE_TO_TASK[env_name]
    raise ValueError(f"{source} was recorded on robosuite env {env_name!r}; pass --task (one of {', '.join(TASKS)})")


def _render_demo(env: VlaEnv, states: np.ndarray, actions: np.ndarray, xml: str) -> Episode:
    env.reset(seed=0)
    if localize_asset_paths(xml) != env.model_xml():  # rebuilding the scene takes a second or more
        env.load_model_xml(xml)
    recorder = EpisodeRecorder()
    arm = env.arm_qpos_index
    joint_targets = np.array([s[1:][arm] for s in states[1:]] + [states[-1][1:][arm]])
    gripper = (np.sign(actions[:, -1]) > 0).astype(np.float64)
    for t, state in enumerate(states):
        env.set_mujoco_state(state)
        recorder.add(env.observe(), state, np.append(joint_targets[t], gripper[t]), 0.0, t == len(states) - 1)
    success = env.is_success()
    recorder.rewards[-1] = float(success)
    return recorder.to_episode(env, [""] * len(states), success)


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _index(name: str) -> int:
    digits = "".join(ch for ch in name if ch.isdigit())
    return int(digits) if digits else 0


def _bar(items, enabled: bool):
    from tqdm import tqdm

    return tqdm(items, desc="convert", unit="demo", disable=not enabled)
