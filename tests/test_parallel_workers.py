import json
import signal

import pytest

from sim.env import EnvConfig
from sim.parallel import WorkerSpec, run_seeds


def _fail_after(seconds: int):
    def handler(signum, frame):
        raise TimeoutError(f"run_seeds still waiting after {seconds} s")
    signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)


def test_a_worker_that_cannot_start_fails_the_run_instead_of_hanging(tmp_path):
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "execution.json").write_text(json.dumps({"warp_drive": True}))
    spec = WorkerSpec("lift", str(checkpoint), EnvConfig(image_size=64))
    _fail_after(240)
    try:
        with pytest.raises(ValueError, match="unknown settings warp_drive"):
            list(run_seeds(spec, range(4), workers=2))
    finally:
        signal.alarm(0)
