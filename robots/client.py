"""The robot client: a fixed-rate control loop fed by action chunks from a policy server.

Every tick (1 / spec.control_hz):
1. take a chunk that arrived since the last tick (replacing the queue; actions meant for ticks
   that already passed are skipped), and drop queued actions whose chunk has expired;
2. when the queue is at or below `refill_below` (default: half the last chunk) and no request is in
   flight, read the robot and ask for the next chunk on a background thread;
3. execute one action through the SafetyFilter. With no valid action the client holds the last
   commanded target (decelerating within the acceleration limits) for at most `hold_timeout_s`,
   then performs a controlled stop (driver.stop(); no further targets) until a fresh chunk comes.
An expired action (chunk received_at + expires_in_ms passed) is never executed. A restarted
server is picked up again: the connection starts a new session when the old one is unknown.
`clock`, `sleep` and `executor` are injectable: with a SimulatedTime clock and an InlineExecutor the loop runs
in simulated time (a simulated robot: every tick one period after the last, each request answered before the
tick goes on, however long the computer takes), reproducible on a loaded machine.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from robots.connection import ChunkReply, PolicyConnection
from robots.driver import Driver
from robots.safety import SafetyFilter
from robots.spec import RobotSpec

ACT, HOLD, STOP, IDLE = "act", "hold", "stop", "idle"


@dataclass(frozen=True)
class TickRecord:
    """What one tick did: mode (act/hold/stop/idle), when, the command sent (or None), and the
    subtask the server named for the executed action ("" when not acting)."""

    tick: int
    time: float
    mode: str
    command: np.ndarray | None = None
    expires_at: float | None = None
    subtask: str = ""


@dataclass
class ClientReport:
    ticks: int = 0
    modes: Counter = field(default_factory=Counter)
    chunks: int = 0
    expired_dropped: int = 0
    request_errors: int = 0
    inference_ms: float = 0.0  # summed over chunks (server side)
    round_trip_ms: float = 0.0  # summed over chunks (observation read -> chunk received)
    overruns: int = 0
    clipped: Counter = field(default_factory=Counter)
    last_error: str = ""
    errors_since_chunk: int = 0  # requests failed since the last chunk arrived

    @property
    def policy_lost(self) -> bool:
        """True when the run ended without a reachable policy: no chunk ever, or failures since the last one."""
        return self.chunks == 0 or self.errors_since_chunk > 0

    def summary(self) -> str:
        """One line: ticks by mode, chunks, and why the policy was lost (if it was)."""
        modes = ", ".join(f"{mode} {self.modes[mode]}" for mode in (ACT, HOLD, STOP, IDLE))
        line = f"ticks {self.ticks} ({modes}), chunks {self.chunks}, request errors {self.request_errors}"
        if not self.policy_lost:
            return line
        why = self.last_error or "no reply before the run ended"
        return f"{line}; no reachable policy at the end ({self.errors_since_chunk} failed requests since the " \
               f"last chunk): {why}"


@dataclass
class _Pending:
    future: Future
    obs_tick: int
    sent_at: float


class SimulatedTime:
    """A clock that moves only when slept on: the loop's ticks come exactly one period apart in its time."""

    def __init__(self, start: float = 0.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)

    def loop_options(self) -> dict:
        """RobotClient's `clock`, `sleep` and `executor` for a loop run in this time."""
        return {"clock": self, "sleep": self.sleep, "executor": InlineExecutor()}


class InlineExecutor:
    """Runs each request at once on the control loop's own thread (an in-process command source that reads
    state the loop changes, or tests in simulated time)."""

    def submit(self, fn, *args) -> Future:
        future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as error:  # noqa: BLE001 - handed to the loop through the future, like a failed RPC
            future.set_exception(error)
        return future

    def shutdown(self, **kwargs) -> None:
        pass


class RobotClient:
    """driver: a robots.driver.Driver; policy: a PolicyConnection or a "host:port" target."""

    def __init__(self, driver: Driver, policy: PolicyConnection | str, spec: RobotSpec, instruction: str, *,
                 refill_below: int | None = None, hold_timeout_s: float = 0.2, retry_s: float = 0.1,
                 token: str | None = None, clock=time.monotonic, sleep=time.sleep, executor: Executor | None = None,
                 keep_records: bool = False):
        """keep_records: remember every tick's TickRecord in .records (tests, debugging)."""
        self.driver, self.spec, self.instruction = driver, spec, instruction
        self.owns_connection = isinstance(policy, str)
        self.connection = PolicyConnection(policy, spec, token=token) if isinstance(policy, str) else policy
        self.refill_below, self.hold_timeout_s, self.retry_s = refill_below, hold_timeout_s, retry_s
        self.clock, self.sleep = clock, sleep
        self.executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="vla-request")
        self.safety = SafetyFilter(spec)
        self.queue: deque[tuple[np.ndarray, float, str]] = deque()  # (action (N + 1,), expires_at, subtask)
        self.pending: _Pending | None = None
        self.tick_index = 0
        self.chunk_length = 1
        self.last_valid_at: float | None = None
        self.stopped = True  # nothing is commanded until the first chunk arrives
        self.next_request_at = 0.0
        self.report = ClientReport()
        self.records: list[TickRecord] | None = [] if keep_records else None

    # -- the loop --------------------------------------------------------------------------
    def run(self, steps: int | None = None, duration_s: float | None = None, should_stop=None) -> ClientReport:
        """Tick at spec.control_hz for `steps` ticks / `duration_s` seconds / until should_stop()."""
        dt = self.spec.dt
        started = next_tick = self.clock()
        while steps is None or self.tick_index < steps:
            if (duration_s is not None and self.clock() - started >= duration_s) or (should_stop and should_stop()):
                break
            self.tick()
            next_tick += dt
            delay = next_tick - self.clock()
            if delay > 0:
                self.sleep(delay)
            elif delay < -dt:  # fell more than a tick behind: do not try to catch up
                self.report.overruns += 1
                next_tick = self.clock()
        return self.report

    def tick(self) -> TickRecord:
        """One control tick (see the module docstring)."""
        now = self.clock()
        self._collect_reply(now)
        self._drop_expired(now)
        joints, gripper = self.driver.read_state()
        refill_below = self.refill_below if self.refill_below is not None else max(1, self.chunk_length // 2)
        if len(self.queue) <= refill_below and self.pending is None and now >= self.next_request_at:
            self._request(now, joints, gripper)
        if self.queue:
            record = self._execute(now, joints, gripper)
        elif self.stopped:
            record = TickRecord(self.tick_index, now, IDLE)
        elif now - self.last_valid_at <= self.hold_timeout_s:
            record = self._hold(now, joints, gripper)
        else:
            record = self._stop(now)
        self.tick_index += 1
        self.report.ticks += 1
        self.report.modes[record.mode] += 1
        if self.records is not None:
            self.records.append(record)
        return record

    def close(self) -> None:
        """Stop the request thread (and the connection, if this client opened it)."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.owns_connection:
            self.connection.close()

    # -- chunks ----------------------------------------------------------------------------
    def _request(self, now: float, joints: np.ndarray, gripper: float) -> None:
        images = self.driver.read_images()
        future = self.executor.submit(self._fetch_chunk, images, joints, gripper)
        self.pending = _Pending(future, self.tick_index, now)

    def _fetch_chunk(self, images: dict, joints: np.ndarray, gripper: float) -> ChunkReply:
        """Runs on the request thread; stamps the reply's arrival with this loop's clock."""
        if self.connection.session_id is None:
            self.connection.start(self.instruction)
        return replace(self.connection.act(images, joints, gripper), received_at=self.clock())

    def _collect_reply(self, now: float) -> None:
        if self.pending is None or not self.pending.future.done():
            return
        pending, self.pending = self.pending, None
        try:
            reply: ChunkReply = pending.future.result()
        except Exception as error:  # noqa: BLE001 - the server is down or answered an error: retry later
            self.report.request_errors += 1
            self.report.errors_since_chunk += 1
            self.report.last_error = str(error).replace("\n", " ")
            self.next_request_at = now + self.retry_s
            return
        self.report.chunks += 1
        self.report.errors_since_chunk = 0
        self.report.inference_ms += reply.inference_ms
        self.report.round_trip_ms += (reply.received_at - pending.sent_at) * 1000.0
        self.chunk_length = len(reply.actions)
        skip = min(self.tick_index - pending.obs_tick, len(reply.actions) - 1)  # ticks already gone by
        self.queue = deque((action, reply.expires_at, reply.subtask) for action in reply.actions[skip:])

    def _drop_expired(self, now: float) -> None:
        while self.queue and self.queue[0][1] < now:
            self.queue.popleft()
            self.report.expired_dropped += 1

    # -- commands --------------------------------------------------------------------------
    def _execute(self, now: float, joints: np.ndarray, gripper: float) -> TickRecord:
        action, expires_at, subtask = self.queue.popleft()
        if self.stopped:
            self.safety.reset()  # resume from rest, relative to the measured joints
            self.stopped = False
        command = self._send(action, joints, gripper)
        self.last_valid_at = now
        return TickRecord(self.tick_index, now, ACT, command, expires_at, subtask)

    def _hold(self, now: float, joints: np.ndarray, gripper: float) -> TickRecord:
        target = self.safety.previous if self.safety.previous is not None else joints
        grip = self.safety.gripper if self.safety.gripper is not None else gripper
        command = self._send(np.append(target, grip), joints, gripper)
        return TickRecord(self.tick_index, now, HOLD, command)

    def _stop(self, now: float) -> TickRecord:
        self.driver.stop()
        self.stopped = True
        self.safety.reset()
        return TickRecord(self.tick_index, now, STOP)

    def _send(self, command: np.ndarray, joints: np.ndarray, gripper: float) -> np.ndarray:
        result = self.safety.filter(command, joints, self.spec.dt, current_gripper=gripper)
        self.report.clipped.update(result.clipped)
        self.driver.send_command(result.command)
        return result.command
