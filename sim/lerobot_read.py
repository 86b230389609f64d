"""`vla convert DIR --out FILE.hdf5`: a LeRobotDataset v3.0 directory (layout: sim/lerobot.py) as a vla-stack
dataset.

Per LeRobot episode one demo: actions = the action feature (T, A) float32 as stored; the state feature
(T, 8) = 7 joint positions + one gripper number in [0, 1] (1 = closed) -> obs/robot0_joint_pos (T, 7) and
obs/robot0_gripper_qpos (T, 2) finger positions, or (T, 9) = 7 joints + 2 finger positions; every camera
`observation.images.NAME` -> obs/NAME_image (T, H, W, 3) uint8; the episode's task string -> instruction.
An import has no MuJoCo states: `states` is (T, 0) and model_file "" (it trains; it does not replay).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robots.codec import gripper_to_finger_qpos
from robots.spec import PANDA_FINGER_OPEN
from sim.dataset_output import dataset_output
from sim.episode import Episode
from sim.lerobot import DATA_PATH, IMAGE_PREFIX, TASKS_PATH, load_info, require_packages

NUM_JOINTS = 7


@dataclass(frozen=True)
class _Source:
    """What an import reads: the dataset root, its info.json and the chosen features."""

    root: Path
    info: dict
    state_key: str
    action_key: str
    cameras: dict[str, str]  # LeRobot feature key -> our camera name (obs/<name>_image)


def import_lerobot(directory, out, *, task: str | None = None, state_key: str = "observation.state",
                   action_key: str = "action", camera_map: dict[str, str] | None = None,
                   image_size: int | None = None, progress: bool = False) -> dict:
    """Write every episode of the LeRobot v3.0 dataset `directory` into the new dataset file `out`.

    task: the /data env name (a vla-stack task such as "lift"; default "lerobot-<robot_type>").
    camera_map: {LeRobot camera ("top" or "observation.images.top"): our name}; when given, only those
    cameras are imported. image_size: resize every frame to image_size x image_size (None keeps it).
    Returns {"demos", "samples", "cameras": {ours: LeRobot key}, "fps", "robot_type"}.
    """
    require_packages()

    source = _source(Path(directory), state_key, action_key, camera_map)
    episodes, tasks = _episode_rows(source.root), _tasks(source.root)
    env_name = task or f"lerobot-{source.info.get('robot_type') or 'robot'}"
    env_args = {**({"task": task} if task else {}), "source": "lerobot", "source_dir": str(source.root),
                "codebase_version": source.info["codebase_version"], "robot_type": source.info.get("robot_type"),
                "fps": source.info["fps"], "cameras": list(source.cameras.values())}
    samples = 0
    with dataset_output(out, env_name, env_args) as writer:
        for row in _bar(episodes, progress):
            episode = _read_episode(source, row, tasks, image_size)
            writer.write(episode)
            samples += episode.num_samples
    return {"demos": len(episodes), "samples": samples, "fps": source.info["fps"],
            "robot_type": source.info.get("robot_type"), "cameras": {v: k for k, v in source.cameras.items()}}


def _source(root: Path, state_key: str, action_key: str, camera_map: dict[str, str] | None) -> _Source:
    info = load_info(root)
    features = info["features"]
    for key, flag in ((state_key, "--state-key"), (action_key, "--action-key")):
        if key not in features:
            raise ValueError(f"{root / 'meta/info.json'} has no feature {key!r} (features: {', '.join(features)}); "
                             f"name the right one with {flag}")
    state_dim = _dim(features, state_key)
    if state_dim not in (NUM_JOINTS + 1, NUM_JOINTS + 2):
        raise ValueError(f"{root / 'meta/info.json'}: feature {state_key!r} has {state_dim} values; expected 8 "
                         "(7 joint positions + gripper in [0, 1]) or 9 (7 joints + 2 finger positions); "
                         "name another with --state-key")
    return _Source(root, info, state_key, action_key, _cameras(root, features, camera_map))


def _dim(features: dict, key: str) -> int:
    shape = features[key].get("shape") or [1]
    return int(np.prod(shape))


def _cameras(root: Path, features: dict, camera_map: dict[str, str] | None) -> dict[str, str]:
    """LeRobot camera key -> our camera name; ValueError naming a mapped camera the dataset lacks."""
    present = {k: k[len(IMAGE_PREFIX):].replace(".", "_") for k, v in features.items()
               if k.startswith(IMAGE_PREFIX) and v.get("dtype") == "video"}
    images = [k for k, v in features.items() if v.get("dtype") == "image"]
    if images and (camera_map is None or any(_camera_key(k) in images for k in camera_map)):
        raise ValueError(f"{root / 'meta/info.json'}: cameras {images} are stored as images in the parquet "
                         "files, which this importer does not read; re-record them as video (LeRobot's default), "
                         "or leave them out with --camera NAME=OURNAME for the video cameras only")
    if camera_map is None:
        return present
    missing = [k for k in camera_map if _camera_key(k) not in present]
    if missing:
        have = ", ".join(k[len(IMAGE_PREFIX):] for k in present) or "none"
        raise ValueError(f"{root / 'meta/info.json'} has no camera {', '.join(map(repr, missing))} "
                         f"(video cameras: {have}); fix --camera NAME=OURNAME")
    return {_camera_key(k): v for k, v in camera_map.items()}


def _camera_key(name: str) -> str:
    return name if name.startswith(IMAGE_PREFIX) else IMAGE_PREFIX + name


def _read_parquet(path: Path, filters=None):
    import pyarrow.parquet as pq

    if not path.is_file():
        raise ValueError(f"{path} does not exist: the LeRobot dataset is incomplete; download it again")
    try:
        return pq.read_table(path, filters=filters)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise ValueError(f"{path} is not a readable parquet file ({error}); download the dataset again") from error


def _episode_rows(root: Path) -> list[dict]:
    """Rows of meta/episodes/*/*.parquet (stats columns dropped), by episode_index."""
    paths = sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet"))
    if not paths:
        raise ValueError(f"{root / 'meta/episodes'} holds no chunk-*/file-*.parquet: the LeRobot dataset is "
                         "incomplete; download it again")
    rows = []
    for path in paths:
        table = _read_parquet(path)
        rows += table.select([c for c in table.column_names if not c.startswith("stats/")]).to_pylist()
    return sorted(rows, key=lambda r: r["episode_index"])


def _tasks(root: Path) -> dict[int, str]:
    """task_index -> task string (the string is the pandas index column LeRobot writes, or a 'task' column)."""
    table = _read_parquet(root / TASKS_PATH)
    text = [c for c in table.column_names if c != "task_index" and str(table.schema.field(c).type) in
            ("string", "large_string")]
    if "task_index" not in table.column_names or not text:
        raise ValueError(f"{root / TASKS_PATH} has no task_index and task columns (has {table.column_names})")
    column = "task" if "task" in text else text[0]
    return dict(zip(table.column("task_index").to_pylist(), table.column(column).to_pylist()))


def _read_episode(source: _Source, row: dict, tasks: dict[int, str], image_size: int | None) -> Episode:
    frames = _frames(source, row)
    t = len(frames["frame_index"])
    state = np.asarray(frames[source.state_key], dtype=np.float64).reshape(t, -1)
    joints, gripper = state[:, :NUM_JOINTS], state[:, NUM_JOINTS:]
    if gripper.shape[1] == 1:
        gripper = np.stack([gripper_to_finger_qpos(g, PANDA_FINGER_OPEN) for g in gripper[:, 0]])
    observations = {"robot0_joint_pos": joints, "robot0_gripper_qpos": gripper}
    timestamps = np.asarray(frames["timestamp"], dtype=np.float64)
    for key, name in source.cameras.items():
        observations[f"{name}_image"] = _camera_frames(source, row, key, timestamps, image_size)
    task_names = row.get("tasks") or [tasks.get(frames["task_index"][0], "")]
    return Episode(seed=int(row["episode_index"]), instruction=str(task_names[0]), goal={},
                   actions=np.asarray(frames[source.action_key], dtype=np.float32).reshape(t, -1),
                   observations=observations, states=np.zeros((t, 0)), rewards=np.zeros(t),
                   dones=(np.arange(t) == t - 1).astype(np.int64),
                   subtasks=[tasks.get(i, "") for i in frames["task_index"]], model_file="", success=True,
                   extra_attrs={"source": "lerobot", "source_dir": str(source.root),
                                "source_episode": int(row["episode_index"])})


def _frames(source: _Source, row: dict) -> dict[str, list]:
    """This episode's data rows as columns, in frame order (only its row groups are read)."""
    path = source.root / source.info.get("data_path", DATA_PATH).format(
        chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
    table = _read_parquet(path, [("episode_index", "=", row["episode_index"])]).sort_by("frame_index")
    if table.num_rows != row["length"]:
        raise ValueError(f"{path} holds {table.num_rows} frames of episode {row['episode_index']}, "
                         f"meta/episodes says {row['length']}: the dataset is inconsistent; download it again")
    return {k: table.column(k).to_pylist() for k in
            {source.state_key, source.action_key, "timestamp", "frame_index", "task_index"}}


def _camera_frames(source: _Source, row: dict, key: str, timestamps: np.ndarray,
                   image_size: int | None) -> np.ndarray:
    """(T, H, W, 3) uint8: the video frame at from_timestamp + timestamp of every data row."""
    import av

    prefix = f"videos/{key}/"
    if prefix + "from_timestamp" not in row:
        raise ValueError(f"{source.root / 'meta/episodes'} has no {prefix}from_timestamp for camera {key!r}: "
                         "the dataset is incomplete; download it again, or leave the camera out with --camera")
    path = source.root / source.info["video_path"].format(
        video_key=key, chunk_index=row[prefix + "chunk_index"], file_index=row[prefix + "file_index"])
    if not path.is_file():
        raise ValueError(f"{path} does not exist: the LeRobot dataset is incomplete; download it again")
    wanted = row[prefix + "from_timestamp"] + timestamps
    half_frame = 0.5 / float(source.info["fps"])
    times, images = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        container.seek(max(0, int(wanted[0] / stream.time_base) - 1), stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.time > wanted[-1] + half_frame:
                break
            if frame.time >= wanted[0] - half_frame:
                size = {"width": image_size, "height": image_size} if image_size else {}
                times.append(frame.time)
                images.append(frame.to_ndarray(format="rgb24", **size))
    nearest = [int(np.argmin(np.abs(np.asarray(times) - w))) if times else -1 for w in wanted]
    if not times or any(abs(times[i] - w) > half_frame for i, w in zip(nearest, wanted)):
        raise ValueError(f"{path} has no frames at {wanted[0]:.3f}..{wanted[-1]:.3f} s for episode "
                         f"{row['episode_index']} (meta/episodes timestamps): the video does not match its data")
    return np.stack([images[i] for i in nearest]).astype(np.uint8)


def _bar(items, enabled: bool):
    from tqdm import tqdm

    return tqdm(items, desc="convert", unit="episode", disable=not enabled)
