"""`vla convert FILE.hdf5 --to lerobot --out DIR`: a vla-stack dataset as a LeRobotDataset v3.0 directory
(layout: sim/lerobot.py) that LeRobot's own loader reads.

Every demo becomes one episode, all in data/chunk-000/file-000.parquet and one mp4 per camera:
  observation.state (8,) float32 = obs/robot0_joint_pos (7) + gripper in [0, 1] from obs/robot0_gripper_qpos
  action (A,) float32 = actions as stored;  observation.images.<cam> = obs/<cam>_image (video);
  the task = the demo's instruction.
Videos are AV1 (libsvtav1, yuv420p, as LeRobot writes them) where PyAV has the encoder, else H.264.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from robots.codec import finger_qpos_to_gripper
from robots.spec import PANDA_FINGER_OPEN
from sim.dataset import iter_episodes, open_dataset
from sim.episode import Episode
from sim.lerobot import (DATA_PATH, EPISODES_PATH, IMAGE_PREFIX, INFO_PATH, STATS_PATH, TASKS_PATH, VERSION,
                         VIDEO_PATH, feature_stats, merge_stats, require_packages, stats_json)

JOINT_NAMES = [f"panda_joint{i}" for i in range(1, 8)]
CODECS = (("libsvtav1", "av1", {"g": "2", "crf": "30", "preset": "12"}), ("libx264", "h264", {"g": "2", "crf": "18"}))
INDEX_FEATURES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
                  "task_index": "int64"}


def export_lerobot(hdf5_path, out_dir, *, fps: int = 20, robot_type: str = "panda") -> dict:
    """Write the dataset file `hdf5_path` as a new LeRobot v3.0 directory `out_dir` (it must not exist or be
    empty). Returns {"episodes", "frames", "tasks", "cameras", "codec"}."""
    require_packages()

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} already exists and is not empty: choose another --out (nothing is overwritten)")
    open_dataset(hdf5_path)  # a damaged file fails here, before the directory exists
    cameras = _cameras(hdf5_path)
    vcodec, codec_name, options = _codec()
    episodes, tasks = [], {}
    frames = 0
    for ep in iter_episodes(hdf5_path):
        _check_episode(hdf5_path, len(episodes), ep, cameras)
        task_index = tasks.setdefault(ep.instruction, len(tasks))
        episodes.append(_episode_columns(ep, len(episodes), frames, task_index, fps))
        frames += ep.num_samples
    if not episodes:
        raise ValueError(f"{hdf5_path} holds no demos: nothing to export")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        video_info = {cam: _write_video(out, cam, hdf5_path, fps, vcodec, options) for cam in cameras}
        features = _features(episodes[0]["action"].shape[1], video_info, codec_name, fps)
        _write_data(out, episodes, features)
        _write_tasks(out, tasks)
        _write_episodes(out, episodes, video_info)
        _write_info(out, features, len(episodes), frames, len(tasks), fps, robot_type)
    except BaseException:  # Ctrl-C included: no half-written dataset that looks complete is left behind
        _remove(out, created)
        raise
    return {"episodes": len(episodes), "frames": frames, "tasks": len(tasks), "cameras": list(cameras),
            "codec": codec_name}


def _remove(out: Path, created: bool) -> None:
    """Undo a failed export: the directory it created, or what it wrote into the empty one it was given."""
    for path in [out] if created else list(out.iterdir()):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def _cameras(path) -> dict[str, tuple[int, ...]]:
    """Our camera name -> image shape (H, W, 3), from the first demo."""
    first = next(iter_episodes(path), None)
    if first is None:
        return {}
    return {k[:-len("_image")]: v.shape[1:] for k, v in sorted(first.observations.items())
            if k.endswith("_image") and np.ndim(v) == 4}


def _check_episode(path, index: int, ep: Episode, cameras: dict) -> None:
    missing = [k for k in ("robot0_joint_pos", "robot0_gripper_qpos") if k not in ep.observations]
    missing += [f"{c}_image" for c in cameras if f"{c}_image" not in ep.observations]
    if missing:
        raise ValueError(f"{path}: demo {index} has no obs/{', obs/'.join(missing)}; LeRobot's observation.state "
                         "needs joint and gripper positions, and every demo needs the same cameras")
    for cam, shape in cameras.items():
        if ep.observations[f"{cam}_image"].shape[1:] != shape:
            raise ValueError(f"{path}: demo {index} obs/{cam}_image is {ep.observations[f'{cam}_image'].shape[1:]}, "
                             f"demo 0's is {shape}; one video needs one frame size")


def _episode_columns(ep: Episode, index: int, start: int, task_index: int, fps: int) -> dict:
    """One episode's data columns: state (T, 8) float32, action (T, A) float32, the index columns."""
    t = ep.num_samples
    fingers = np.asarray(ep.observations["robot0_gripper_qpos"])
    gripper = np.array([finger_qpos_to_gripper(q, PANDA_FINGER_OPEN) for q in fingers])
    state = np.concatenate([np.asarray(ep.observations["robot0_joint_pos"])[:, :7], gripper[:, None]], axis=1)
    return {"observation.state": state.astype(np.float32), "action": np.asarray(ep.actions, dtype=np.float32),
            "timestamp": (np.arange(t) / fps).astype(np.float32), "frame_index": np.arange(t),
            "episode_index": np.full(t, index), "index": start + np.arange(t), "task_index": np.full(t, task_index),
            "task": ep.instruction}


def _codec() -> tuple[str, str, dict]:
    """(PyAV encoder, info.json codec name, options): LeRobot's AV1 when available, else H.264."""
    import av

    for encoder, name, options in CODECS:
        try:
            av.codec.Codec(encoder, "w")
            return encoder, name, options
        except Exception:  # noqa: BLE001  (PyAV raises UnknownCodecError or ValueError by version)
            continue
    raise ValueError("PyAV has neither libsvtav1 nor libx264 encoders: install PyAV's wheels (pip install av)")


def _write_video(out: Path, cam: str, path, fps: int, vcodec: str, options: dict) -> dict:
    """Encode every demo's frames into one mp4 -> {"stats": per-episode stats, "bounds": (from, to) seconds}."""
    import av

    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration to stderr otherwise
    key = IMAGE_PREFIX + cam
    file = out / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0)
    file.parent.mkdir(parents=True, exist_ok=True)
    stats, bounds, pts = [], [], 0
    with av.open(str(file), "w") as container:
        stream = None
        for ep in iter_episodes(path):
            images = np.ascontiguousarray(ep.observations[f"{cam}_image"], dtype=np.uint8)  # (T, H, W, 3)
            if stream is None:
                stream = container.add_stream(vcodec, rate=fps, options=options)
                stream.width, stream.height, stream.pix_fmt = images.shape[2], images.shape[1], "yuv420p"
            for image in images:
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = pts
                container.mux(stream.encode(frame))
                pts += 1
            bounds.append(((pts - len(images)) / fps, pts / fps))
            sample = images[:: max(1, len(images) // 100)].transpose(0, 3, 1, 2) / 255.0
            stats.append(feature_stats(sample, axes=(0, 2, 3)))
        container.mux(stream.encode(None))
    return {"stats": stats, "bounds": bounds, "shape": list(images.shape[1:])}


def _features(action_dim: int, video_info: dict, codec_name: str, fps: int) -> dict:
    """info.json features: the videos, state, action and the index columns."""
    features = {}
    for cam, info in video_info.items():
        height, width, channels = info["shape"]
        features[IMAGE_PREFIX + cam] = {
            "dtype": "video", "shape": [height, width, channels], "names": ["height", "width", "channels"],
            "info": {"video.height": height, "video.width": width, "video.codec": codec_name,
                     "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                     "video.channels": channels, "has_audio": False}}
    action_names = [*JOINT_NAMES, "gripper"] if action_dim == 8 else [f"action_{i}" for i in range(action_dim)]
    features["observation.state"] = {"dtype": "float32", "shape": [8], "names": [*JOINT_NAMES, "gripper"]}
    features["action"] = {"dtype": "float32", "shape": [action_dim], "names": action_names}
    features.update({k: {"dtype": v, "shape": [1], "names": None} for k, v in INDEX_FEATURES.items()})
    return features


def _write_data(out: Path, episodes: list[dict], features: dict) -> None:
    """data/chunk-000/file-000.parquet, one row group per episode, with the schema metadata `datasets` reads."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [k for k, v in features.items() if v["dtype"] != "video"]
    hf = {k: ({"feature": {"dtype": "float32", "_type": "Value"}, "length": features[k]["shape"][0],
               "_type": "List"} if features[k]["shape"] != [1] else {"dtype": features[k]["dtype"], "_type": "Value"})
          for k in columns}
    path = out / DATA_PATH.format(chunk_index=0, file_index=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = None
    for ep in episodes:
        table = pa.table({k: _arrow_column(ep[k]) for k in columns})
        if schema is None:
            schema = table.schema.with_metadata({"huggingface": json.dumps({"info": {"features": hf}})})
            writer = pq.ParquetWriter(str(path), schema, compression="snappy")
        writer.write_table(table.cast(schema))
    writer.close()


def _arrow_column(values: np.ndarray):
    """(T,) -> a plain column; (T, D) -> fixed_size_list<float>[D] as LeRobot's parquet has it."""
    import pyarrow as pa

    if values.ndim == 1:
        return pa.array(values)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def _write_tasks(out: Path, tasks: dict[str, int]) -> None:
    """meta/tasks.parquet as pandas writes LeRobot's DataFrame: task_index, the task string as the index."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pandas_meta = {"index_columns": ["__index_level_0__"], "column_indexes": [
        {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
         "metadata": {"encoding": "UTF-8"}}], "columns": [
        {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
         "metadata": None},
        {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
         "metadata": None}], "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__}}
    table = pa.table({"task_index": pa.array(list(tasks.values()), pa.int64()),
                      "__index_level_0__": pa.array(list(tasks), pa.string())})
    path = out / TASKS_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)}), str(path))


def _write_episodes(out: Path, episodes: list[dict], video_info: dict) -> None:
    """meta/episodes/chunk-000/file-000.parquet (with per-episode stats) and meta/stats.json."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, per_feature = [], {}
    for i, ep in enumerate(episodes):
        stats = {k: feature_stats(ep[k]) for k in ("observation.state", "action")}
        stats.update({k: feature_stats(np.asarray(ep[k], dtype=np.float64)[:, None]) for k in INDEX_FEATURES})
        stats.update({IMAGE_PREFIX + cam: v["stats"][i] for cam, v in video_info.items()})
        row = {"episode_index": i, "tasks": [ep["task"]], "length": len(ep["action"]),
               "data/chunk_index": 0, "data/file_index": 0,
               "dataset_from_index": int(ep["index"][0]), "dataset_to_index": int(ep["index"][-1]) + 1}
        for cam, v in video_info.items():
            prefix = f"videos/{IMAGE_PREFIX}{cam}/"
            row.update({prefix + "chunk_index": 0, prefix + "file_index": 0,
                        prefix + "from_timestamp": v["bounds"][i][0], prefix + "to_timestamp": v["bounds"][i][1]})
        row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        for key, s in stats.items():
            per_feature.setdefault(key, []).append(s)
            row.update({f"stats/{key}/{name}": np.asarray(value).tolist() for name, value in s.items()})
        rows.append(row)
    path = out / EPISODES_PATH.format(chunk_index=0, file_index=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), str(path))
    (out / STATS_PATH).write_text(stats_json({k: merge_stats(v) for k, v in per_feature.items()}))


def _write_info(out: Path, features: dict, episodes: int, frames: int, tasks: int, fps: int,
                robot_type: str) -> None:
    info = {"codebase_version": VERSION, "robot_type": robot_type, "total_episodes": episodes,
            "total_frames": frames, "total_tasks": tasks, "chunks_size": 1000, "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200, "fps": fps, "splits": {"train": f"0:{episodes}"},
            "data_path": DATA_PATH, "video_path": VIDEO_PATH if any(
                v["dtype"] == "video" for v in features.values()) else None, "features": features}
    (out / INFO_PATH).write_text(json.dumps(info, indent=4))
