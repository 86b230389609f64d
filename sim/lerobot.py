"""The LeRobotDataset v3.0 layout, shared by the importer (sim.lerobot_read.import_lerobot) and the exporter
(sim.lerobot_write.export_lerobot). Read and written with pyarrow and PyAV; LeRobot itself is not needed.

    meta/info.json      codebase_version "v3.0", fps, features {key: {dtype, shape, names, info}}, totals,
                        data_path, video_path (format strings below), robot_type
    meta/tasks.parquet  task_index + the task string (pandas index column, as LeRobot writes it)
    meta/episodes/chunk-XXX/file-YYY.parquet   one row per episode: episode_index, tasks, length,
                        dataset_from_index/to_index, data/{chunk,file}_index,
                        videos/<key>/{chunk_index, file_index, from_timestamp, to_timestamp}, stats/...
    meta/stats.json     per feature: min, max, mean, std, count, q01, q10, q50, q90, q99
    data/chunk-XXX/file-YYY.parquet            rows: the features + timestamp, frame_index,
                        episode_index, index, task_index; several episodes per file
    videos/<key>/chunk-XXX/file-YYY.mp4        several episodes per file, one after another
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np

VERSION = "v3.0"
INFO_PATH = "meta/info.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
STATS_PATH = "meta/stats.json"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
IMAGE_PREFIX = "observation.images."
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
V21_FIX = ("convert it to v3.0 first with LeRobot's script: `python -m lerobot.scripts.convert_dataset_v21_to_v30 "
           "--repo-id=NAME --root={root} --push-to-hub=false` (pip install lerobot in a separate environment)")


def require_packages() -> None:
    """Fail before any file is touched when pyarrow or PyAV (the `full` extra) is missing."""
    for module, package in (("pyarrow", "pyarrow"), ("av", "av")):
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ValueError(f"LeRobot datasets need {package} ({error}): pip install 'vla-stack[full]'") from error


def load_info(root: Path) -> dict:
    """meta/info.json of a v3.0 dataset; ValueError naming the file and the fix otherwise."""
    path = root / INFO_PATH
    if not root.is_dir():
        raise ValueError(f"{root} is not a directory: pass a LeRobotDataset v3.0 directory (with {INFO_PATH})")
    if not path.is_file():
        raise ValueError(f"{path} does not exist: {root} is not a LeRobotDataset directory (a v3.0 dataset has "
                         f"{INFO_PATH}, {TASKS_PATH}, meta/episodes/ and data/); download it completely first")
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not readable JSON ({error}): download the dataset again") from error
    version = info.get("codebase_version") if isinstance(info, dict) else None
    if version != VERSION:
        fix = V21_FIX.format(root=root) if str(version).startswith("v2") else "only v3.0 is read"
        raise ValueError(f"{path} says codebase_version {version!r}, but only LeRobotDataset {VERSION} is read: {fix}")
    for key in ("fps", "features"):
        if key not in info:
            raise ValueError(f"{path} has no {key!r}: not a LeRobotDataset v3.0 info.json; download it again")
    return info


def feature_stats(values: np.ndarray, axes: tuple[int, ...] = (0,)) -> dict[str, np.ndarray]:
    """LeRobot's per-feature statistics of values (N, ...) reduced over `axes` (images: (0, 2, 3) of
    (N, 3, H, W) in [0, 1], kept as (3, 1, 1))."""
    keep = axes != (0,)
    values = np.asarray(values, dtype=np.float64)
    stats = {"min": values.min(axis=axes, keepdims=keep), "max": values.max(axis=axes, keepdims=keep),
             "mean": values.mean(axis=axes, keepdims=keep), "std": values.std(axis=axes, keepdims=keep),
             "count": np.array([len(values)])}
    for q in QUANTILES:
        stats[f"q{int(round(q * 100)):02d}"] = np.quantile(values, q, axis=axes, keepdims=keep)
    if keep:  # (1, 3, 1, 1) -> (3, 1, 1)
        stats = {k: v if k == "count" else v[0] for k, v in stats.items()}
    return stats


def merge_stats(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Dataset statistics from per-episode ones (quantiles: count-weighted mean, as LeRobot aggregates)."""
    counts = np.array([float(p["count"][0]) for p in parts])
    weights = counts / counts.sum()

    def weighted(key: str) -> np.ndarray:
        return sum(w * p[key] for w, p in zip(weights, parts))

    mean = weighted("mean")
    variance = sum(w * (p["std"] ** 2 + (p["mean"] - mean) ** 2) for w, p in zip(weights, parts))
    merged = {"min": np.min([p["min"] for p in parts], axis=0), "max": np.max([p["max"] for p in parts], axis=0),
              "mean": mean, "std": np.sqrt(variance), "count": np.array([int(counts.sum())])}
    merged.update({k: weighted(k) for k in parts[0] if k.startswith("q")})
    return merged


def stats_json(stats: dict[str, dict[str, np.ndarray]]) -> str:
    """meta/stats.json text: arrays as nested lists."""
    return json.dumps({key: {k: np.asarray(v).tolist() for k, v in s.items()} for key, s in stats.items()}, indent=4)
