"""SQLite-style rollback journal for crash-safe in-place HDF5 write sessions.

HDF5 rewrites its metadata in place in several unordered writes, so a kill during a
flush could corrupt data that was already committed. A write session therefore keeps
a rollback journal "<file>-journal", as SQLite does: a header (magic, original file
size, inode) followed by records (page index, byte count, original bytes). Each
_PAGE-sized page's original bytes are appended before the file first changes there,
and deleting the journal is the commit. A leftover ("hot") journal thus describes the
last committed state: readers overlay it (PagedFile in reader mode), and the next
writer rolls the file back from it before starting (rollback).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import h5py

_PAGE = 4096
_MAGIC = b"VLAJRNL1"
_JOURNAL_HEAD = struct.Struct("<8sQQ")  # magic, original file size, inode of the file
_RECORD_HEAD = struct.Struct("<QQ")  # page index, byte count


class FileBusyError(OSError):
    """The file is locked by another write session."""


def journal_path(path: Path) -> Path:
    return path.with_name(path.name + "-journal")


def load_journal(path: Path, ino: int) -> tuple[int, dict[int, bytes]] | None:
    """Parse path's journal -> (original size, page index -> original bytes).

    None if there is none, or it is torn before its header or names another inode.
    A torn last record is dropped: its page had not been overwritten yet.
    """
    try:
        raw = journal_path(path).read_bytes()
    except FileNotFoundError:
        return None
    if len(raw) < _JOURNAL_HEAD.size:
        return None
    magic, size0, jino = _JOURNAL_HEAD.unpack_from(raw)
    if magic != _MAGIC or jino != ino:
        return None
    pages, pos = {}, _JOURNAL_HEAD.size
    while pos + _RECORD_HEAD.size <= len(raw):
        page, n = _RECORD_HEAD.unpack_from(raw, pos)
        pos += _RECORD_HEAD.size + n
        if pos <= len(raw):
            pages.setdefault(page, raw[pos - n : pos])
    return size0, pages


class PagedFile:
    """File object over an fd for h5py's "fileobj" driver.

    Writer mode (journal_fd given): before a page below size0 first changes, its
    original bytes are appended to the journal. Reader mode: journal pages are
    overlaid and the file ends at size0, i.e. the last committed state.
    """

    def __init__(self, fd: int, size0: int, journal_fd: int | None = None, pages=None):
        self.fd, self.size0, self.journal_fd, self.pos = fd, size0, journal_fd, 0
        self.pages: dict[int, bytes] = {} if pages is None else pages

    def seek(self, pos: int, whence: int = 0) -> int:
        end = self.size0 if self.journal_fd is None else os.fstat(self.fd).st_size
        self.pos = (0, self.pos, end)[whence] + pos
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, size: int) -> bytes:
        """Exactly `size` bytes from pos (zeros past the end, like HDF5's sec2 driver)."""
        pos, reader = self.pos, self.journal_fd is None
        n = max(0, min(size, self.size0 - pos)) if reader else size
        data = bytearray(os.pread(self.fd, n, pos).ljust(size, b"\0"))
        for page in range(pos // _PAGE, (pos + size - 1) // _PAGE + 1) if reader else ():
            orig, start = self.pages.get(page, b""), page * _PAGE
            lo, hi = max(start, pos), min(start + len(orig), pos + size)
            if lo < hi:
                data[lo - pos : hi - pos] = orig[lo - start : hi - start]
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

    def truncate(self, size: int) -> int:
        self._save(size, self.size0)
        os.ftruncate(self.fd, size)
        return size

    def flush(self) -> None:
        """Writes go straight to the OS; the commit fsyncs."""

    def __del__(self) -> None:
        if self.journal_fd is None:  # reader mode owns its fd
            os.close(self.fd)


def rollback(fd: int, path: Path) -> None:
    """Undo an interrupted write session from its journal, then delete the journal."""
    journal = load_journal(path, os.fstat(fd).st_ino)
    if journal is not None:
        for page, orig in journal[1].items():
            os.pwrite(fd, orig, page * _PAGE)
        os.ftruncate(fd, journal[0])
        os.fsync(fd)
    journal_path(path).unlink(missing_ok=True)


@contextlib.contextmanager
def write_session(path: Path, libver) -> Iterator[h5py.File]:
    """Yield path opened r+ under an exclusive lock and a rollback journal.

    Leaving the block normally commits (fsync, delete the journal); an exception
    or a crash leaves the file as it was before the session. libver is passed to
    h5py.File; FileBusyError is raised if another session holds the lock.
    """
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise FileBusyError(f"{path} is locked by another write session") from exc
        rollback(fd, path)
        size0 = os.fstat(fd).st_size
        jfd = os.open(journal_path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(jfd, _JOURNAL_HEAD.pack(_MAGIC, size0, os.fstat(fd).st_ino))
            with h5py.File(PagedFile(fd, size0, journal_fd=jfd), "r+", libver=libver) as f:
                yield f
            os.fsync(fd)
        except BaseException:
            rollback(fd, path)
            raise
        finally:
            os.close(jfd)
        journal_path(path).unlink()  # the commit point
    finally:
        os.close(fd)  # also releases the lock
