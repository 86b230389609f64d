"""Report side of `vla bench serve` (benchmarks/serve.py): machine info, the summary sections built from the
raw measurements, and the text tables."""

from __future__ import annotations

import os
import platform
from importlib import metadata

import numpy as np

from benchmarks.serve_setup import (BATCH_WAIT_MS, CAMERAS, CHUNK_SHAPE, COMPARATORS, CONCURRENCY, IMAGE_SIZE,
                                  LABELS, TARGET_OVERHEAD_MS, TARGET_THROUGHPUT_RATIO, WARMUP_REQUESTS)


def _percentiles(times: list[float]) -> dict:
    array = np.asarray(times)
    return {"p50_ms": float(np.percentile(array, 50)), "p99_ms": float(np.percentile(array, 99)),
            "mean_ms": float(array.mean()), "requests": int(array.size)}


def machine_info() -> dict:
    cpu_model = platform.processor()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu_model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")),
                             cpu_model)
    except OSError:
        pass
    versions = {}
    for package in ("grpcio", "protobuf", "numpy", "websockets", "msgpack", "fastapi", "starlette", "uvicorn",
                    "httptools", "uvloop"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"platform": platform.platform(), "python": platform.python_version(),
            "implementation": platform.python_implementation(), "cpu_model": cpu_model,
            "cpu_count": os.cpu_count(), "load_average_at_start": list(os.getloadavg()), "packages": versions}


def summarize_throughput(rates: dict) -> dict:
    """{server: {clients: median requests/s over the repeats, each repeat's, and the median CPU time per request
    of the client process and of the server process}} from time_throughput's results."""
    def summary(results: list[dict]) -> dict:
        return {"requests_per_s": float(np.median([r["requests_per_s"] for r in results])),
                "per_repeat": [r["requests_per_s"] for r in results],
                "client_cpu_us_per_request": float(np.median([r["client_cpu_us_per_request"] for r in results])),
                "server_cpu_us_per_request": float(np.median([r["server_cpu_us_per_request"] for r in results]))}

    return {kind: {str(n): summary(results) for n, results in per_n.items()} for kind, per_n in rates.items()}


def throughput_ratios(throughput: dict, comparators: tuple[str, ...]) -> dict:
    """{comparator: {clients: gRPC requests/s over the comparator's}}."""
    grpc = throughput["grpc"]
    return {kind: {n: grpc[n]["requests_per_s"] / throughput[kind][n]["requests_per_s"] for n in grpc}
            for kind in comparators}


def build_report(latency_samples: dict, latency_repeat_p50: dict, rates: dict, request_bytes: dict,
                 servers: dict, *, seconds: float, repeats: int, concurrency: tuple[int, ...]) -> dict:
    """The report sections (config, grpc, comparators, ratios, targets) from the raw measurements."""
    latency = {name: {**_percentiles(times), "p50_per_repeat_ms": latency_repeat_p50[name]}
               for name, times in latency_samples.items()}
    throughput = summarize_throughput(rates)
    overhead = latency["grpc_unary"]["p50_ms"] - latency["in_process"]["p50_ms"]
    grpc_rps = {n: throughput["grpc"][n]["requests_per_s"] for n in throughput["grpc"]}
    ratios, comparators_report = {}, {}
    throughput_ratio = throughput_ratios(throughput, COMPARATORS)
    for kind in COMPARATORS:
        comparators_report[kind] = {
            "description": LABELS[kind], "latency": latency[kind], "throughput": throughput[kind],
            "request_bytes": request_bytes[kind], "server_info": servers[kind].info}
        ratios[kind] = {
            "latency_p50_grpc_over_comparator": latency["grpc_unary"]["p50_ms"] / latency[kind]["p50_ms"],
            "latency_p99_grpc_over_comparator": latency["grpc_unary"]["p99_ms"] / latency[kind]["p99_ms"],
            "throughput_grpc_over_comparator": throughput_ratio[kind],
        }
    worst_ratio = min(min(r["throughput_grpc_over_comparator"].values()) for r in ratios.values())
    return {
        "config": {"seconds": seconds, "repeats": repeats, "concurrency": list(concurrency),
                   "warmup_requests": WARMUP_REQUESTS, "policy": "null: a fixed (8, 8) float32 chunk",
                   "payload": {"cameras": list(CAMERAS), "image": [IMAGE_SIZE, IMAGE_SIZE, 3],
                               "grpc_image_encoding": "RAW_RGB8", "joints": 7, "gripper": 1},
                   "servers": "one spawned process per server; clients are threads of the benchmark process",
                   "grpc_max_concurrent": max(CONCURRENCY),
                   "servers_stopped_cleanly": {kind: server.stopped_cleanly for kind, server in servers.items()}},
        "grpc": {
            "in_process": latency["in_process"], "unary": latency["grpc_unary"], "stream": latency["grpc_stream"],
            "overhead_p50_ms": overhead, "throughput": throughput["grpc"], "request_bytes": request_bytes["grpc"]},
        "comparators": comparators_report,
        "ratios": ratios,
        "grpc_floor": {
            "description": LABELS["grpc_floor"], "latency": latency["grpc_floor"],
            "throughput": throughput["grpc_floor"], "request_bytes": request_bytes["grpc_floor"],
            "grpc_over_floor_throughput": {n: grpc_rps[n] / throughput["grpc_floor"][n]["requests_per_s"]
                                           for n in grpc_rps}},
        "targets": {
            "grpc_overhead_p50_ms": {"value": overhead, "target_max": TARGET_OVERHEAD_MS,
                                     "met": overhead <= TARGET_OVERHEAD_MS},
            "grpc_throughput_over_comparators": {"value": worst_ratio, "target_min": TARGET_THROUGHPUT_RATIO,
                                                 "met": worst_ratio >= TARGET_THROUGHPUT_RATIO,
                                                 "note": "the smallest gRPC/comparator ratio over both "
                                                         "comparators and every concurrency level"}},
    }


def _clients_header(levels: list[str]) -> str:
    """Column headings "1 client", "4 clients", ... (12 characters each)."""
    return "".join(f"{n + (' client' if n == '1' else ' clients'):>12}" for n in levels)


def _cpu_table(throughput: dict, levels: list[str]) -> list[str]:
    """Lines: CPU microseconds per request, clients' process / server's process, per server and client count."""
    lines = [f"{'CPU us per request, clients / server':<42}{_clients_header(levels)}"]
    for kind, per_n in throughput.items():
        lines.append(f"{LABELS[kind]:<42}" + "".join(
            f"{per_n[n]['client_cpu_us_per_request']:>6.0f}/{per_n[n]['server_cpu_us_per_request']:<5.0f}"
            for n in levels))
    return lines


def build_policy_report(policy: str, rates: dict, servers: dict, *, seconds: float, repeats: int,
                        concurrency: tuple[int, ...]) -> dict:
    """The report of `vla bench serve --policy P`: throughput per server, gRPC's ratios, its batch sizes."""
    throughput = summarize_throughput(rates)
    ratios = throughput_ratios(throughput, COMPARATORS)
    worst_ratio = min(min(per_n.values()) for per_n in ratios.values())
    return {
        "config": {"seconds": seconds, "repeats": repeats, "concurrency": list(concurrency),
                   "warmup_requests": WARMUP_REQUESTS, "policy": f"{policy}, flat, each client its own session",
                   "payload": {"cameras": list(CAMERAS), "image": [IMAGE_SIZE, IMAGE_SIZE, 3]},
                   "grpc_batching": {"max_batch": max(CONCURRENCY), "wait_ms": BATCH_WAIT_MS},
                   "comparators": "one request at a time per connection, no batching (as their public servers)",
                   "servers_stopped_cleanly": {kind: server.stopped_cleanly for kind, server in servers.items()}},
        "throughput": throughput,
        "throughput_grpc_over_comparator": ratios,
        "grpc_batch_sizes": servers["grpc"].final_info.get("batch_sizes", {}),
        "targets": {"grpc_throughput_over_comparators": {
            "value": worst_ratio, "target_min": TARGET_THROUGHPUT_RATIO, "met": worst_ratio >= TARGET_THROUGHPUT_RATIO,
            "note": "the smallest gRPC/comparator ratio over both comparators and every concurrency level"}},
    }


def format_serve_policy(report: dict) -> str:
    """The report of `vla bench serve --policy P` as text tables."""
    config, machine, throughput = report["config"], report["machine"], report["throughput"]
    levels = [str(n) for n in config["concurrency"]]
    lines = [f"vla bench serve --policy: {config['policy']}; payload 2 x {IMAGE_SIZE}x{IMAGE_SIZE} RGB + 7 joints + "
             f"gripper; {config['seconds']:g} s x {config['repeats']} repeat(s) per figure",
             f"machine: {machine['cpu_model']}, {machine['cpu_count']} CPUs, load average "
             f"{machine['load_average_at_start'][0]:.2f} at start, {machine['load_average_at_end'][0]:.2f} at end",
             "", f"{'throughput, chunks/s':<42}{_clients_header(levels)}"]
    for kind, per_n in throughput.items():
        label = LABELS[kind] + (" batched" if kind == "grpc" else "")
        lines.append(f"{label:<42}" + "".join(f"{per_n[n]['requests_per_s']:>12.1f}" for n in levels))
    for kind, per_n in report["throughput_grpc_over_comparator"].items():
        lines.append(f"{'gRPC / ' + kind:<42}" + "".join(f"{per_n[n]:>12.2f}" for n in levels))
    lines += ["", *_cpu_table(throughput, levels), "",
              f"gRPC forward passes by batch size: {report['grpc_batch_sizes']}"]
    target = report["targets"]["grpc_throughput_over_comparators"]
    lines.append(f"Smallest throughput ratio {target['value']:.2f} (target >= {target['target_min']:g}x both: "
                 f"{'met' if target['met'] else 'NOT met'})")
    return "\n".join(lines)


def format_serve(report: dict) -> str:
    """The report dict as the text tables `vla bench serve` prints."""
    grpc, comps, ratios, config = report["grpc"], report["comparators"], report["ratios"], report["config"]
    machine = report["machine"]
    levels = [str(n) for n in config["concurrency"]]
    lines = [
        f"vla bench serve: null policy -> ({CHUNK_SHAPE[0]}, {CHUNK_SHAPE[1]}) chunk; payload 2 x "
        f"{IMAGE_SIZE}x{IMAGE_SIZE} RGB + 7 joints + gripper; {config['seconds']:g} s x {config['repeats']} "
        "repeat(s) per figure",
        f"machine: {machine['cpu_model']}, {machine['cpu_count']} CPUs, Python {machine['python']}, load average "
        f"{machine['load_average_at_start'][0]:.2f} at start, {machine['load_average_at_end'][0]:.2f} at end",
        "",
        f"{'latency, 1 client':<42}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}{'req bytes':>11}",
    ]
    rows = [("in-process (same decode/validate path)", grpc["in_process"], None),
            ("gRPC unary Act", grpc["unary"], grpc["request_bytes"]),
            ("gRPC StreamActions (bidi)", grpc["stream"], grpc["request_bytes"])]
    rows += [(LABELS[kind], comps[kind]["latency"], comps[kind]["request_bytes"]) for kind in comps]
    floor = report["grpc_floor"]
    rows.append((LABELS["grpc_floor"], floor["latency"], floor["request_bytes"]))
    for label, figures, size in rows:
        lines.append(f"{label:<42}{figures['p50_ms']:>9.3f}{figures['p99_ms']:>9.3f}{figures['requests']:>10d}"
                     f"{size if size is not None else '-':>11}")
    target = report["targets"]["grpc_overhead_p50_ms"]
    lines.append(f"gRPC overhead (unary p50 - in-process p50): {grpc['overhead_p50_ms']:.3f} ms "
                 f"(target <= {target['target_max']:g} ms: {'met' if target['met'] else 'NOT met'})")
    lines += ["", f"{'throughput, requests/s':<42}{_clients_header(levels)}"]
    lines.append(f"{LABELS['grpc']:<42}" + "".join(f"{grpc['throughput'][n]['requests_per_s']:>12.0f}"
                                                  for n in levels))
    for label, section in [(LABELS[kind], comps[kind]) for kind in comps] + [(LABELS["grpc_floor"], floor)]:
        lines.append(f"{label:<42}" + "".join(f"{section['throughput'][n]['requests_per_s']:>12.0f}"
                                              for n in levels))
    lines.append(f"{'gRPC vla.v1 / bare grpcio':<42}" + "".join(f"{floor['grpc_over_floor_throughput'][n]:>12.2f}"
                                                                for n in levels))
    sections = {"grpc": grpc, **comps, "grpc_floor": floor}
    lines += ["", *_cpu_table({kind: section["throughput"] for kind, section in sections.items()}, levels)]
    lines += ["", f"{'gRPC / comparator':<42}{'p50 lat':>9}{'p99 lat':>9}" + "".join(f"{'tput@' + n:>10}"
                                                                                   for n in levels)]
    for kind, ratio in ratios.items():
        lines.append(f"{LABELS[kind]:<42}{ratio['latency_p50_grpc_over_comparator']:>9.2f}"
                     f"{ratio['latency_p99_grpc_over_comparator']:>9.2f}"
                     + "".join(f"{ratio['throughput_grpc_over_comparator'][n]:>10.2f}" for n in levels))
    target = report["targets"]["grpc_throughput_over_comparators"]
    lines.append(f"(latency ratio < 1: gRPC faster; throughput ratio > 1: gRPC serves more.) Smallest throughput "
                 f"ratio {target['value']:.2f} (target >= {target['target_min']:g}x both: "
                 f"{'met' if target['met'] else 'NOT met'})")
    return "\n".join(lines)
