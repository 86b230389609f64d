"""Server interceptors that keep one misbehaving peer from hurting the others.

- StreamGuard: every streaming RPC (StreamActions, health Watch, reflection) takes a stream slot:
  at most `max_per_peer` per peer address and `max_total` in all, so streams can never take the
  threads that unary calls (GetInfo, StartSession, Act, health Check) run on. A request stream that
  sends nothing for `idle_s` seconds ends with DEADLINE_EXCEEDED.
- ParseGuard: request bytes that are not a valid message end the call with INVALID_ARGUMENT
  (grpcio's own answer would be INTERNAL "Exception deserializing request!").

    server = grpc.server(pool, interceptors=[token_check, StreamGuard(StreamLimits()), ParseGuard()])
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc

from robots.transport import behavior_of, handler_with


@dataclass(frozen=True)
class StreamLimits:
    """max_total streams at once, max_per_peer from one peer address, idle_s without a request."""

    max_total: int = 16
    max_per_peer: int = 4
    idle_s: float = 5.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_per_peer <= self.max_total:
            raise ValueError(f"stream limits: need 1 <= max_per_peer ({self.max_per_peer}) <= max_total "
                             f"({self.max_total})")
        if not self.idle_s > 0:
            raise ValueError(f"stream limits: idle_s must be positive, got {self.idle_s}")


def peer_address(peer: str) -> str:
    """The address part of a gRPC peer string, without the port: "ipv4:10.0.0.5:51234" -> "ipv4:10.0.0.5",
    "ipv6:[::1]:51234" -> "ipv6:[::1]"; other forms (unix sockets) are kept whole."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return f"{kind}:{rest.rsplit(':', 1)[0]}"
    if kind == "ipv6" and "]" in rest:
        return f"{kind}:{rest[:rest.index(']') + 1]}"
    return peer


class StreamSlots:
    """Counts open streams per peer address; `take` refuses beyond the limits."""

    def __init__(self, limits: StreamLimits):
        self.limits = limits
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def take(self, peer: str) -> str | None:
        """None when a slot was taken for `peer`, else why not (release() only after a successful take)."""
        with self._lock:
            if self._open[peer] >= self.limits.max_per_peer:
                return (f"streams: {peer} already holds {self._open[peer]} open streams (at most "
                        f"{self.limits.max_per_peer} per peer); close one, or use Act")
            if sum(self._open.values()) >= self.limits.max_total:
                return f"streams: the server holds its maximum of {self.limits.max_total} open streams; retry later"
            self._open[peer] += 1
            return None

    def release(self, peer: str) -> None:
        with self._lock:
            self._open[peer] -= 1
            if self._open[peer] <= 0:
                del self._open[peer]

    def held(self) -> int:
        with self._lock:
            return sum(self._open.values())


class StreamIdle(Exception):
    """No request arrived on a stream within the idle limit."""


class IdleLimitedRequests:
    """Iterates a request stream, raising StreamIdle when no request comes within idle_s.

    grpcio's request iterator blocks without a timeout, so a reader thread pulls from it and hands
    requests over one at a time (no read-ahead beyond one message: the client's flow control holds).
    The reader ends when the call ends, which the server's answer to StreamIdle does."""

    def __init__(self, requests: Iterator, idle_s: float):
        self._idle_s = idle_s
        self._handoff: queue.Queue = queue.Queue(maxsize=1)
        self._closed = threading.Event()
        threading.Thread(target=self._read, args=(requests,), name="vla-stream-reader", daemon=True).start()

    def __iter__(self) -> "IdleLimitedRequests":
        return self

    def __next__(self):
        try:
            kind, value = self._handoff.get(timeout=self._idle_s)
        except queue.Empty:
            self.close()
            raise StreamIdle(f"stream idle: no request for {self._idle_s:g} s; open a new stream to go on") from None
        if kind == "request":
            return value
        self.close()
        if kind == "end":
            raise StopIteration
        raise value

    def close(self) -> None:
        self._closed.set()

    def _read(self, requests: Iterator) -> None:
        try:
            for request in requests:
                if not self._offer(("request", request)):
                    return
            self._offer(("end", None))
        except Exception as error:  # noqa: BLE001 - grpc.RpcError when the client cancels: hand it over
            self._offer(("error", error))

    def _offer(self, item) -> bool:
        """Hand item over once the consumer has taken the previous one; False once closed."""
        while not self._closed.is_set():
            try:
                self._handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


class StreamGuard(grpc.ServerInterceptor):
    """Stream slots per peer and in all, and an idle limit on request streams (see the module docstring)."""

    def __init__(self, limits: StreamLimits):
        self.limits = limits
        self.slots = StreamSlots(limits)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or not (handler.request_streaming or handler.response_streaming):
            return handler
        behavior = behavior_of(handler)
        if handler.request_streaming:
            behavior = self._idle_limited(behavior)
        guarded = self._slotted_stream if handler.response_streaming else self._slotted_call
        return handler_with(handler, lambda request, context: guarded(behavior, request, context))

    def _idle_limited(self, behavior: Callable) -> Callable:
        def run(requests, context):
            return behavior(IdleLimitedRequests(requests, self.limits.idle_s), context)

        return run

    def _slotted_stream(self, behavior: Callable, request, context):
        with self._slot(context):
            yield from behavior(request, context)

    def _slotted_call(self, behavior: Callable, request, context):
        with self._slot(context):
            return behavior(request, context)

    @contextlib.contextmanager
    def _slot(self, context):
        """A stream slot of the calling peer for the block (RESOURCE_EXHAUSTED when there is none); a
        request stream that goes idle inside ends with DEADLINE_EXCEEDED."""
        peer = peer_address(context.peer())
        refusal = self.slots.take(peer)
        if refusal:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
        try:
            yield
        except StreamIdle as idle:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(idle))
        finally:
            self.slots.release(peer)


@dataclass(frozen=True)
class UnparsableRequest:
    """What a tolerant deserializer returns for bytes that are not a valid message."""

    error: str


class ParseGuard(grpc.ServerInterceptor):
    """Answers INVALID_ARGUMENT (naming the method) to request bytes that do not parse."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method = handler_call_details.method
        behavior = behavior_of(handler)

        def checked(request, context):
            if handler.request_streaming:
                return behavior(_checked_requests(request, context, method), context)
            _reject_unparsable(request, context, method)
            return behavior(request, context)

        return handler_with(handler, checked, request_deserializer=_tolerant(handler.request_deserializer))


def _tolerant(deserialize: Callable[[bytes], object]) -> Callable[[bytes], object]:
    def parse(data: bytes):
        try:
            return deserialize(data)
        except Exception as error:  # noqa: BLE001 - protobuf's DecodeError and friends: answered by ParseGuard
            return UnparsableRequest(f"{type(error).__name__}: {error}")

    return parse


def _checked_requests(requests: Iterator, context, method: str) -> Iterator:
    for request in requests:
        _reject_unparsable(request, context, method)
        yield request


def _reject_unparsable(request, context, method: str) -> None:
    if isinstance(request, UnparsableRequest):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      f"request: the bytes are not a valid message for {method} ({request.error})")
