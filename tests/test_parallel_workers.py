import json
import signal

import pytest

from sim.env import EnvConfig
from sim.parallel import WorkerSpec, run_seeds


def _timeout(signum, frame):
    raise TimeoutError("run_seeds still waiting for its workers")


def test_a_worker_that_cannot_start_fails_the_run_instead_of_hanging(tmp_path):
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "execution.json").write_text(json.dumps({"warp_drive": True}))
    spec = WorkerSpec("lift", str(checkpoint), EnvConfig(image_size=64))
    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(240)  # the old code waited forever
    try:
        with pytest.raises(ValueError, match="unknown settings warp_drive"):
            list(run_seeds(spec, range(4), workers=2))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
