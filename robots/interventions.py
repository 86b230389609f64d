"""An operator's interventions typed while the robot runs (`vla robot --interventions stdin`).

Each line is one intervention for the policy server (PolicyConnection.intervene):
    sub: grasp                          a subtask to pursue now
    ins: put the blue cube in the bin   a new instruction (the planner replans)
    reach the red cube                  no prefix: the server decides (AUTO)
Blank lines are skipped. The server's answer (or an RPC error) is printed as one line; the robot keeps
running either way. Lines come from any iterable (sys.stdin, a list in tests), read on a daemon thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from robots.connection import PolicyConnection, PolicyRpcError

PREFIXES = {"sub:": "subtask", "ins:": "instruction"}
SESSION_WAIT_S = 10.0  # how long a line typed before the first session waits for it


def parse_line(line: str) -> tuple[str, str] | None:
    """"sub: TEXT" -> (TEXT, "subtask"), "ins: TEXT" -> (TEXT, "instruction"), TEXT -> (TEXT, "auto");
    None for a blank line (or a prefix without text)."""
    text = line.strip()
    kind = "auto"
    for prefix, named in PREFIXES.items():
        if text.lower().startswith(prefix):
            text, kind = text[len(prefix):].strip(), named
            break
    return (text, kind) if text else None


class InterventionConsole:
    """Sends each line of `lines` as an intervention on `connection` and reports each answer through `out`."""

    def __init__(self, connection: PolicyConnection, lines: Iterable[str], out: Callable[[str], None] = print,
                 session_wait_s: float = SESSION_WAIT_S):
        self.connection, self.lines, self.out = connection, lines, out
        self.session_wait_s = session_wait_s
        self.answers: list[str] = []  # every line printed, in order
        self.thread: threading.Thread | None = None

    def start(self) -> threading.Thread:
        """Read and send on a daemon thread (it ends with the lines, or with the program)."""
        self.thread = threading.Thread(target=self.run, name="vla-interventions", daemon=True)
        self.thread.start()
        return self.thread

    def run(self) -> None:
        for line in self.lines:
            self.handle(line)

    def handle(self, line: str) -> str | None:
        """Send one line; returns (and prints) the one-line answer, None for a blank line."""
        parsed = parse_line(line)
        if parsed is None:
            return None
        text, kind = parsed
        self._wait_for_session()
        try:
            answer = f"intervention: {self.connection.intervene(text, kind).describe()}"
        except PolicyRpcError as error:
            answer = f"intervention refused: {error}".replace("\n", " ")
        except ValueError as error:  # grpc's "closed channel" once the run is over
            answer = f"intervention not sent: {error}".replace("\n", " ")
        self.answers.append(answer)
        self.out(answer)
        return answer

    def _wait_for_session(self) -> None:
        """Lines piped in before the robot's first chunk wait for its session (at most session_wait_s)."""
        deadline = time.monotonic() + self.session_wait_s
        while self.connection.session_id is None and time.monotonic() < deadline:
            time.sleep(0.02)
