"""Sessions with leases: one writer per robot, strictly increasing sequence numbers.

A session binds a session id to one robot (type + instance) and to its own policy object.
Its lease lapses `lease_ms` after the last accepted request; until then nobody else can start
a session on that robot. Spot-style: a lapsed lease is gone, the client starts a new session.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class SessionError(Exception):
    """Base class; `field` names the request field at fault."""

    field = "session_id"


class UnknownSession(SessionError):
    pass


class LeaseHeld(SessionError):
    field = "robot"


class LeaseExpired(SessionError):
    pass


class SequenceError(SessionError):
    field = "sequence"


class TooManySessions(SessionError):
    field = "robot_instance"


@dataclass
class Session:
    """One client's hold on one robot. `lock` serialises its requests."""

    session_id: str
    robot_key: str
    instruction: str
    policy: Any
    lease_s: float
    expires_at: float
    last_sequence: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check_sequence(self, sequence: int) -> None:
        """Accept `sequence` only if it is above every one seen before (0 is never valid)."""
        if sequence <= self.last_sequence:
            raise SequenceError(f"sequence must increase strictly: got {sequence} after {self.last_sequence}")
        self.last_sequence = sequence


class SessionRegistry:
    """Thread-safe map session_id -> Session, and robot -> its live session."""

    def __init__(self, lease_ms: int = 5000, max_sessions: int = 64, clock: Callable[[], float] = time.monotonic):
        if lease_ms <= 0:
            raise ValueError(f"lease_ms must be positive, got {lease_ms}")
        self.lease_ms = lease_ms
        self.max_sessions = max_sessions
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._by_robot: dict[str, str] = {}
        self._lock = threading.Lock()

    def start(self, robot_key: str, instruction: str, policy_factory: Callable[[], Any]) -> Session:
        """A new session on robot_key, unless a live one holds it (LeaseHeld)."""
        with self._lock:
            now = self.clock()
            self._drop_expired(now)
            if robot_key in self._by_robot:
                raise LeaseHeld(f"robot {robot_key!r} is leased by another session for up to {self.lease_ms} ms "
                                "more; end that session or wait for its lease to lapse")
            if len(self._sessions) >= self.max_sessions:
                raise TooManySessions(f"the server already holds {self.max_sessions} sessions")
            lease_s = self.lease_ms / 1000.0
            session = Session(secrets.token_hex(16), robot_key, instruction, None, lease_s, now + lease_s)
            self._sessions[session.session_id] = session
            self._by_robot[robot_key] = session.session_id
        try:
            session.policy = policy_factory()
            session.policy.reset(instruction)
        except BaseException:
            self.end(session.session_id)
            raise
        return session

    def get(self, session_id: str) -> Session:
        """The live session (UnknownSession / LeaseExpired otherwise)."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                raise UnknownSession(f"no session {session_id!r} (never started, ended, or the server restarted)")
            if self.clock() > session.expires_at:
                self._remove(session)
                raise LeaseExpired(f"the lease of session {session_id!r} lapsed; start a new session")
            return session

    def renew(self, session: Session) -> None:
        with self._lock:
            session.expires_at = self.clock() + session.lease_s

    def end(self, session_id: str) -> None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                raise UnknownSession(f"no session {session_id!r}")
            self._remove(session)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _drop_expired(self, now: float) -> None:
        for session in [s for s in self._sessions.values() if now > s.expires_at]:
            self._remove(session)

    def _remove(self, session: Session) -> None:
        self._sessions.pop(session.session_id, None)
        if self._by_robot.get(session.robot_key) == session.session_id:
            del self._by_robot[session.robot_key]
