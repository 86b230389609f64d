"""HDF5 episode datasets: robomimic-compatible layout plus language annotations.

    /data           attrs: env, env_args (JSON), total (sum of num_samples)
    /data/demo_<i>  attrs: num_samples, model_file, instruction, seed, goal (JSON),
                    success, Episode.extra_attrs (driven_by: a DAgger demo, whose
                    actions are the expert's labels, not what was executed); datasets: actions (T, A) float32,
                    obs/<key> (T, ...) (images (T, H, W, 3) uint8 gzip), states
                    (T, 1+nq+nv) float64, rewards (T,), dones (T,), subtasks (T,) str
    /mask/train, /mask/valid   demo names as bytes; demo_9, demo_19, ... are valid

Crash safety: the writer opens the file once per episode, writes the demo under a
temporary root-level group, renames it to /data/demo_<i> as the last step and closes
the file. HDF5 rewrites metadata in place in several unordered writes, so a kill
during a flush could still corrupt *old* demos; every write session therefore keeps a
rollback journal "<file>-journal" (as SQLite does): each page's original bytes are
saved before HDF5 first changes it, and deleting the journal is the commit. Readers
overlay a leftover journal (= last committed state); the next writer rolls it back.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from sim.episode import Episode
from vla.dataset_journal import FileBusyError, journal_path, write_session
from vla.dataset_file import (DEMO_NAME, DatasetError, child, data_group, demo_index, open_hdf5, read, reading,
                              split_masks, validation_names)

LIBVER = ("v108", "latest")  # attributes > 64 KB (model_file) need the 1.8+ format
_TMP_PREFIX = "_incomplete_"
DRIVEN_BY_ATTR = "driven_by"  # a DAgger demo's learner: it moved the robot, the expert's labels are the actions
_RESERVED_ATTRS = ("num_samples", "model_file", "instruction", "seed", "goal", "success")
_FIX = "Re-run `vla collect` or restore it from a backup"


@dataclass(frozen=True)
class DatasetInfo:
    """A validated dataset: demo_names sorted by index, total = sum of num_samples, valid_names the
    validation split (vla.dataset_file.validation_names: the same demos training holds out)."""

    path: Path
    env_name: str
    env_args: dict
    demo_names: tuple[str, ...]
    total: int
    valid_names: tuple[str, ...] = ()

    @property
    def num_demos(self) -> int:
        return len(self.demo_names)


# ------------------------------------------------------------------------------ reading


def _sorted_demo_names(data: h5py.Group) -> list[str]:
    """Names of the demo_<i> groups under /data, sorted by index."""
    return sorted((k for k in data.keys() if DEMO_NAME.match(k)), key=demo_index)


def _data_group(path: Path, f: h5py.File) -> h5py.Group:
    """Return /data after checking it exists and names its env."""
    data = data_group(path, f)
    with reading(path, "/data"):
        if "env" not in data.attrs:
            raise DatasetError(f"{path} has no 'env' attribute on /data: not a vla-stack/robomimic dataset")
    return data


def _demo_length(path: Path, name: str, g) -> int:
    """Validate one demo group; return T. Every per-step array must have length T."""
    with reading(path, f"/data/{name}"):
        return _checked_length(f"{path}: /data/{name}", g)


def _checked_length(where: str, g) -> int:
    if not isinstance(g, h5py.Group):
        raise DatasetError(f"{where} is not a group. {_FIX}")
    for key in ("actions", "states", "obs"):
        if key not in g:
            raise DatasetError(f"{where} has no '{key}' (incomplete or corrupt demo). {_FIX}")
    fields = {k: g[k] for k in ("actions", "states", "rewards", "dones", "subtasks") if k in g}
    fields.update({f"obs/{k}": v for k, v in g["obs"].items()})
    lengths = {k: v.shape[0] if isinstance(v, h5py.Dataset) and v.ndim else -1
               for k, v in fields.items()}
    t = lengths["actions"]
    for field, n in lengths.items():
        if n != t or t < 0:
            raise DatasetError(f"{where}/{field} has length {n}, expected {t} (as actions). {_FIX}")
    if int(g.attrs.get("num_samples", t)) != t:
        raise DatasetError(f"{where} attr num_samples != {t} steps of actions. {_FIX}")
    return int(t)


def _py_attr(value):
    """Convert numpy scalars / bytes from h5py attrs to plain Python values."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value.item() if isinstance(value, np.generic) else value


def open_dataset(path: str | os.PathLike) -> DatasetInfo:
    """Open and validate a dataset file; raise DatasetError naming any problem."""
    path = Path(path)
    with open_hdf5(path) as f:
        data = _data_group(path, f)
        with reading(path, "/data"):
            env_args = json.loads(data.attrs.get("env_args", "{}"))
            names = _sorted_demo_names(data)
            env = str(_py_attr(data.attrs["env"]))
        total = sum(_demo_length(path, n, child(path, data, n)) for n in names)
        valid = validation_names(path, f)
        return DatasetInfo(path, env, env_args, tuple(names), total, tuple(n for n in names if n in valid))


def _load_demo(path: Path, name: str, g: h5py.Group) -> Episode:
    """Load a demo group into an Episode (arrays keep their stored dtypes)."""
    t = _demo_length(path, name, g)
    attrs = {k: _py_attr(v) for k, v in g.attrs.items()}
    obs = g["obs"]
    return Episode(
        seed=int(attrs.get("seed", 0)),
        instruction=str(attrs.get("instruction", "")),
        goal=json.loads(attrs.get("goal", "{}")),
        actions=read(path, g, "actions"),
        observations={k: read(path, obs, k) for k in obs},
        states=read(path, g, "states"),
        rewards=read(path, g, "rewards") if "rewards" in g else np.zeros(t),
        dones=read(path, g, "dones") if "dones" in g else np.zeros(t, dtype=np.int64),
        subtasks=[str(s) for s in g["subtasks"].asstr()[()]] if "subtasks" in g else [""] * t,
        model_file=str(attrs.get("model_file", "")),
        success=bool(attrs.get("success", True)),
        extra_attrs={k: v for k, v in attrs.items() if k not in _RESERVED_ATTRS},
    )


def read_episode(path: str | os.PathLike, demo_name: str) -> Episode:
    """Load every array and attribute of /data/<demo_name> into an Episode."""
    path = Path(path)
    with open_hdf5(path) as f:
        data = _data_group(path, f)
        with reading(path, f"/data/{demo_name}"):
            if not DEMO_NAME.match(demo_name) or demo_name not in data:
                have = ", ".join(_sorted_demo_names(data)[:5]) or "none"
                raise DatasetError(f"{path} has no demo {demo_name!r} (demos: {have}...)")
            return _load_demo(path, demo_name, data[demo_name])


def iter_episodes(path: str | os.PathLike) -> Iterator[Episode]:
    """Yield every episode in index order (the file is reopened per episode)."""
    for name in open_dataset(path).demo_names:
        yield read_episode(path, name)


# ------------------------------------------------------------------------------ writing


def _dumps(obj) -> str:
    """JSON with numpy arrays / scalars converted to lists / Python numbers."""
    def default(o):
        if isinstance(o, (np.ndarray, np.generic)):
            return o.tolist()
        raise TypeError(f"{type(o).__name__} is not JSON serializable")
    return json.dumps(obj, default=default, sort_keys=True)


def _check_episode(ep: Episode) -> None:
    """Raise ValueError unless every per-step field has length T = len(actions) >= 1."""
    if np.ndim(ep.actions) != 2 or ep.num_samples < 1 or np.ndim(ep.states) != 2:
        raise ValueError(f"episode actions (T, A) and states (T, S) need T >= 1, got "
                         f"{np.shape(ep.actions)} and {np.shape(ep.states)}")
    per_step = {"states": ep.states, "rewards": ep.rewards, "dones": ep.dones,
                "subtasks": ep.subtasks, **{f"obs/{k}": v for k, v in ep.observations.items()}}
    for field, value in per_step.items():
        n = len(value) if isinstance(value, (list, tuple)) else (np.shape(value) or (-1,))[0]
        if n != ep.num_samples:
            raise ValueError(f"episode {field} has length {n}, expected {ep.num_samples}")
    if set(ep.extra_attrs) & set(_RESERVED_ATTRS):
        raise ValueError(f"extra_attrs may not override reserved attributes {_RESERVED_ATTRS}")


def _write_demo(g: h5py.Group, ep: Episode) -> None:
    """Fill an empty group with one episode's arrays and attributes."""
    g["actions"] = np.asarray(ep.actions, dtype=np.float32)
    g["states"] = np.asarray(ep.states, dtype=np.float64)
    g["rewards"], g["dones"] = np.asarray(ep.rewards), np.asarray(ep.dones)
    g.create_dataset("subtasks", data=[str(s) for s in ep.subtasks], dtype=h5py.string_dtype())
    obs = g.create_group("obs")
    for key, value in ep.observations.items():
        arr = np.asarray(value)
        if arr.dtype == np.uint8 and arr.ndim == 4:  # images: one gzip chunk per frame
            obs.create_dataset(key, data=arr, chunks=(1, *arr.shape[1:]), compression="gzip")
        else:
            obs[key] = arr
    g.attrs.update({"num_samples": ep.num_samples, "model_file": ep.model_file,
                    "instruction": ep.instruction, "seed": int(ep.seed),
                    "goal": _dumps(ep.goal), "success": bool(ep.success)})
    g.attrs.update(ep.extra_attrs)


def _update_summary(f: h5py.File) -> None:
    """Recompute /data attr total and rewrite /mask/train and /mask/valid."""
    names = _sorted_demo_names(f["data"])
    f["data"].attrs["total"] = int(sum(int(f["data"][n].attrs["num_samples"]) for n in names))
    masks = f.require_group("mask")
    for key, subset in zip(("train", "valid"), split_masks(names)):
        if key in masks:
            del masks[key]
        masks[key] = np.array(subset, dtype="S") if subset else np.zeros(0, "S1")


class DatasetWriter:
    """Append episodes to a dataset file, one crash-safe open/write/close per episode.

    with DatasetWriter("out.hdf5", "color_cubes", {...}) as w:
        w.write(episode)  # -> "demo_0"
    """

    def __init__(self, path: str | os.PathLike, env_name: str, env_args: dict,
                 append: bool = False):
        self.path, self.env_name, self.env_args = Path(path), env_name, dict(env_args)
        self._demo_names: list[str] = []
        if not self.path.exists():
            self._create()
        elif not append:
            raise DatasetError(f"{self.path} already exists: pass --append to add episodes "
                               "to it, or choose another --out (datasets are never overwritten)")
        else:
            self._open_for_append()

    def _create(self) -> None:
        """Create an empty dataset atomically (temp file + rename)."""
        if not self.path.parent.is_dir():
            raise DatasetError(f"cannot create {self.path}: directory {self.path.parent} "
                               "does not exist. Create it first or choose another --out")
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with h5py.File(tmp, "w", libver=LIBVER) as f:
                f.create_group("data").attrs.update(
                    {"env": self.env_name, "env_args": _dumps(self.env_args), "total": 0})
                _update_summary(f)
            journal_path(self.path).unlink(missing_ok=True)  # stale, of a deleted file
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise DatasetError(f"cannot create {self.path}: {exc}. "
                               "Check permissions and disk space") from exc

    def _open_for_append(self) -> None:
        """Validate the file, check its env, delete leftover temporary groups."""
        info = open_dataset(self.path)
        if info.env_name != self.env_name:
            raise DatasetError(f"{self.path} holds env {info.env_name!r}, cannot append "
                               f"{self.env_name!r} episodes: choose another --out")
        with self._session() as f:
            for key in [k for k in f.keys() if k.startswith(_TMP_PREFIX)]:
                with contextlib.suppress(KeyError, OSError, RuntimeError):
                    del f[key]  # an unreadable leftover is harmless: it is outside /data
        self._demo_names = list(info.demo_names)

    @contextlib.contextmanager
    def _session(self) -> Iterator[h5py.File]:
        """A crash-safe write session; I/O failures become DatasetError."""
        try:
            with write_session(self.path, LIBVER) as f:
                yield f
        except FileBusyError as exc:
            raise DatasetError(f"{self.path} is being written by another process: wait for it "
                               "or choose another --out") from exc.__cause__
        except OSError as exc:
            raise DatasetError(f"writing {self.path} failed ({exc}); the file was left "
                               "unchanged. Check permissions and disk space") from exc

    @property
    def num_demos(self) -> int:
        """Number of finished demos in the file."""
        return len(self._demo_names)

    def write(self, episode: Episode) -> str:
        """Write one episode as the next demo_<i> and return its name.

        All or nothing: after an exception or a crash the file holds the previous demos.
        """
        _check_episode(episode)
        with self._session() as f:
            names = _sorted_demo_names(f["data"])  # the file, not a cache, decides numbering
            name = f"demo_{demo_index(names[-1]) + 1 if names else 0}"
            tmp = _TMP_PREFIX + name
            while tmp in f:  # an undeletable leftover; pick a fresh name
                tmp += "_"
            _write_demo(f.create_group(tmp), episode)
            f.flush()
            f.move(tmp, f"data/{name}")
            _update_summary(f)
            f.flush()
        self._demo_names = [*names, name]
        return name

    def close(self) -> None:
        """Nothing is held open between episodes; kept for symmetry."""

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
