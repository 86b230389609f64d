"""A small request batcher: concurrent calls arriving within `wait_s` share one batched call.

The first caller of a batch is its leader: once no batched call is running, it waits up to
`wait_s` (or until `max_batch` callers joined), takes the batch, runs `run_batch(items) ->
results` (one result per item, same order) and hands each caller its own result or the batch's
exception. Batched calls are serialised: one runs at a time, and the callers that arrive while
it runs form the next batch (so under load batches grow even with wait_s = 0).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any


class _Slot:
    def __init__(self, item: Any):
        self.item = item
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class Batcher:
    """submit(item) blocks until run_batch has produced that item's result."""

    def __init__(self, run_batch: Callable[[list], Sequence], max_batch: int = 8, wait_s: float = 0.005):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.wait_s = max(0.0, wait_s)
        self.batch_sizes: list[int] = []  # one entry per batched call (for tests and metrics)
        self._pending: list[_Slot] = []
        self._cond = threading.Condition()
        self._run_lock = threading.Lock()

    def submit(self, item: Any) -> Any:
        slot = _Slot(item)
        with self._cond:
            self._pending.append(slot)
            leader = len(self._pending) == 1
            if len(self._pending) >= self.max_batch:
                self._cond.notify_all()
        if leader:
            self._lead()
        slot.done.wait()
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _lead(self) -> None:
        with self._run_lock:  # the batch is taken once the previous one is done: callers that arrive meanwhile join it
            with self._cond:
                self._cond.wait_for(lambda: len(self._pending) >= self.max_batch, timeout=self.wait_s)
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch:]
                if self._pending:  # the overflow needs its own leader
                    threading.Thread(target=self._lead, daemon=True).start()
            if batch:  # empty when another leader already took this caller's item
                self._run(batch)

    def _run(self, batch: list[_Slot]) -> None:
        self.batch_sizes.append(len(batch))
        try:
            results = list(self.run_batch([slot.item for slot in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"batched call returned {len(results)} results for {len(batch)} inputs")
            for slot, result in zip(batch, results):
                slot.result = result
        except BaseException as error:  # noqa: BLE001 - handed to every caller of the batch
            for slot in batch:
                slot.error = error
        finally:
            for slot in batch:
                slot.done.set()
