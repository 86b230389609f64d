"""`vla train --backbone PATH` on a local Hugging Face checkpoint, end to end (tiny, random)."""

import json

import numpy as np
import pytest
import transformers
from hf_tiny_checkpoints import FAMILIES, write_checkpoint
from test_vla_model import _episode, data_file, one_thread  # noqa: F401  (fixtures)

from vla.cli import main
from vla.inference import VlaPredictor


@pytest.mark.parametrize("family", FAMILIES)
def test_train_resume_and_predict_with_a_hf_backbone(family, data_file, tmp_path, capsys):  # noqa: F811
    """Every family: `vla train --backbone DIR` (LoRA), --resume, then a chunk in both decoding modes."""
    backbone = write_checkpoint(family, tmp_path / f"tiny-{family}")
    out = tmp_path / "ck"
    args = ["train", "--data", data_file, "--out", str(out), "--backbone", backbone, "--image-size", "32",
            "--chunk-size", "2", "--batch-size", "2", "--lora-rank", "4", "--save-every", "2", "--quiet"]
    assert main([*args, "--steps", "2"]) == 0
    assert main([*args, "--steps", "3", "--resume"]) == 0
    assert "checkpoint:" in capsys.readouterr().out
    predictor = VlaPredictor.load(out)
    obs = {k: v[0] for k, v in _episode(0).observations.items()}
    for mode in ("parallel", "autoregressive"):
        chunk = predictor.predict(obs, "pick up the red cube", mode=mode)
        assert chunk.shape == (2, 8) and np.all(np.isfinite(chunk))
        assert 0.0 <= chunk[:, 7].min() and chunk[:, 7].max() <= 1.0


def test_a_qwen2_vl_checkpoint_trains_and_evaluates_autoregressively(data_file, tmp_path, capsys):  # noqa: F811
    """The issue's path: Qwen2-VL without torchvision, `vla train --decoding autoregressive`, then `vla eval`
    (KV-cache decoding with M-RoPE positions at every chunk of a simulated episode)."""
    backbone = write_checkpoint("qwen2_vl", tmp_path / "tiny-qwen2-vl")
    out = tmp_path / "ck"
    assert main(["train", "--data", data_file, "--out", str(out), "--backbone", backbone, "--image-size", "32",
                 "--chunk-size", "2", "--batch-size", "2", "--decoding", "autoregressive", "--steps", "2",
                 "--quiet"]) == 0
    report = tmp_path / "eval.json"
    assert main(["eval", "--task", "pick-color", "--policy", str(out), "--episodes", "1", "--image-size", "32",
                 "--json", str(report), "--quiet"]) == 0
    assert json.loads(report.read_text())["episodes_detail"][0]["steps"] > 0
    assert "qwen2_vl processor cannot be built here" in capsys.readouterr().err


def test_a_backbone_that_cannot_work_is_refused_in_one_line(data_file, tmp_path, capsys):  # noqa: F811
    transformers.Florence2Config().save_pretrained(tmp_path / "florence2")
    args = ["train", "--data", data_file, "--out", str(tmp_path / "ck"), "--backbone", str(tmp_path / "florence2"),
            "--image-size", "32", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "florence2 is an encoder-decoder model" in err and len(err.splitlines()) == 1, err


def test_image_grid_is_refused_for_a_hf_backbone(data_file, tmp_path, capsys):  # noqa: F811
    args = ["train", "--data", data_file, "--out", str(tmp_path / "ck"), "--backbone", str(tmp_path / "hf"),
            "--set", "tiny.image_grid=8", "--quiet"]
    assert main(args) == 2
    assert "tiny.image_grid: only for the tiny backbone" in capsys.readouterr().err
    assert not (tmp_path / "ck").exists()
