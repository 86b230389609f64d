"""`vla bench serve`, run tiny: every section present with positive figures (no timing thresholds)."""

import json
import math

import numpy as np

from benchmarks import serve_comparators as comparators
from vla.cli import main


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_msgpack_and_json_numpy_round_trip():
    observation = {"agentview_image": np.arange(12, dtype=np.uint8).reshape(2, 2, 3),
                   "robot0_joint_pos": np.linspace(-1, 1, 7), "instruction": "lift"}
    for decoded in (comparators.msgpack_unpack(comparators.msgpack_pack(observation)),
                    comparators.json_loads(comparators.json_dumps(observation)),
                    comparators.decode_json_tree(json.loads(comparators.json_dumps(observation)))):
        assert decoded["instruction"] == "lift"
        for key in ("agentview_image", "robot0_joint_pos"):
            assert decoded[key].dtype == observation[key].dtype
            np.testing.assert_array_equal(decoded[key], observation[key])


def test_bench_serve_reports_every_section(tmp_path, capsys):
    path = tmp_path / "bench_serve.json"
    assert main(["bench", "serve", "--seconds", "0.1", "--repeats", "1", "--quiet", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    levels = [str(n) for n in report["config"]["concurrency"]]
    assert levels == ["1", "4", "16"]
    assert report["config"]["servers_stopped_cleanly"] == {"grpc": True, "websocket": True, "fastapi": True,
                                                           "grpc_floor": True}

    grpc = report["grpc"]
    for section in ("in_process", "unary", "stream"):
        for figure in ("p50_ms", "p99_ms", "requests"):
            assert _positive(grpc[section][figure]), (section, figure)
        assert grpc[section]["p99_ms"] >= grpc[section]["p50_ms"]
    assert math.isclose(grpc["overhead_p50_ms"], grpc["unary"]["p50_ms"] - grpc["in_process"]["p50_ms"])
    assert _positive(grpc["request_bytes"])
    for n in levels:
        assert _positive(grpc["throughput"][n]["requests_per_s"])

    assert set(report["comparators"]) == {"websocket", "fastapi"}
    for kind, comparator in report["comparators"].items():
        for figure in ("p50_ms", "p99_ms", "requests"):
            assert _positive(comparator["latency"][figure]), (kind, figure)
        assert _positive(comparator["request_bytes"])
        for n in levels:
            assert _positive(comparator["throughput"][n]["requests_per_s"]), (kind, n)
        ratios = report["ratios"][kind]
        assert _positive(ratios["latency_p50_grpc_over_comparator"])
        assert _positive(ratios["latency_p99_grpc_over_comparator"])
        for n in levels:
            expected = grpc["throughput"][n]["requests_per_s"] / comparator["throughput"][n]["requests_per_s"]
            assert math.isclose(ratios["throughput_grpc_over_comparator"][n], expected)

    floor = report["grpc_floor"]
    assert _positive(floor["latency"]["p50_ms"]) and floor["request_bytes"] == grpc["request_bytes"]
    for n in levels:
        expected = grpc["throughput"][n]["requests_per_s"] / floor["throughput"][n]["requests_per_s"]
        assert math.isclose(floor["grpc_over_floor_throughput"][n], expected)

    targets = report["targets"]
    assert isinstance(targets["grpc_overhead_p50_ms"]["met"], bool)
    assert isinstance(targets["grpc_throughput_over_comparators"]["met"], bool)
    machine = report["machine"]
    assert machine["cpu_count"] >= 1 and machine["python"] and len(machine["load_average_at_end"]) == 3
    assert machine["packages"]["grpcio"] and machine["packages"]["websockets"] and machine["packages"]["uvicorn"]

    out = capsys.readouterr().out
    assert "gRPC overhead" in out and "throughput, requests/s" in out and "FastAPI+JSON" in out and "bare grpcio" in out
    assert "CPU us per request" in out
    for kind in ("grpc", "websocket", "fastapi"):
        section = grpc if kind == "grpc" else report["comparators"][kind]
        for n in levels:  # clients and servers both burn CPU for every request they exchange
            assert _positive(section["throughput"][n]["client_cpu_us_per_request"]), (kind, n)
            assert _positive(section["throughput"][n]["server_cpu_us_per_request"]), (kind, n)


def test_bench_serve_with_a_checkpoint_batches_grpc_and_compares(tmp_path, capsys):
    path = tmp_path / "bench_serve_policy.json"
    assert main(["bench", "serve", "--policy", "default", "--seconds", "0.3", "--repeats", "1", "--quiet",
                 "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert report["benchmark"] == "serve-policy"
    assert report["config"]["servers_stopped_cleanly"] == {"grpc": True, "websocket": True, "fastapi": True}
    for kind in ("grpc", "websocket", "fastapi"):
        for n in ("1", "4", "16"):
            assert _positive(report["throughput"][kind][n]["requests_per_s"]), (kind, n)
    rates = {kind: report["throughput"][kind]["16"]["requests_per_s"] for kind in report["throughput"]}
    for kind in ("websocket", "fastapi"):
        expected = rates["grpc"] / rates[kind]
        assert math.isclose(report["throughput_grpc_over_comparator"][kind]["16"], expected)
    sizes = {int(size): count for size, count in report["grpc_batch_sizes"].items()}
    assert max(sizes) > 1 and max(sizes) <= 16  # 16 robots asking at once share forward passes
    assert "gRPC forward passes by batch size" in capsys.readouterr().out


def test_bench_serve_refuses_a_checkpoint_that_does_not_take_its_payload(tmp_path, capsys):
    assert main(["bench", "serve", "--policy", str(tmp_path), "--quiet"]) == 2
    assert "not a checkpoint" in capsys.readouterr().err
    assert main(["bench", "sim", "--policy", "default"]) == 2
