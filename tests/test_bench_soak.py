"""`vla bench soak`, run short: the served policy answers every tick; errors, latency and memory are reported."""

import json
import math

import pytest

from benchmarks.soak import SoakConfig, format_soak, run_soak
from vla.cli import main


def test_bench_soak_counts_every_request_and_reports_the_servers_memory(tmp_path, capsys):
    path = tmp_path / "soak.json"
    assert main(["bench", "soak", "--clients", "2", "--hz", "10", "--seconds", "2", "--quiet",
                 "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert report["policy"] == "hold" and report["clients"] == 2
    assert report["errors"] == {} and report["ok"] == report["requests"]
    assert report["requests"] + report["missed_ticks"] >= 2 * 10 * 2 - 2  # one tick of slack per client
    latency = report["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["p99.9"] <= latency["max"]
    rss = report["server_rss_mb"]
    assert all(math.isfinite(rss[k]) and rss[k] > 10 for k in ("ready", "end", "max"))  # a Python process
    assert not report["server_exited_during_soak"]
    out = capsys.readouterr().out
    assert "soak: hold served on loopback, 2 clients x 10 Hz" in out and "errors: none" in out


def test_a_policy_that_cannot_be_served_is_one_error_line():
    with pytest.raises(RuntimeError, match="the served policy exited"):
        run_soak(SoakConfig(policy="/nonexistent/checkpoint", clients=1, hz=1, seconds=1))


@pytest.mark.parametrize("options, message", [({"clients": 0}, "clients"), ({"hz": 500}, "hz"),
                                              ({"seconds": 4000}, "seconds")])
def test_soak_is_bounded(options, message):
    with pytest.raises(ValueError, match=message):
        SoakConfig(**options)


def test_errors_are_listed_by_status():
    report = {"policy": "hold", "clients": 1, "hz": 1.0, "seconds": 2.0, "requests": 2, "ok": 1,
              "errors": {"UNAVAILABLE": 1}, "missed_ticks": 0,
              "latency_ms": {"p50": 1.0, "p99": 1.0, "p99.9": 1.0, "max": 1.0},
              "server_rss_mb": {"ready": 60.0, "end": 61.0, "max": 61.0}, "server_exited_during_soak": True}
    text = format_soak(report)
    assert "errors: UNAVAILABLE 1" in text and "the server exited during the soak" in text
