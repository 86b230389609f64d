"""`vla robot` interventions: lines an operator types while the robot runs reach the policy server; the answer
is one line, and the robot keeps running through refusals. Simulated driver and time, a real server."""

import io
import queue
import sys
import time

import pytest

from grpc_helpers import running_server
from intervention_fakes import fake_hierarchical
from robots.client import ACT, RobotClient, SimulatedTime
from robots.connection import PolicyConnection
from robots.interventions import InterventionConsole, parse_line
from robot_fakes import SPEC, FakeDriver

BLUE = "put the blue cube on the red cube"


def test_parse_line():
    assert parse_line("sub: grasp\n") == ("grasp", "subtask")
    assert parse_line("  INS:  put the red cube in the bin ") == ("put the red cube in the bin", "instruction")
    assert parse_line("reach the red cube") == ("reach the red cube", "auto")
    assert parse_line("subtask: grasp") == ("subtask: grasp", "auto")  # not a prefix
    assert parse_line("   \n") is None and parse_line("sub:  ") is None


def typed_lines(lines: queue.Queue):
    """What an operator types: blocks until the test puts the next line (None ends it)."""
    while (line := lines.get()) is not None:
        yield line


@pytest.fixture(scope="module")
def server():
    yield from running_server(fake_hierarchical, SPEC)


def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_typed_interventions_steer_the_running_robot_and_refusals_do_not_stop_it(server):
    clock, driver = SimulatedTime(100.0), FakeDriver()
    connection = PolicyConnection(f"127.0.0.1:{server.port}", SPEC, robot_instance="console")
    client = RobotClient(driver, connection, SPEC, "lift the red cube", **clock.loop_options(),
                         keep_records=True)
    lines, printed = queue.Queue(), []
    console = InterventionConsole(connection, typed_lines(lines), out=printed.append)
    thread = console.start()
    assert thread.daemon

    def type_and_wait(line, answers):
        lines.put(line)
        assert _wait_for(lambda: len(console.answers) == answers), console.answers
        return console.answers[-1]

    def subtasks_acted(ticks):
        start = len(client.records)
        client.run(steps=client.tick_index + ticks)
        return {r.subtask for r in client.records[start:] if r.mode == ACT}

    try:
        assert subtasks_acted(8) == {"reach the red cube"}
        assert type_and_wait("sub: lift", 1) == "intervention: subtask 'lift' from the next chunk on"
        subtasks_acted(4)  # the chunk already queued runs out first
        assert subtasks_acted(8) == {"lift"}
        lines.put("   ")  # blank: nothing sent
        answer = type_and_wait("x" * 2000, 2)
        assert answer == ("intervention refused: Intervene failed: INVALID_ARGUMENT: text: 2000 characters, at most "
                          "1024")
        assert subtasks_acted(8) == {"lift"}  # still running, still on the operator's subtask
        assert type_and_wait(f"ins: {BLUE}", 3) == (f"intervention: instruction {BLUE!r} from the next chunk on; "
                                                    "the planner replans")
        subtasks_acted(4)
        assert subtasks_acted(8) == {"reach the blue cube"}
        assert printed == console.answers and client.report.request_errors == 0
        assert server.servicer.registry.get(connection.session_id).instruction == BLUE
    finally:
        lines.put(None)
        thread.join(5)
        client.close()
        connection.close()


def test_vla_robot_reads_interventions_from_stdin(server, monkeypatch, capsys):
    from vla.cli import main

    monkeypatch.setattr(sys, "stdin", io.StringIO("sub: lift\n\nsub: x\x07\n"))
    code = main(["robot", "--server", f"127.0.0.1:{server.port}", "--task", "lift", "--steps", "30",
                 "--image-size", "8", "--interventions", "stdin"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "intervention: subtask 'lift' from the next chunk on" in out
    assert "intervention refused: Intervene failed: INVALID_ARGUMENT: text: holds control characters" in out
    assert out.index("intervention: subtask") < out.index("ticks 30")


def test_vla_robot_interventions_need_a_policy_server(capsys):
    from vla.cli import main

    assert main(["robot", "--teleop", "scripted", "--interventions", "stdin"]) == 2
    assert "--interventions stdin corrects a policy server's session: it needs --server" in capsys.readouterr().err
