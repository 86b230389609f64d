"""`vla bench soak`: N robots at R Hz against a served policy for D seconds, on loopback.

It starts `vla serve --policy P` as a child process on a free loopback port, waits for its health
check to say SERVING, then runs N clients (one session each, `robot_instance` soak-<i>) that send
one Act per tick of R Hz with a fixed synthetic observation of the served robot's size. It reports
requests, errors by status code, ticks missed (a reply that came later than the next tick),
latency p50/p99/p99.9/max, and the server's resident memory (RSS, from /proc) when it is ready,
every few seconds, and at the end.

    report = run_soak(SoakConfig(policy="hold", clients=4, hz=30, seconds=600))
    print(format_soak(report))
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

MAX_CLIENTS = 64
MAX_HZ = 200.0
MAX_SECONDS = 3600.0
RSS_EVERY_S = 5.0
READY_TIMEOUT_S = 300.0
INSTRUCTION = "lift the red cube"


@dataclass(frozen=True)
class SoakConfig:
    policy: str = "hold"
    clients: int = 4
    hz: float = 30.0
    seconds: float = 60.0

    def __post_init__(self) -> None:
        if not 1 <= self.clients <= MAX_CLIENTS:
            raise ValueError(f"soak: clients must be in [1, {MAX_CLIENTS}], got {self.clients}")
        if not 0 < self.hz <= MAX_HZ:
            raise ValueError(f"soak: hz must be in (0, {MAX_HZ:g}], got {self.hz}")
        if not 0 < self.seconds <= MAX_SECONDS:
            raise ValueError(f"soak: seconds must be in (0, {MAX_SECONDS:g}], got {self.seconds}")


@dataclass
class ClientTally:
    """What one client saw: latency of every answered request (ms), status names, missed ticks."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    missed_ticks: int = 0


def run_soak(config: SoakConfig, progress=None) -> dict:
    """Serve config.policy in a child process, soak it, stop it; the report as a dict."""
    port = _free_loopback_port()
    server = _start_server(config.policy, port)
    try:
        spec = _wait_until_serving(server, port)
        rss = [(0.0, _rss_mb(server.pid))]
        if progress:
            progress(f"{config.policy} serving on 127.0.0.1:{port} (RSS {rss[0][1]:.0f} MB); "
                     f"{config.clients} clients at {config.hz:g} Hz for {config.seconds:g} s")
        tallies = _run_clients(config, f"127.0.0.1:{port}", spec, rss, server.pid, progress)
        rss.append((config.seconds, _rss_mb(server.pid)))
        crashed = server.poll()
    finally:
        _stop(server)
    return _report(config, tallies, rss, crashed)


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(policy: str, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "vla.cli", "serve", "--policy", policy, "--host", "127.0.0.1",
               "--port", str(port)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_until_serving(server: subprocess.Popen, port: int):
    """The served robot's spec, once the health check says SERVING (the child's error if it exits)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + READY_TIMEOUT_S
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"the served policy exited ({server.returncode}): {server.stderr.read().strip()}")
            try:
                if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == \
                        health_pb2.HealthCheckResponse.SERVING:
                    return _served_spec(channel)
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"the served policy was not SERVING within {READY_TIMEOUT_S:g} s")


def _served_spec(channel):
    from robots.proto.vla.v1 import policy_pb2 as pb
    from robots.proto.vla.v1 import policy_pb2_grpc as pb_grpc
    from robots.spec import get_robot_spec

    info = pb_grpc.PolicyServiceStub(channel).GetInfo(pb.GetInfoRequest(), timeout=5)
    return get_robot_spec(info.robot, image_size=info.cameras[0].height, cameras=tuple(c.name for c in info.cameras))


def _run_clients(config: SoakConfig, target: str, spec, rss: list, pid: int, progress) -> list[ClientTally]:
    tallies = [ClientTally() for _ in range(config.clients)]
    deadline = time.monotonic() + config.seconds
    threads = [threading.Thread(target=_client_loop, args=(i, target, spec, config.hz, deadline, tallies[i]),
                                name=f"soak-client-{i}", daemon=True) for i in range(config.clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    while alive := [thread for thread in threads if thread.is_alive()]:
        alive[0].join(RSS_EVERY_S)
        elapsed = time.monotonic() - started
        if elapsed < config.seconds:
            rss.append((elapsed, _rss_mb(pid)))
            if progress:
                done = sum(sum(t.statuses.values()) for t in tallies)
                progress(f"{elapsed:6.0f} s: {done} requests, server RSS {rss[-1][1]:.0f} MB")
    return tallies


def _client_loop(index: int, target: str, spec, hz: float, deadline: float, tally: ClientTally) -> None:
    """One robot: an Act per tick until the deadline; a late reply skips the ticks it overran."""
    from robots.connection import PolicyConnection, PolicyRpcError

    images, joints = _observation(spec, seed=index)
    period = 1.0 / hz
    with PolicyConnection(target, spec, robot_instance=f"soak-{index}") as connection:
        next_tick = time.monotonic()
        while next_tick < deadline:
            time.sleep(max(0.0, next_tick - time.monotonic()))
            sent = time.perf_counter()
            try:
                if connection.session_id is None:
                    connection.start(INSTRUCTION)
                connection.act(images, joints, 0.0)
                tally.statuses["OK"] += 1
                tally.latencies_ms.append((time.perf_counter() - sent) * 1000.0)
            except PolicyRpcError as error:
                tally.statuses[error.code.name if error.code is not None else "INVALID_REPLY"] += 1
            next_tick += period
            behind = time.monotonic() - next_tick
            if behind > 0:
                skipped = int(behind // period) + 1
                tally.missed_ticks += skipped
                next_tick += skipped * period


def _observation(spec, seed: int) -> tuple[dict, np.ndarray]:
    """Fixed noise images of the served size and joints in the middle of their ranges."""
    rng = np.random.default_rng(seed)
    images = {c.name: rng.integers(0, 256, (c.height, c.width, 3), dtype=np.uint8) for c in spec.cameras}
    return images, (spec.lower() + spec.upper()) / 2.0


def _rss_mb(pid: int) -> float:
    """Resident memory of process pid in MB (Linux /proc), NaN where that cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _report(config: SoakConfig, tallies: list[ClientTally], rss: list, exit_code: int | None) -> dict:
    latencies = np.concatenate([np.asarray(t.latencies_ms, dtype=np.float64) for t in tallies])
    statuses = sum((t.statuses for t in tallies), Counter())
    percentiles = {name: float(np.percentile(latencies, q)) if latencies.size else float("nan")
                   for name, q in (("p50", 50), ("p99", 99), ("p99.9", 99.9), ("max", 100))}
    return {
        "benchmark": "soak", **asdict(config), "requests": sum(statuses.values()), "ok": statuses.get("OK", 0),
        "errors": {code: n for code, n in sorted(statuses.items()) if code != "OK"},
        "missed_ticks": sum(t.missed_ticks for t in tallies), "latency_ms": percentiles,
        "server_rss_mb": {"ready": rss[0][1], "end": rss[-1][1], "max": max(mb for _, mb in rss),
                          "samples": [[round(t, 1), round(mb, 1)] for t, mb in rss]},
        "server_exited_during_soak": exit_code is not None,
    }


def format_soak(report: dict) -> str:
    latency, rss = report["latency_ms"], report["server_rss_mb"]
    errors = ", ".join(f"{code} {n}" for code, n in report["errors"].items()) or "none"
    expected = report["clients"] * report["hz"] * report["seconds"]
    return "\n".join([
        f"soak: {report['policy']} served on loopback, {report['clients']} clients x {report['hz']:g} Hz Act "
        f"for {report['seconds']:g} s",
        f"requests {report['requests']} of {expected:.0f} ticks (missed ticks {report['missed_ticks']}), "
        f"ok {report['ok']}, errors: {errors}",
        f"latency ms: p50 {latency['p50']:.2f}  p99 {latency['p99']:.2f}  p99.9 {latency['p99.9']:.2f}  "
        f"max {latency['max']:.2f}",
        f"server RSS MB: ready {rss['ready']:.1f}, end {rss['end']:.1f}, max {rss['max']:.1f}"
        + ("  (the server exited during the soak)" if report["server_exited_during_soak"] else ""),
    ])
