"""HDF5 episode datasets: robomimic-compatible layout plus language annotations.

    /data           attrs: env, env_args (JSON), total (sum of num_samples)
    /data/demo_<i>  attrs: num_samples, model_file, instruction, seed, goal (JSON),
                    success, Episode.extra_attrs; datasets: actions (T, A) float32,
                    obs/<key> (T, ...) (images (T, H, W, 3) uint8 gzip), states
                    (T, 1+nq+nv) float64, rewards (T,), dones (T,), subtasks (T,) str
    /mask/train, /mask/valid   demo names as bytes; demo_9, demo_19, ... are valid

Crash safety: the writer opens the file once per episode, writes the demo under a
temporary root-level group, renames it to /data/demo_<i> as the last step and
closes the file. HDF5 itself rewrites metadata in place in several unordered writes,
so a kill during a flush could still corrupt *old* data; therefore every write
session also keeps a rollback journal ("<file>-journal", as in SQLite): the
original bytes of each page are saved before HDF5 first overwrites them, and
deleting the journal is the commit. Readers overlay a leftover journal (the last
committed state); the next writer rolls it back.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from sim.episode import Episode

# Attributes > 64 KB (model_file) need the HDF5 1.8+ object header format.
LIBVER = ("v108", "latest")
VALID_EVERY = 10  # demo_9, demo_19, ... go to the validation mask
_TMP_PREFIX = "_incomplete_"
_DEMO_RE = re.compile(r"^demo_(\d+)$")
_RESERVED_ATTRS = ("num_samples", "model_file", "instruction", "seed", "goal", "success")
_FIX_REWRITE = "Re-run `vla collect` or restore it from a backup"
_PAGE = 4096
_JOURNAL_MAGIC = b"VLAJRNL1"
_JOURNAL_HEAD = struct.Struct("<8sQQ")  # magic, original file size, inode of the file
_RECORD_HEAD = struct.Struct("<QQ")  # page index, byte count


class DatasetError(Exception):
    """A dataset file is missing, unreadable, or does not follow the layout."""


@dataclass(frozen=True)
class DatasetInfo:
    """Summary of a validated dataset file.

    demo_names: demo group names sorted by numeric index, e.g. ("demo_0", "demo_1").
    total: sum of num_samples over all demos.
    """

    path: Path
    env_name: str
    env_args: dict
    demo_names: tuple[str, ...]
    total: int

    @property
    def num_demos(self) -> int:
        return len(self.demo_names)


def demo_index(name: str) -> int:
    """Return i for a group name "demo_<i>"; raise ValueError otherwise."""
    m = _DEMO_RE.match(name)
    if m is None:
        raise ValueError(f"not a demo group name: {name!r} (expected 'demo_<i>')")
    return int(m.group(1))


def split_masks(demo_names: list[str]) -> tuple[list[str], list[str]]:
    """Split demo names into (train, valid): index % 10 == 9 goes to valid."""
    is_valid = [demo_index(n) % VALID_EVERY == VALID_EVERY - 1 for n in demo_names]
    return ([n for n, v in zip(demo_names, is_valid) if not v],
            [n for n, v in zip(demo_names, is_valid) if v])


# ----------------------------------------------------------------------------- journal


def _journal_path(path: Path) -> Path:
    return path.with_name(path.name + "-journal")


def _load_journal(path: Path, ino: int) -> tuple[int, dict[int, bytes]] | None:
    """Parse path's rollback journal -> (original file size, page -> original bytes).

    None if there is none, or its header is torn or names another file (inode).
    A torn last record is dropped: its page was not overwritten yet.
    """
    try:
        raw = _journal_path(path).read_bytes()
    except FileNotFoundError:
        return None
    if len(raw) < _JOURNAL_HEAD.size:
        return None
    magic, size0, jino = _JOURNAL_HEAD.unpack_from(raw)
    if magic != _JOURNAL_MAGIC or jino != ino:
        return None
    pages, pos = {}, _JOURNAL_HEAD.size
    while pos + _RECORD_HEAD.size <= len(raw):
        page, n = _RECORD_HEAD.unpack_from(raw, pos)
        pos += _RECORD_HEAD.size
        if pos + n > len(raw):
            break
        pages.setdefault(page, raw[pos : pos + n])
        pos += n
    return size0, pages


class _PagedFile:
    """Minimal file object over an fd for h5py's "fileobj" driver.

    Writer mode (journal_fd given): the original bytes of each page below size0
    are appended to the journal before the page is first changed. Reader mode:
    journal pages are overlaid and the file ends at size0 (last committed state).
    """

    def __init__(self, fd: int, size0: int, journal_fd: int | None = None, pages: dict | None = None):
        self.fd, self.size0, self.journal_fd, self.pos = fd, size0, journal_fd, 0
        self.pages = {} if pages is None else pages  # page index -> original bytes

    def seek(self, pos: int, whence: int = 0) -> int:
        end = self.size0 if self.journal_fd is None else os.fstat(self.fd).st_size
        self.pos = (0, self.pos, end)[whence] + pos
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, size: int = -1) -> bytes:
        """Return exactly `size` bytes from pos (zeros past the end, like HDF5's sec2)."""
        end = self.size0 if self.journal_fd is None else self.pos + size
        data = bytearray(os.pread(self.fd, max(0, min(size, end - self.pos)), self.pos).ljust(size, b"\0"))
        if self.journal_fd is None:
            for page in range(self.pos // _PAGE, (self.pos + size - 1) // _PAGE + 1):
                orig, start = self.pages.get(page, b""), page * _PAGE
                lo, hi = max(start, self.pos), min(start + len(orig), self.pos + size)
                if lo < hi:
                    data[lo - self.pos : hi - self.pos] = orig[lo - start : hi - start]
        self.pos += size
        return bytes(data)

    def _save(self, start: int, stop: int) -> None:
        """Journal the original bytes of every page overlapping [start, min(stop, size0))."""
        for page in range(start // _PAGE, (min(stop, self.size0) + _PAGE - 1) // _PAGE):
            if page not in self.pages:
                orig = os.pread(self.fd, min(_PAGE, self.size0 - page * _PAGE), page * _PAGE)
                os.write(self.journal_fd, _RECORD_HEAD.pack(page, len(orig)) + orig)
                self.pages[page] = orig

    def write(self, data) -> int:
        data = memoryview(data).cast("B")
        self._save(self.pos, self.pos + len(data))
        done = 0
        while done < len(data):
            done += os.pwrite(self.fd, data[done:], self.pos + done)
        self.pos += done
        return done

    def truncate(self, size: int | None = None) -> int:
        size = self.pos if size is None else size
        self._save(size, self.size0)
        os.ftruncate(self.fd, size)
        return size

    def flush(self) -> None:
        """Writes go straight to the OS; durability is handled at commit."""

    def __del__(self) -> None:
        if self.journal_fd is None:  # reader mode owns its fd
            os.close(self.fd)


def _rollback(fd: int, path: Path) -> None:
    """Undo an interrupted write session using its journal, then delete the journal."""
    journal = _load_journal(path, os.fstat(fd).st_ino)
    if journal is not None:
        size0, pages = journal
        for page, orig in pages.items():
            os.pwrite(fd, orig, page * _PAGE)
        os.ftruncate(fd, size0)
        os.fsync(fd)
    _journal_path(path).unlink(missing_ok=True)


@contextlib.contextmanager
def _write_session(path: Path) -> Iterator[h5py.File]:
    """Open path r+ under an exclusive lock and a rollback journal.

    Leaving the block normally commits (fsync, delete the journal); an exception
    or a crash leaves the file as it was before the session.
    """
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise DatasetError(f"{path} is being written by another process: wait for it "
                               "or choose another --out") from exc
        _rollback(fd, path)
        size0 = os.fstat(fd).st_size
        jfd = os.open(_journal_path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(jfd, _JOURNAL_HEAD.pack(_JOURNAL_MAGIC, size0, os.fstat(fd).st_ino))
            with h5py.File(_PagedFile(fd, size0, journal_fd=jfd), "r+", libver=LIBVER) as f:
                yield f
            os.fsync(fd)
        except BaseException:
            _rollback(fd, path)
            raise
        finally:
            os.close(jfd)
        _journal_path(path).unlink()  # the commit point
    finally:
        os.close(fd)  # also releases the lock


# ----------------------------------------------------------------------------- reading


def _open_read(path: Path) -> h5py.File:
    """Open read-only without locking (last committed state), mapping failures to DatasetError."""
    if not path.exists():
        raise DatasetError(f"{path} does not exist: check the path or run `vla collect` first")
    if not path.is_file():
        raise DatasetError(f"{path} is not a regular file: pass the path of an .hdf5 dataset")
    try:
        journal = _load_journal(path, path.stat().st_ino)
        if journal is None:
            return h5py.File(path, "r", locking=False)
        fd = os.open(path, os.O_RDONLY)  # closed by _PagedFile.__del__
        return h5py.File(_PagedFile(fd, journal[0], pages=journal[1]), "r")
    except OSError as exc:
        raise DatasetError(
            f"{path} is not a readable HDF5 file (truncated or corrupt?): {exc}. {_FIX_REWRITE}"
        ) from exc


def _sorted_demo_names(data: h5py.Group) -> list[str]:
    """Names of the demo_<i> groups under /data, sorted by index."""
    return sorted((k for k in data.keys() if _DEMO_RE.match(k)), key=demo_index)


def _demo_length(path: Path, name: str, g: h5py.Group) -> int:
    """Validate one demo group; return T. Every per-step array must have length T."""
    where = f"{path}: /data/{name}"
    for key in ("actions", "states", "obs"):
        if key not in g:
            raise DatasetError(f"{where} has no '{key}' (demo is incomplete or corrupt). {_FIX_REWRITE}")
    if not isinstance(g["obs"], h5py.Group):
        raise DatasetError(f"{where}/obs is not a group. {_FIX_REWRITE}")
    t = int(g["actions"].shape[0]) if g["actions"].ndim else -1
    fields = {k: g[k] for k in ("actions", "states", "rewards", "dones", "subtasks") if k in g}
    fields.update({f"obs/{k}": v for k, v in g["obs"].items()})
    for field, dset in fields.items():
        n = int(dset.shape[0]) if isinstance(dset, h5py.Dataset) and dset.ndim else -1
        if n != t or t < 0:
            raise DatasetError(
                f"{where}/{field} has length {n}, expected {t} (same as actions). {_FIX_REWRITE}"
            )
    ns = g.attrs.get("num_samples")
    if ns is not None and int(ns) != t:
        raise DatasetError(f"{where} attr num_samples={int(ns)} but actions has {t} steps. {_FIX_REWRITE}")
    return t


def _data_group(path: Path, f: h5py.File) -> h5py.Group:
    """Return /data after checking it exists and names its env."""
    data = f.get("data")
    if not isinstance(data, h5py.Group):
        raise DatasetError(f"{path} has no /data group: not a vla-stack/robomimic dataset")
    if "env" not in data.attrs:
        raise DatasetError(f"{path}: /data has no 'env' attribute: not a vla-stack/robomimic dataset")
    return data


def _read_info(path: Path, f: h5py.File) -> DatasetInfo:
    """Validate an open file (every demo's fields and lengths) and summarise it."""
    data = _data_group(path, f)
    try:
        env_args = json.loads(data.attrs.get("env_args", "{}"))
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: /data attr env_args is not valid JSON ({exc}). {_FIX_REWRITE}") from exc
    names = _sorted_demo_names(data)
    total = 0
    for name in names:
        g = data[name]
        if not isinstance(g, h5py.Group):
            raise DatasetError(f"{path}: /data/{name} is not a group. {_FIX_REWRITE}")
        total += _demo_length(path, name, g)
    return DatasetInfo(path, str(_py_attr(data.attrs["env"])), env_args, tuple(names), total)


def open_dataset(path: str | os.PathLike) -> DatasetInfo:
    """Open and validate a dataset file; raise DatasetError naming any problem."""
    path = Path(path)
    with _open_read(path) as f:
        try:
            return _read_info(path, f)
        except (OSError, KeyError, RuntimeError, ValueError) as exc:
            raise DatasetError(f"{path} is corrupt ({exc}). {_FIX_REWRITE}") from exc


def _py_attr(value):
    """Convert numpy scalars/bytes from h5py attrs to plain Python values."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _load_demo(path: Path, name: str, g: h5py.Group) -> Episode:
    """Load a validated demo group into an Episode."""
    t = _demo_length(path, name, g)
    attrs = {k: _py_attr(v) for k, v in g.attrs.items()}
    subtasks = list(g["subtasks"].asstr()[()]) if "subtasks" in g else [""] * t
    return Episode(
        seed=int(attrs.get("seed", 0)),
        instruction=str(attrs.get("instruction", "")),
        goal=json.loads(attrs.get("goal", "{}")),
        actions=g["actions"][()],
        observations={k: v[()] for k, v in g["obs"].items()},
        states=g["states"][()],
        rewards=g["rewards"][()] if "rewards" in g else np.zeros(t),
        dones=g["dones"][()] if "dones" in g else np.zeros(t, dtype=np.int64),
        subtasks=[str(s) for s in subtasks],
        model_file=str(attrs.get("model_file", "")),
        success=bool(attrs.get("success", True)),
        extra_attrs={k: v for k, v in attrs.items() if k not in _RESERVED_ATTRS},
    )


def read_episode(path: str | os.PathLike, demo_name: str) -> Episode:
    """Load every array and attribute of /data/<demo_name> into an Episode."""
    path = Path(path)
    with _open_read(path) as f:
        try:
            data = _data_group(path, f)
            g = data.get(demo_name)
            if not isinstance(g, h5py.Group) or not _DEMO_RE.match(demo_name):
                have = ", ".join(_sorted_demo_names(data)[:5]) or "none"
                raise DatasetError(f"{path} has no demo {demo_name!r} (demos: {have}...)")
            return _load_demo(path, demo_name, g)
        except (OSError, KeyError, RuntimeError, ValueError) as exc:
            raise DatasetError(f"{path}: cannot read /data/{demo_name} ({exc}). {_FIX_REWRITE}") from exc


def iter_episodes(path: str | os.PathLike) -> Iterator[Episode]:
    """Yield every episode in index order (the file is reopened per episode)."""
    for name in open_dataset(path).demo_names:
        yield read_episode(path, name)


# ----------------------------------------------------------------------------- writing


def _json_default(obj):
    """json.dumps fallback for numpy arrays and scalars."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _dumps(obj) -> str:
    return json.dumps(obj, default=_json_default, sort_keys=True)


def _check_episode(ep: Episode) -> int:
    """Validate per-step lengths before touching the file; return T."""
    t = ep.num_samples
    if t < 1 or np.ndim(ep.actions) != 2:
        raise ValueError(f"episode actions must be (T, A) with T >= 1, got shape {np.shape(ep.actions)}")
    if np.ndim(ep.states) != 2:
        raise ValueError(f"episode states must be (T, 1+nq+nv), got shape {np.shape(ep.states)}")
    per_step = {"states": ep.states, "rewards": ep.rewards, "dones": ep.dones, "subtasks": ep.subtasks}
    per_step.update({f"obs/{k}": v for k, v in ep.observations.items()})
    for field, value in per_step.items():
        n = len(value) if isinstance(value, (list, tuple)) else (np.shape(value) or (-1,))[0]
        if n != t:
            raise ValueError(f"episode {field} has length {n}, expected {t} (actions)")
    clash = set(ep.extra_attrs) & set(_RESERVED_ATTRS)
    if clash:
        raise ValueError(f"extra_attrs may not override reserved attributes {sorted(clash)}")
    return t


def _write_demo(g: h5py.Group, ep: Episode) -> None:
    """Fill an empty group with one episode's arrays and attributes."""
    g.create_dataset("actions", data=np.asarray(ep.actions, dtype=np.float32))
    g.create_dataset("states", data=np.asarray(ep.states, dtype=np.float64))
    g.create_dataset("rewards", data=np.asarray(ep.rewards))
    g.create_dataset("dones", data=np.asarray(ep.dones))
    g.create_dataset("subtasks", data=[str(s) for s in ep.subtasks], dtype=h5py.string_dtype())
    obs = g.create_group("obs")
    for key, value in ep.observations.items():
        arr = np.asarray(value)
        if arr.dtype == np.uint8 and arr.ndim == 4:  # images: one gzip chunk per frame
            obs.create_dataset(key, data=arr, chunks=(1, *arr.shape[1:]), compression="gzip")
        else:
            obs.create_dataset(key, data=arr)
    g.attrs["num_samples"] = ep.num_samples
    g.attrs["model_file"] = ep.model_file
    g.attrs["instruction"] = ep.instruction
    g.attrs["seed"] = int(ep.seed)
    g.attrs["goal"] = _dumps(ep.goal)
    g.attrs["success"] = bool(ep.success)
    for key, value in ep.extra_attrs.items():
        g.attrs[key] = value


def _update_summary(f: h5py.File) -> None:
    """Recompute /data attr total and rewrite /mask/train and /mask/valid."""
    names = _sorted_demo_names(f["data"])
    f["data"].attrs["total"] = int(sum(int(f["data"][n].attrs["num_samples"]) for n in names))
    masks = f.require_group("mask")
    for key, subset in zip(("train", "valid"), split_masks(names)):
        if key in masks:
            del masks[key]
        masks.create_dataset(key, data=np.array(subset, dtype="S") if subset else np.zeros(0, "S1"))


class DatasetWriter:
    """Append episodes to a dataset file, one open/write/close cycle per episode.

    Usage::

        with DatasetWriter("out.hdf5", "color_cubes", {"seed": 0}) as w:
            w.write(episode)  # -> "demo_0"
    """

    def __init__(self, path: str | os.PathLike, env_name: str, env_args: dict, append: bool = False):
        self.path = Path(path)
        self.env_name = env_name
        self.env_args = dict(env_args)
        if self.path.exists():
            self._init_append(append)
        else:
            self._init_create()

    def _init_create(self) -> None:
        """Create an empty dataset atomically (temp file + rename)."""
        if not self.path.parent.is_dir():
            raise DatasetError(
                f"cannot create {self.path}: directory {self.path.parent} does not exist. "
                "Create it first or choose another --out"
            )
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with h5py.File(tmp, "w", libver=LIBVER) as f:
                data = f.create_group("data")
                data.attrs["env"] = self.env_name
                data.attrs["env_args"] = _dumps(self.env_args)
                data.attrs["total"] = 0
                _update_summary(f)
            _journal_path(self.path).unlink(missing_ok=True)  # stale, from a deleted file
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise DatasetError(f"cannot create {self.path}: {exc}. Check permissions and disk space") from exc
        self._demo_names: list[str] = []

    def _init_append(self, append: bool) -> None:
        """Validate an existing file for appending and drop leftover temporary groups."""
        if not append:
            raise DatasetError(
                f"{self.path} already exists: pass --append to add episodes to it, "
                "or choose another --out (existing datasets are never overwritten)"
            )
        info = open_dataset(self.path)
        if info.env_name != self.env_name:
            raise DatasetError(
                f"{self.path} holds env {info.env_name!r}, cannot append {self.env_name!r} episodes: "
                "choose another --out"
            )
        with self._session() as f:
            for key in [k for k in f.keys() if k.startswith(_TMP_PREFIX)]:
                with contextlib.suppress(KeyError, OSError, RuntimeError):
                    del f[key]  # an unreadable leftover is harmless: it is outside /data
        self._demo_names = list(info.demo_names)

    @contextlib.contextmanager
    def _session(self) -> Iterator[h5py.File]:
        """A crash-safe write session; I/O failures become DatasetError (file unchanged)."""
        try:
            with _write_session(self.path) as f:
                yield f
        except OSError as exc:
            raise DatasetError(f"writing {self.path} failed ({exc}); the file was left unchanged. "
                               "Check permissions and disk space") from exc

    @property
    def num_demos(self) -> int:
        """Number of finished demos in the file."""
        return len(self._demo_names)

    def write(self, episode: Episode) -> str:
        """Write one episode as the next demo_<i>; return its name.

        All or nothing: on an exception or a crash the file keeps its previous demos.
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
        """Nothing is held open between episodes; kept for API symmetry."""

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
