"""Checkpoint directories: config.json, model weights, norm_stats.json, tokenizer, training state.

    config.json          VlaConfig (model + data)
    model.safetensors    tiny backbone weights (or backbone/ for a Hugging Face backbone)
    norm_stats.json      q01/q99 of actions and state, keyed by robot
    tokenizer.json       the word-level text tokenizer (tiny backbone)
    training_state.pt    optimizer, step and schedule for `vla train --resume` (local file, tensors only)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from vla.config import VlaConfig
from vla.normalization import NormStats

CONFIG, WEIGHTS, STATS, TRAIN_STATE, HF_DIR = (
    "config.json", "model.safetensors", "norm_stats.json", "training_state.pt", "backbone")
# what json.loads and reading the parsed dict raise on a file that is not what we wrote
_UNPARSEABLE = (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError)


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
    config = _parse(directory / CONFIG, VlaConfig.load, (ValueError, *_UNPARSEABLE))
    stats = _parse(directory / STATS, lambda path: NormStats.load(path, robot or config.data.robot))
    model = _load_weights(directory, config, map_location)
    _refuse_non_finite(model, directory / (WEIGHTS if config.backbone == "tiny" else HF_DIR))
    return model, config, stats


def _parse(path: Path, load, errors: tuple[type[Exception], ...] = _UNPARSEABLE):
    """load(path), a file that does not parse reported as one ValueError naming it."""
    try:
        return load(path)
    except errors as error:
        raise ValueError(f"{path} is corrupt or from another version: {error}") from error


def _refuse_non_finite(model, source: Path) -> None:
    """Raise ValueError naming the first weight that holds NaN or Inf: such a model loads and runs, but
    every action it predicts is garbage. One isfinite pass per tensor: 4-6 ms of the shipped default's
    30 ms load (2.4M parameters, 2-core CPU)."""
    for name, weight in model.named_parameters():
        if not torch.isfinite(weight).all():
            raise ValueError(f"{source}: tensor '{name}' contains NaN or Inf; the checkpoint is corrupt: "
                             "retrain or restore it")


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
