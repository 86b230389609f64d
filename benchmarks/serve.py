"""`vla bench serve`: what serving a policy over gRPC costs, against two common alternatives, in one run.

A null policy (a fixed (8, 8) chunk, no compute) behind three servers, each in a process of its own
started here (spawned, ports chosen free at run time, shut down at the end):
    grpc       this project's vla.v1.PolicyService (policies/server.py), clients via PolicyConnection
    websocket  openpi-style websocket + msgpack        (benchmarks/serve_comparators.py)
    fastapi    OpenVLA-style FastAPI + JSON on uvicorn (benchmarks/serve_comparators.py)
    grpc_floor bare grpcio answering fixed reply bytes to the same request bytes (no parsing, validation,
               sessions or policy): the library's own ceiling, to tell grpcio's cost from this project's
One payload for all: two 128x128 RGB cameras (RAW_RGB8 on gRPC), 7 joints and the gripper (benchmarks/serve_setup.py;
the clients: benchmarks/serve_clients.py; the tables: benchmarks/serve_report.py).

Measured (clients are threads of this process, each with its own connection and session):
- round-trip latency p50/p99 of one client: gRPC unary Act, gRPC bidi StreamActions, each comparator,
  and an in-process call of the same servicer code (encode observation, session + sequence check,
  decode + validate, policy, encode actions, decode + validate actions) without wire or serialization.
  gRPC overhead = unary p50 - in-process p50;
- throughput (completed requests/s) with 1, 4 and 16 concurrent clients, for each server.
Every figure is measured `repeats` times, `seconds` each, interleaved across servers (the machine may be
busy with other work: interleaving spreads that drift over all of them). Latency percentiles pool all
samples of all repeats; throughput is the median of the repeats (each repeat's value is kept too).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from benchmarks.serve_clients import ComparatorClient, GrpcStreamClient, GrpcUnaryClient, InProcessClient
from benchmarks.serve_report import build_policy_report, build_report, machine_info
from benchmarks.serve_setup import (BATCH_WAIT_MS, COMPARATORS, CONCURRENCY, POLICY_SERVERS, SERVERS,
                                  WARMUP_REQUESTS, NullPolicy, bench_spec, check_checkpoint_takes_the_payload,
                                  comparator_observation, floor_messages, grpc_messages, make_payload)

START_TIMEOUT_S = 120.0


# -- server processes ----------------------------------------------------------------------
def policy_factory(policy: str | None, batched: bool) -> Callable[[], object]:
    """What a benchmark server serves: the null policy, or a checkpoint (`default` or a directory) run flat,
    each session (connection) with its own copy that shares the weights; `batched`: concurrent sessions'
    predictions share one forward pass (what `vla serve` does), up to the highest concurrency level."""
    if policy is None:
        return NullPolicy
    from policies.server import per_session_copies
    from sim.policy_loader import PolicyOptions, make_policy

    options = PolicyOptions(flat=True, ensemble=False, max_batch=max(CONCURRENCY) if batched else 0,
                            batch_wait_ms=BATCH_WAIT_MS)
    return per_session_copies(lambda: make_policy(policy, None, options))


def _serve_until_stopped(kind: str, policy: str | None, conn) -> dict:
    """Serve with `kind` until told to stop; returns what the server saw (gRPC: the forward passes' batch sizes)."""
    def ready(info: dict) -> None:
        conn.send(("ready", info.pop("port"), info))

    if kind == "grpc":
        from policies.server import serve

        handle = serve(policy_factory(policy, batched=True), bench_spec(), "127.0.0.1", 0,
                       max_concurrent=max(CONCURRENCY), batch_wait_ms=BATCH_WAIT_MS, lease_ms=600_000,
                       model_name=policy or "null")
        handle.wait_ready(START_TIMEOUT_S)
        ready({"port": handle.port})
        conn.recv()
        handle.stop(grace=1.0)
        predictor = getattr(handle.servicer.prototype, "predictor", None)
        return {"batch_sizes": batch_size_counts(getattr(predictor, "batch_sizes", []))}
    from benchmarks import serve_comparators as comparators

    if kind == "grpc_floor":
        request, reply = floor_messages()
        comparators.run_bare_grpc_server(request, reply, max(CONCURRENCY) + 8, ready, conn.recv)
        return {}
    run = comparators.run_websocket_server if kind == "websocket" else comparators.run_fastapi_server
    sock = comparators.bound_socket()
    port = sock.getsockname()[1]
    run(policy_factory(policy, batched=False), sock, lambda info: ready({**info, "port": port}), conn.recv)
    return {}


def _server_process(kind: str, policy: str | None, conn) -> None:
    """Child process: serve `policy` (None: the null policy) with `kind`, report ("ready", port, info), serve
    until told to stop, shut down cleanly, report ("stopped", info)."""
    try:
        conn.send(("stopped", _serve_until_stopped(kind, policy, conn)))
    except BaseException as error:  # noqa: BLE001 - reported to the parent, which raises
        conn.send(("error", f"{type(error).__name__}: {error}"))
        raise


def batch_size_counts(sizes: list[int]) -> dict[str, int]:
    """{batch size: forward passes of that size}."""
    return {str(size): sizes.count(size) for size in sorted(set(sizes))}


class ServerProcess:
    """A benchmark server in its own (spawned) process; a context manager that stops it."""

    def __init__(self, kind: str, policy: str | None = None):
        self.kind = kind
        context = multiprocessing.get_context("spawn")
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(target=_server_process, args=(kind, policy, child_conn),
                                       name=f"bench-{kind}", daemon=True)
        self.process.start()
        child_conn.close()
        self.stopped_cleanly = False
        self.final_info: dict = {}
        self.port, self.info = self._expect("ready", START_TIMEOUT_S)[1:]

    def _expect(self, what: str, timeout: float):
        if not self.conn.poll(timeout):
            raise RuntimeError(f"the {self.kind} benchmark server sent no {what!r} within {timeout:.0f} s")
        message = self.conn.recv()
        if message[0] == "error":
            raise RuntimeError(f"the {self.kind} benchmark server failed: {message[1]}")
        return message

    def stop(self) -> None:
        """Ask the server to shut down (it answers once it has); terminate it only if it does not."""
        if self.conn.closed:
            return
        said_stopped = False
        if self.process.is_alive():
            try:
                self.conn.send("stop")
                said, self.final_info = self._expect("stopped", 15.0)
                said_stopped = said == "stopped"
            except (RuntimeError, OSError, EOFError):
                pass
        self.process.join(10.0)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5.0)
        self.stopped_cleanly = said_stopped and self.process.exitcode == 0
        self.conn.close()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def running_servers(kinds: tuple[str, ...], policy: str | None = None) -> Iterator[dict[str, ServerProcess]]:
    """{kind: ServerProcess} serving `policy`, each stopped on leaving (the dict stays readable after)."""
    servers: dict[str, ServerProcess] = {}
    try:
        for kind in kinds:
            servers[kind] = ServerProcess(kind, policy)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def _finished(report: dict, wall_started: float) -> dict:
    report["wall_s"] = time.perf_counter() - wall_started
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    return report


# -- measurements --------------------------------------------------------------------------
def time_latency(client, seconds: float, warmup: int = WARMUP_REQUESTS, min_requests: int = 5) -> list[float]:
    """Round-trip times (ms) of back-to-back act() calls for `seconds` (at least min_requests)."""
    for _ in range(warmup):
        client.act()
    times = []
    deadline = time.perf_counter() + seconds
    while True:
        started = time.perf_counter()
        client.act()
        finished = time.perf_counter()
        times.append((finished - started) * 1000.0)
        if finished >= deadline and len(times) >= min_requests:
            return times


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds process `pid` has used (Linux /proc; NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_throughput(make_client: Callable[[], object], clients: int, seconds: float,
                    server_pid: int | None = None) -> dict:
    """`clients` threads, each with its own client, sending back to back for `seconds`. With server_pid, also
    the CPU time per request inside the window: of this process (the clients) and of the server's."""
    built = [make_client() for _ in range(clients)]
    counts, errors = [0] * clients, []
    barrier = threading.Barrier(clients + 1)
    window: dict[str, float] = {}

    def work(index: int) -> None:
        client = built[index]
        try:
            for _ in range(WARMUP_REQUESTS):
                client.act()
            barrier.wait()
            deadline = window["deadline"]
            while True:
                client.act()
                counts[index] += 1
                if time.perf_counter() >= deadline:
                    return
        except BaseException as error:  # noqa: BLE001 - re-raised by the caller
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(i,), name=f"bench-client-{i}") for i in range(clients)]
    try:
        for thread in threads:
            thread.start()
        # every client is connected and warm before the window opens
        while barrier.n_waiting < clients and not errors and any(t.is_alive() for t in threads):
            time.sleep(0.001)
        cpu_before = (time.process_time(), server_cpu_s(server_pid) if server_pid else float("nan"))
        started = time.perf_counter()
        window["deadline"] = started + seconds
        if not errors:
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                pass
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        cpu_after = (time.process_time(), server_cpu_s(server_pid) if server_pid else float("nan"))
    finally:
        for client in built:
            client.close()
    if errors:
        error = next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
        raise RuntimeError(f"a benchmark client failed: {type(error).__name__}: {error}") from error
    total = sum(counts)
    client_us, server_us = (1e6 * (after - before) / max(total, 1) for before, after in zip(cpu_before, cpu_after))
    return {"requests": total, "seconds": elapsed, "requests_per_s": total / elapsed,
            "client_cpu_us_per_request": client_us, "server_cpu_us_per_request": server_us}


def _check_arguments(seconds: float, repeats: int, concurrency: tuple[int, ...]) -> None:
    if seconds <= 0 or repeats < 1:
        raise ValueError(f"--seconds must be positive and --repeats at least 1, got {seconds} and {repeats}")
    if not concurrency or min(concurrency) < 1 or max(concurrency) > max(CONCURRENCY):
        raise ValueError(f"concurrency levels must lie in 1..{max(CONCURRENCY)}, got {concurrency}")


def _request_bytes(payload: dict, observation: dict) -> dict:
    """The size of one request on each wire, for the same payload."""
    from benchmarks import serve_comparators as comparators

    grpc_size = grpc_messages(payload)[0].ByteSize()
    return {"grpc": grpc_size, "grpc_floor": grpc_size,
            "websocket": comparators.WebsocketClient.request_bytes(observation),
            "fastapi": comparators.HttpJsonClient.request_bytes(observation)}


def _client_makers(ports: dict, spec, payload: dict, observation: dict) -> tuple[dict, dict]:
    """Client factories: per server (throughput) and per latency figure."""
    from benchmarks.serve_comparators import BareGrpcClient

    floor_request, floor_reply = floor_messages()
    makers = {
        "grpc": lambda: GrpcUnaryClient(ports["grpc"], spec, payload),
        "websocket": lambda: ComparatorClient("websocket", ports["websocket"], observation),
        "fastapi": lambda: ComparatorClient("fastapi", ports["fastapi"], observation),
        "grpc_floor": lambda: BareGrpcClient(ports["grpc_floor"], floor_request, len(floor_reply)),
    }
    latency_makers = {
        "in_process": lambda: InProcessClient(spec, payload),
        "grpc_unary": makers["grpc"],
        "grpc_stream": lambda: GrpcStreamClient(ports["grpc"], spec, payload),
        "websocket": makers["websocket"],
        "fastapi": makers["fastapi"],
        "grpc_floor": makers["grpc_floor"],
    }
    return makers, latency_makers


def _measure_latency(latency_makers: dict, seconds: float, samples: dict, repeat_p50: dict,
                     say: Callable[[str], None], label: str) -> None:
    """One repeat of every latency figure; appends to `samples` and `repeat_p50`."""
    for name, make in latency_makers.items():
        say(f"{label}: latency {name}")
        client = make()
        try:
            times = time_latency(client, seconds)
        finally:
            client.close()
        samples[name] += times
        repeat_p50[name].append(float(np.percentile(times, 50)))


def _measure_throughput(makers: dict, servers: dict, concurrency: tuple[int, ...], seconds: float, rates: dict,
                        say: Callable[[str], None], label: str) -> None:
    """One repeat of every throughput figure (each server in `makers`); appends to `rates`."""
    for clients in concurrency:
        for kind, make in makers.items():
            say(f"{label}: throughput {kind}, {clients} client(s)")
            rates[kind][clients].append(time_throughput(make, clients, seconds, servers[kind].process.pid))


def bench_serve(seconds: float = 3.0, repeats: int = 3, concurrency: tuple[int, ...] = CONCURRENCY,
                progress: Callable[[str], None] | None = None) -> dict:
    """Run every measurement (see the module docstring) and return the report dict."""
    _check_arguments(seconds, repeats, concurrency)
    say = progress or (lambda message: None)
    report = {"benchmark": "serve", "machine": machine_info()}
    wall_started = time.perf_counter()
    spec = bench_spec()
    payload = make_payload()
    observation = comparator_observation(payload)
    request_bytes = _request_bytes(payload, observation)

    latency_samples: dict[str, list[float]] = {name: [] for name in ("in_process", "grpc_unary", "grpc_stream",
                                                                     *COMPARATORS, "grpc_floor")}
    latency_repeat_p50: dict[str, list[float]] = {name: [] for name in latency_samples}
    rates: dict[str, dict[int, list[dict]]] = {kind: {n: [] for n in concurrency} for kind in SERVERS}

    say("starting the servers (spawned processes) ...")
    with running_servers(SERVERS) as servers:
        ports = {kind: server.port for kind, server in servers.items()}
        makers, latency_makers = _client_makers(ports, spec, payload, observation)
        for repeat in range(repeats):
            label = f"repeat {repeat + 1}/{repeats}"
            _measure_latency(latency_makers, seconds, latency_samples, latency_repeat_p50, say, label)
            _measure_throughput(makers, servers, concurrency, seconds, rates, say, label)

    report.update(build_report(latency_samples, latency_repeat_p50, rates, request_bytes, servers,
                               seconds=seconds, repeats=repeats, concurrency=concurrency))
    return _finished(report, wall_started)


def bench_serve_policy(policy: str, seconds: float = 3.0, repeats: int = 3, concurrency: tuple[int, ...] = CONCURRENCY,
                       progress: Callable[[str], None] | None = None) -> dict:
    """Throughput of serving a checkpoint (`vla bench serve --policy P`): the same payload and clients as the
    null benchmark, the checkpoint run flat behind gRPC (sessions' predictions batched, as `vla serve` does) and
    behind both comparators (one request at a time per connection, as their public servers run a model)."""
    from sim.policy_loader import checkpoint_dir

    _check_arguments(seconds, repeats, concurrency)
    check_checkpoint_takes_the_payload(checkpoint_dir(policy))
    say = progress or (lambda message: None)
    report = {"benchmark": "serve-policy", "machine": machine_info()}
    wall_started = time.perf_counter()
    spec, payload = bench_spec(), make_payload()
    observation = comparator_observation(payload)
    rates: dict[str, dict[int, list[dict]]] = {kind: {n: [] for n in concurrency} for kind in POLICY_SERVERS}
    say(f"starting the servers with {policy} (spawned processes) ...")
    with running_servers(POLICY_SERVERS, policy) as servers:
        ports = {kind: server.port for kind, server in servers.items()}
        makers = {kind: _client_makers(ports, spec, payload, observation)[0][kind] for kind in POLICY_SERVERS}
        for repeat in range(repeats):
            _measure_throughput(makers, servers, concurrency, seconds, rates, say, f"repeat {repeat + 1}/{repeats}")
    report.update(build_policy_report(policy, rates, servers, seconds=seconds, repeats=repeats,
                                      concurrency=concurrency))
    return _finished(report, wall_started)
