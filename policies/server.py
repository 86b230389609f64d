"""The gRPC policy server: any Policy behind the vla.v1.PolicyService.

    handle = serve(HoldPolicy, panda_spec(), port=50051)
    handle.wait_ready(); handle.wait_for_termination()

What it enforces (see robots/proto/vla/v1/policy.proto):
- one writer per robot (leases, robots/sessions.py), strictly increasing sequence numbers;
- every observation is validated against the robot spec (INVALID_ARGUMENT naming the field);
  a bad request never takes the server down;
- at most `max_concurrent` inferences at a time: more get RESOURCE_EXHAUSTED, not a queue;
- streams are limited per peer and in all and end when idle (policies/rpc_guards.py), on threads of
  their own, so unary calls and health checks always find a thread; request bytes that do not parse
  get INVALID_ARGUMENT; string fields have length limits;
- a bearer token whenever it listens beyond loopback; optional TLS / mutual TLS;
- grpc.health.v1 (NOT_SERVING while the policy loads) and server reflection.
Each session owns the policy object `policy_factory()` builds for it (`per_session_copies`
turns a slow builder into such a factory: one load, a cheap copy per session). If the policy has
`act_batch(observations) -> chunks`, concurrent Act calls are answered by one batched call on a shared
instance (observations carry "instruction"): those that arrive while a batch runs, and with
`batch_wait_ms` > 0 those arriving within that time of the first. (Checkpoints batch inside their
shared predictor instead, keeping each session's own policy state: VlaPredictor.share_between_threads.)
Intervene hands an operator's subtask or instruction to the session's policy (`intervene`, policies/base.py)
under the session's lock, so it never races that session's Act: the next Act pursues it. An instruction
also becomes the session's instruction (what every later observation carries). A shared batched policy
keeps no subtask per session: it takes instructions only.
"""

from __future__ import annotations

import copy
import logging
import signal
import threading
import types
import time
from collections.abc import Callable
from concurrent import futures

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from policies.base import ActionChunk, Intervention, Policy
from policies.rpc_guards import ParseGuard, StreamGuard, StreamLimits
from robots import sessions as sess
from robots.batching import Batcher
from robots.codec import ValidationError, decode_observation, encode_actions
from robots.proto.vla.v1 import policy_pb2 as pb
from robots.proto.vla.v1 import policy_pb2_grpc as pb_grpc
from robots.spec import RobotSpec
from robots.transport import DEFAULT_MAX_MESSAGE_BYTES, BearerTokenInterceptor, TlsConfig, is_loopback, server_options

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PolicyService"].full_name
CONTROL_RPC_SLOTS = 8  # threads beyond the inference and stream slots, for GetInfo/StartSession/health/...
MAX_FIELD_CHARS = {"instruction": 1024, "robot": 64, "robot_instance": 128, "session_id": 64, "text": 1024}
INTERVENE_KINDS = {pb.AUTO: "auto", pb.SUBTASK: "subtask", pb.INSTRUCTION: "instruction"}  # wire -> policy
APPLIED_KINDS = {"subtask": pb.SUBTASK, "instruction": pb.INSTRUCTION}
SESSION_ERROR_CODES = {
    sess.UnknownSession: grpc.StatusCode.NOT_FOUND, sess.LeaseHeld: grpc.StatusCode.FAILED_PRECONDITION,
    sess.LeaseExpired: grpc.StatusCode.FAILED_PRECONDITION, sess.SequenceError: grpc.StatusCode.INVALID_ARGUMENT,
    sess.TooManySessions: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


class RpcFailure(Exception):
    """Ends one RPC with `code`; the server carries on."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


class PolicyServicer(pb_grpc.PolicyServiceServicer):
    def __init__(self, policy_factory: Callable[[], Policy], spec: RobotSpec, *, max_concurrent: int = 4,
                 batch_wait_ms: float = 0.0, lease_ms: int = 5000, model_name: str = "",
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
        self.policy_factory, self.spec, self.model_name = policy_factory, spec, model_name
        self.max_message_bytes = max_message_bytes
        self.registry = sess.SessionRegistry(lease_ms=lease_ms)
        self.slots = threading.BoundedSemaphore(max_concurrent)
        self.max_concurrent, self.batch_wait_ms = max_concurrent, batch_wait_ms
        self.ready = threading.Event()
        self.prototype: Policy | None = None
        self.batcher: Batcher | None = None

    def load(self) -> None:
        """Build the shared policy instance (what NOT_SERVING waits for) and the batcher."""
        self.prototype = self.policy_factory()
        if callable(getattr(self.prototype, "act_batch", None)):
            self.batcher = Batcher(self.prototype.act_batch, self.max_concurrent, self.batch_wait_ms / 1000.0)
        self.ready.set()

    # -- RPCs ----------------------------------------------------------------------------
    def GetInfo(self, request, context):
        return pb.PolicyInfo(
            robot=self.spec.name, num_joints=self.spec.num_joints, joint_names=list(self.spec.joint_names),
            cameras=[pb.CameraSpec(name=c.name, height=c.height, width=c.width) for c in self.spec.cameras],
            chunk_size=int(getattr(self.prototype, "chunk_size", 0) or 0), control_hz=self.spec.control_hz,
            model=self.model_name, max_message_bytes=self.max_message_bytes)

    def StartSession(self, request, context):
        return _answer(context, self._start_session, request)

    def Act(self, request, context):
        return _answer(context, self._act, request)

    def StreamActions(self, request_iterator, context):
        for request in request_iterator:
            yield _answer(context, self._act, request)

    def EndSession(self, request, context):
        return _answer(context, self._end_session, request)

    def Intervene(self, request, context):
        return _answer(context, self._intervene, request)

    # -- behaviour -----------------------------------------------------------------------
    def _start_session(self, request: pb.StartSessionRequest) -> pb.Session:
        self._require_ready()
        _check_lengths(request, "robot", "instruction", "robot_instance")
        if request.robot != self.spec.name:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT,
                             f"robot: this server drives {self.spec.name!r}, not {request.robot!r}")
        robot_key = f"{request.robot}/{request.robot_instance}"
        session = self.registry.start(robot_key, request.instruction, self.policy_factory)
        return pb.Session(session_id=session.session_id, lease_ms=self.registry.lease_ms)

    def _act(self, request: pb.ActRequest) -> pb.ActResponse:
        self._require_ready()
        _check_lengths(request, "session_id")
        if not request.session_id:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "session_id: empty; call StartSession first")
        session = self.registry.get(request.session_id)
        with session.lock:
            session.check_sequence(request.sequence)
            if not request.HasField("observation"):
                raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "observation: missing")
            obs = decode_observation(request.observation, self.spec, session.instruction)
            started = time.perf_counter()
            chunk = self._infer(session, obs)
            inference_ms = (time.perf_counter() - started) * 1000.0
            self.registry.renew(session)
        horizon_ms = (len(chunk.actions) + 1) / self.spec.control_hz * 1000.0  # the chunk + one tick of transit
        return pb.ActResponse(sequence=request.sequence, actions=encode_actions(chunk.actions),
                              subtask=chunk.subtask, inference_ms=inference_ms, expires_in_ms=horizon_ms)

    def _intervene(self, request: pb.InterveneRequest) -> pb.InterveneResponse:
        self._require_ready()
        _check_lengths(request, "session_id", "text")
        if not request.session_id:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "session_id: empty; call StartSession first")
        text = " ".join(request.text.split())
        if not text:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "text: empty; send a subtask phrase or an instruction")
        if not request.text.isprintable():
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "text: holds control characters (newlines, tabs, "
                             "...); send one line of printable text")
        if request.kind not in INTERVENE_KINDS:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, f"kind: unknown value {request.kind}; "
                             "AUTO, SUBTASK or INSTRUCTION")
        session = self.registry.get(request.session_id)
        with session.lock:  # an Act of this session runs under the same lock: the next one pursues this
            applied = self._apply_intervention(session, text, INTERVENE_KINDS[request.kind])
            if applied.kind == "instruction":
                session.instruction = applied.text
        return pb.InterveneResponse(applied=APPLIED_KINDS[applied.kind],
                                    subtask=applied.text if applied.kind == "subtask" else "",
                                    instruction=session.instruction)

    def _apply_intervention(self, session: sess.Session, text: str, kind: str) -> Intervention:
        if self.batcher is not None:  # one shared policy acts for every session: no subtask of its own
            if kind == "subtask":
                raise RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, "kind: this server batches every session "
                                 "on one shared policy, which keeps no subtask per session; send an INSTRUCTION")
            return Intervention("instruction", text, "the session's instruction")
        intervene = getattr(session.policy, "intervene", None)
        if not callable(intervene):
            raise RpcFailure(grpc.StatusCode.FAILED_PRECONDITION,
                             f"the served policy ({type(session.policy).__name__}) takes no interventions")
        try:
            return intervene(text, kind)
        except ValueError as error:  # e.g. a subtask for a flat policy
            raise RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, str(error).splitlines()[0]) from None
        except Exception as error:  # noqa: BLE001 - a policy bug fails this call, not the server
            log.exception("policy intervention failed")
            raise RpcFailure(grpc.StatusCode.INTERNAL, f"policy failed: {type(error).__name__}: {error}") from None

    def _end_session(self, request: pb.EndSessionRequest) -> pb.EndSessionResponse:
        _check_lengths(request, "session_id")
        self.registry.end(request.session_id)
        return pb.EndSessionResponse()

    def _infer(self, session: sess.Session, obs: dict) -> ActionChunk:
        """One chunk for obs, within the concurrency limit; checks the policy's answer."""
        if not self.slots.acquire(blocking=False):
            raise RpcFailure(grpc.StatusCode.RESOURCE_EXHAUSTED,
                             f"busy: {self.max_concurrent} inferences already running; retry later")
        try:
            chunk = self.batcher.submit(obs) if self.batcher else session.policy.act(obs)
        except Exception as error:  # noqa: BLE001 - a policy bug fails this call, not the server
            log.exception("policy failed")
            raise RpcFailure(grpc.StatusCode.INTERNAL, f"policy failed: {type(error).__name__}: {error}") from None
        finally:
            self.slots.release()
        actions = np.asarray(chunk.actions)
        if actions.ndim != 2 or actions.shape[1] != self.spec.action_dim:
            raise RpcFailure(grpc.StatusCode.INTERNAL, f"policy returned actions of shape {actions.shape}, "
                             f"{self.spec.name} takes (K, {self.spec.action_dim})")
        return chunk

    def _require_ready(self) -> None:
        if not self.ready.is_set():
            raise RpcFailure(grpc.StatusCode.UNAVAILABLE, "the policy is still loading; watch the health service")


def _check_lengths(request, *fields: str) -> None:
    """INVALID_ARGUMENT for a string field longer than its limit (MAX_FIELD_CHARS)."""
    for name in fields:
        length, limit = len(getattr(request, name)), MAX_FIELD_CHARS[name]
        if length > limit:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, f"{name}: {length} characters, at most {limit}")


def _answer(context: grpc.ServicerContext, handler: Callable, request):
    """handler(request), turning known failures into status codes (context.abort raises)."""
    try:
        return handler(request)
    except RpcFailure as failure:
        context.abort(failure.code, str(failure))
    except ValidationError as error:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
    except sess.SessionError as error:
        context.abort(SESSION_ERROR_CODES[type(error)], f"{error.field}: {error}")


class PolicyServer:
    """A started server: `port`, `wait_ready()`, `stop(grace)`, `wait_for_termination()`."""

    def __init__(self, server: grpc.Server, port: int, servicer: PolicyServicer, health_servicer):
        self.server, self.port, self.servicer, self.health = server, port, servicer, health_servicer
        self.load_error: BaseException | None = None
        self._loader = threading.Thread(target=self._load, name="policy-loader", daemon=True)
        self._loader.start()

    def _load(self) -> None:
        try:
            self.servicer.load()
        except BaseException as error:  # noqa: BLE001 - reported by wait_ready, health stays NOT_SERVING
            self.load_error = error
            expected = isinstance(error, (ValueError, OSError, RuntimeError))  # a bad checkpoint, not a bug
            log.log(logging.DEBUG if expected else logging.ERROR, "building the policy failed", exc_info=True)
            return
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """True once the policy is built; a failure to build it is raised here (RuntimeError, one line)."""
        self._loader.join(timeout)
        if self.load_error is not None:
            raise RuntimeError(f"building the policy failed: {self.load_error}") from self.load_error
        return self.servicer.ready.is_set()

    def stop(self, grace: float | None = 1.0) -> None:
        """Stop accepting calls; running calls get `grace` seconds to finish."""
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.server.stop(grace).wait()

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self.server.wait_for_termination(timeout)


def wait_for_stop_signal() -> str:
    """Block the main thread until SIGTERM (systemd, docker stop, kill) or SIGINT (Ctrl-C); returns
    the signal's name. Handlers are installed explicitly: a server started in the background of a
    script inherits an ignored SIGINT, and Python's default SIGTERM would skip the graceful stop."""
    received: list[str] = []
    stop = threading.Event()

    def on_signal(number, _frame):
        received.append(signal.Signals(number).name)
        stop.set()

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, on_signal)
    while not stop.wait(0.5):
        pass
    return received[0]


def per_session_copies(build: Callable[[], Policy]) -> Callable[[], Policy]:
    """A policy factory for policies that are slow to build (weights): the first call builds one,
    every call returns a deep copy of it that shares the heavy parts (its `predictor` attribute and
    the objects behind bound-method attributes, e.g. a planner head), so each session has its own
    episode state (instruction, ensembler, subtask) but not its own weights."""
    lock, built = threading.Lock(), []

    def factory() -> Policy:
        with lock:
            if not built:
                built.append(build())
        prototype = built[0]
        shared = [getattr(prototype, "predictor", None)]
        attributes = getattr(prototype, "__dict__", {}).values()
        shared += [value.__self__ for value in attributes if isinstance(value, types.MethodType)]
        return copy.deepcopy(prototype, {id(obj): obj for obj in shared if obj is not None})

    return factory


def serve(policy_factory: Callable[[], Policy], spec: RobotSpec, host: str = "127.0.0.1", port: int = 50051, *,
          token: str | None = None, tls: TlsConfig | None = None,
          max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, max_concurrent: int = 4, batch_wait_ms: float = 0.0,
          lease_ms: int = 5000, model_name: str = "", stream_limits: StreamLimits = StreamLimits()) -> PolicyServer:
    """Start serving (port 0: any free port, see .port); the policy is built in the background.

    Threads: max_concurrent inferences + stream_limits.max_total streams + CONTROL_RPC_SLOTS for the
    other calls; calls beyond twice that many at once get RESOURCE_EXHAUSTED from grpc."""
    if not is_loopback(host) and not token:
        raise ValueError(f"refusing to listen on {host} (not loopback) without a bearer token; "
                         "pass a token (vla serve --token-file F) or bind 127.0.0.1")
    if not is_loopback(host) and tls is None:
        log.warning("serving on %s without TLS: the bearer token crosses the network in clear text", host)
    if max_concurrent < 1:
        raise ValueError(f"max_concurrent must be at least 1, got {max_concurrent}")
    servicer = PolicyServicer(policy_factory, spec, max_concurrent=max_concurrent, batch_wait_ms=batch_wait_ms,
                              lease_ms=lease_ms, model_name=model_name, max_message_bytes=max_message_bytes)
    threads = max_concurrent + stream_limits.max_total + CONTROL_RPC_SLOTS
    guards = [StreamGuard(stream_limits), ParseGuard()]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="vla-rpc"),
                         interceptors=[BearerTokenInterceptor(token), *guards] if token else guards,
                         options=server_options(max_message_bytes), maximum_concurrent_rpcs=2 * threads)
    pb_grpc.add_PolicyServiceServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    bound = server.add_secure_port(address, tls.server_credentials()) if tls else server.add_insecure_port(address)
    if not bound:
        raise RuntimeError(f"could not bind {address}")
    server.start()
    log.info("vla.v1.PolicyService on %s (port %d, %s)", host, bound, "TLS" if tls else "plaintext")
    return PolicyServer(server, bound, servicer, health_servicer)
