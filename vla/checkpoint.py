"""Checkpoint directories: config.json, model weights, norm_stats.json, tokenizer, training state.

    config.json          VlaConfig (model + data)
    model.safetensors    tiny backbone weights (or backbone/ for a Hugging Face backbone)
    norm_stats.json      q01/q99 of actions and state, keyed by robot
    tokenizer.json       the word-level text tokenizer (tiny backbone)
    training_state.pt    optimizer, step and schedule for `vla train --resume` (local file, tensors only)
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from vla.config import VlaConfig
from vla.normalization import NormStats

CONFIG, WEIGHTS, STATS, TRAIN_STATE, HF_DIR = (
    "config.json", "model.safetensors", "norm_stats.json", "training_state.pt", "backbone")


def build_model(config: VlaConfig, text_tokenizer=None):
    """A fresh model for the config: TinyVla, or HFVla for a local Hugging Face checkpoint."""
    if config.backbone == "tiny":
        from vla.tiny_model import TinyVla

        return TinyVla(config.tiny, config.data, text_tokenizer, regression=config.decoding == "regression")
    from vla.hf_backbone import HFVla, HFVlaConfig

    return HFVla(_hf_config(config, config.backbone))


def save_checkpoint(directory: str | Path, model, config: VlaConfig, stats: NormStats,
                    training_state: dict | None = None) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "module", model)  # unwrap DDP
    _atomic(directory / CONFIG, config.save)
    _atomic(directory / STATS, stats.save)
    if config.backbone == "tiny":
        from safetensors.torch import save_model

        _atomic(directory / WEIGHTS, lambda p: save_model(model, str(p)))
        model.text_tokenizer.save(directory)
    else:
        model.save(directory / HF_DIR)
    if training_state is not None:
        _atomic(directory / TRAIN_STATE, lambda p: torch.save(training_state, p))
    return directory


def load_checkpoint(directory: str | Path, robot: str | None = None, map_location: str = "cpu"):
    """(model, config, stats). Raises FileNotFoundError/ValueError naming what is wrong."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory {directory} does not exist; train one with `vla train`")
    for name in (CONFIG, STATS):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory / name} is missing: {directory} is not a complete checkpoint")
    try:
        config = VlaConfig.load(directory / CONFIG)
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{directory / CONFIG} is corrupt or from another version: {error}") from error
    stats = NormStats.load(directory / STATS, robot or config.data.robot)
    return _load_weights(directory, config, map_location), config, stats


def load_training_state(directory: str | Path) -> dict:
    path = Path(directory) / TRAIN_STATE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: nothing to resume (train without --resume)")
    return torch.load(path, map_location="cpu", weights_only=True)


def _load_weights(directory: Path, config: VlaConfig, map_location: str):
    if config.backbone != "tiny":
        from vla.hf_backbone import HFVla

        return HFVla.load(directory / HF_DIR, _hf_config(config, str(directory / HF_DIR)))
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from vla.text_tokenizer import WordTokenizer

    model = build_model(config, WordTokenizer.load(directory))
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing: the checkpoint has no model weights")
    try:
        load_model(model, str(weights), device=map_location)
    except (SafetensorError, RuntimeError, OSError) as error:
        raise ValueError(f"{weights} is corrupt or does not match config.json: {error}") from error
    return model


def _hf_config(config: VlaConfig, path: str):
    from vla.hf_backbone import HFVlaConfig

    return HFVlaConfig(path=path, chunk_size=config.data.chunk_size, action_dim=config.data.action_dim,
                       n_bins=config.tiny.n_bins, lora_rank=config.lora_rank)


def _atomic(path: Path, write) -> None:
    """write(tmp_path), then rename over `path`: a crash never leaves a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)
