"""`vla train --backbone PATH` on a local Hugging Face checkpoint, end to end (tiny, random)."""

import numpy as np
import torch
from test_hf_backbone import build_llava
from test_vla_model import _episode, data_file, one_thread  # noqa: F401  (fixtures)

from vla.cli import main
from vla.inference import VlaPredictor


def test_train_resume_and_predict_with_a_hf_backbone(data_file, tmp_path, capsys):  # noqa: F811
    backbone = tmp_path / "tiny-llava"
    torch.manual_seed(0)
    model, processor = build_llava()
    model.save_pretrained(backbone)
    processor.save_pretrained(backbone)
    out = tmp_path / "ck"
    args = ["train", "--data", data_file, "--out", str(out), "--backbone", str(backbone), "--image-size", "32",
            "--chunk-size", "2", "--batch-size", "2", "--lora-rank", "4", "--save-every", "2", "--quiet"]
    assert main([*args, "--steps", "2"]) == 0
    assert main([*args, "--steps", "3", "--resume"]) == 0
    assert "checkpoint:" in capsys.readouterr().out
    predictor = VlaPredictor.load(out)
    obs = {k: v[0] for k, v in _episode(0).observations.items()}
    chunk = predictor.predict(obs, "pick up the red cube")
    assert chunk.shape == (2, 8) and np.all(np.isfinite(chunk))
    assert 0.0 <= chunk[:, 7].min() and chunk[:, 7].max() <= 1.0


def test_image_grid_is_refused_for_a_hf_backbone(data_file, tmp_path, capsys):  # noqa: F811
    args = ["train", "--data", data_file, "--out", str(tmp_path / "ck"), "--backbone", str(tmp_path / "hf"),
            "--set", "tiny.image_grid=8", "--quiet"]
    assert main(args) == 2
    assert "tiny.image_grid: only for the tiny backbone" in capsys.readouterr().err
    assert not (tmp_path / "ck").exists()
