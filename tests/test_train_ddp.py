"""`vla train` under torchrun: two CPU ranks (gloo), rank 0 saves a checkpoint that loads."""

import os
import subprocess
import sys
from pathlib import Path

from test_vla_model import data_file  # noqa: F401  (fixture)

from vla.checkpoint import load_checkpoint, load_training_state


def test_torchrun_two_ranks(data_file, tmp_path):  # noqa: F811
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node", "2", "-m", "vla.cli", "train", "--data", data_file, "--out", str(out),
           "--steps", "2", "--batch-size", "2", "--image-size", "32", "--chunk-size", "2", "--save-every", "2",
           "--quiet"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("checkpoint:") == 1  # rank 0 only
    model, config, _ = load_checkpoint(out)
    assert config.data.image_size == 32 and load_training_state(out)["step"] == 2
