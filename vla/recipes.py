"""Training recipes as presets: `vla train --preset NAME [--set SECTION.FIELD=VALUE ...]`.

A recipe is what `vla train` trains (the model: VlaConfig) and how (TrainConfig). Presets name the
recipes that matter: the shipped default's two stages, fine-tuning a checkpoint on your data, and a
smoke-sized one for tests. `--set` overrides any field, the flags of `vla train` the common ones:

    recipe = with_settings(PRESETS["default-base"], ["train.steps=3000", "tiny.goal_keypoint_loss=0.5"])

Sections: `train` (TrainConfig), `model` (VlaConfig's backbone, decoding, lora_rank), `data`
(DataConfig), `tiny` (TinyModelConfig). Values are JSON (`true`, `2`, `0.5`, `["agentview"]`) or a
bare word for strings (`data.action_mode=delta`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace

from vla.config import DataConfig, TinyModelConfig, TrainConfig, VlaConfig

SECTIONS = ("train", "model", "data", "tiny")


@dataclass(frozen=True)
class Recipe:
    model: VlaConfig = field(default_factory=VlaConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    about: str = ""


_DEFAULT_MODEL = VlaConfig(data=DataConfig(use_subtasks=True, chunk_size=8),
                           tiny=TinyModelConfig(coordinate_channels=True, object_loss=1.0, object_token="teacher",
                                                goal_keypoints=True, goal_keypoint_loss=1.0))
PRESETS: dict[str, Recipe] = {
    "tiny": Recipe(about="the tiny VLA with every option at its default (what `vla train` runs without --preset)"),
    "default-base": Recipe(
        model=_DEFAULT_MODEL,
        train=TrainConfig(steps=6000, batch_size=32, save_every=500, eval_every=250, snapshot_every=500,
                          ema_decay=0.998),
        about="stage 1 of the shipped default: the tiny VLA with its planner, CoordConv, the object head and "
              "its token, language-queried goal keypoints (docs/design.md, The model); 6000 steps"),
    "default-finetune": Recipe(
        train=TrainConfig(steps=2000, learning_rate=1e-4, save_every=500, eval_every=250),
        about="stage 2 of the shipped default, with --init of stage 1: 2000 steps at 1e-4 on the demonstrations "
              "and the DAgger round's rollouts"),
    "finetune": Recipe(
        train=TrainConfig(steps=1200, learning_rate=3e-4, retime_step=0.03, replay_share=0.6),
        about="teach a checkpoint your data, with --init default (or another checkpoint) and --replay of what it "
              "learned from (0.6 of every batch): 1200 steps at 3e-4 (13 minutes on 2 CPU cores), your demos "
              "retimed to steps of >= 0.03 rad (docs/results.md, Teaching new tasks)"),
    "long-horizon": Recipe(
        train=TrainConfig(steps=3000, learning_rate=3e-4, replay_share=0.5, step_instructions=1.0),
        about="teach a checkpoint long-horizon tasks from expert demos, with --init default and --replay of what it "
              "learned from (half of every batch): 3000 steps at 3e-4, every sample of the long demos prompted "
              "with its step's instruction, as the step planner prompts the controller (docs/results.md, "
              "Long-horizon tasks)"),
    "smoke": Recipe(
        model=VlaConfig(data=DataConfig(image_size=64, chunk_size=2),
                        tiny=TinyModelConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128,
                                             vision_channels=(16, 32), image_grid=2)),
        train=TrainConfig(steps=4, batch_size=4, save_every=2, eval_every=2, eval_batches=1),
        about="a very small model for a few steps: tests, and trying the pipeline on new data (64x64 images)"),
}


def preset(name: str) -> Recipe:
    if name not in PRESETS:
        raise ValueError(f"--preset {name}: no such preset; there are {', '.join(PRESETS)}")
    return PRESETS[name]


def with_settings(recipe: Recipe, assignments: list[str]) -> Recipe:
    """The recipe with every "section.field=value" applied (ValueError naming a bad one). The fields of one
    section change together, so settings that only make sense together can be given in any order."""
    changes: dict[str, dict] = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        section, _, name = key.strip().partition(".")
        if not sep or section not in SECTIONS or not name:
            raise ValueError(f"--set {assignment}: expected SECTION.FIELD=VALUE with SECTION one of "
                             f"{', '.join(SECTIONS)}, e.g. --set train.steps=3000")
        try:
            changes.setdefault(section, {})[name] = _value(text, _get(recipe, f"{section}.{name}"))
        except ValueError as error:
            raise ValueError(f"--set {assignment}: {error}") from None
    try:
        return with_values(recipe, changes)
    except (TypeError, ValueError) as error:
        raise ValueError(f"--set {' '.join(assignments)}: {error}") from None


def with_value(recipe: Recipe, key: str, value) -> Recipe:
    """The recipe with "section.field" set to value (the section's own checks run)."""
    section, _, name = key.partition(".")
    _get(recipe, key)
    return with_values(recipe, {section: {name: value}})


def with_values(recipe: Recipe, changes: dict[str, dict]) -> Recipe:
    """The recipe with {section: {field: value}} applied, one replace per section."""
    model = replace(recipe.model, **{section: replace(_section(recipe, section), **changes[section])
                                     for section in ("data", "tiny") if section in changes},
                    **changes.get("model", {}))
    train = replace(recipe.train, **changes.get("train", {}))
    return replace(recipe, model=model, train=train)


def _section(recipe: Recipe, section: str):
    return {"train": recipe.train, "model": recipe.model, "data": recipe.model.data, "tiny": recipe.model.tiny}[section]


def _value(text: str, current):
    """text as JSON (a bare word: a string), checked against the type of the field's current value."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    if isinstance(current, tuple) and isinstance(value, list):
        value = tuple(value)
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if current is not None and type(value) is not type(current):
        raise ValueError(f"expected {type(current).__name__} (like {json.dumps(_plain(current))}), got {text!r}")
    return value


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def model_changes(recipe: Recipe) -> list[str]:
    """"section.field" of every model and data setting that differs from the defaults."""
    default, chosen = VlaConfig(), recipe.model
    changes = [f"model.{f.name}" for f in fields(VlaConfig) if f.name not in ("data", "tiny")
               and getattr(chosen, f.name) != getattr(default, f.name)]
    for section in ("data", "tiny"):
        ours, theirs = asdict(getattr(chosen, section)), asdict(getattr(default, section))
        changes += [f"{section}.{name}" for name in ours if ours[name] != theirs[name]]
    return changes


def format_presets() -> str:
    lines = []
    for name, recipe in PRESETS.items():
        lines.append(f"{name}: {recipe.about}")
        lines += [f"    {change} = {json.dumps(_plain(_get(recipe, change)))}" for change in model_changes(recipe)]
        defaults, train = asdict(TrainConfig()), asdict(recipe.train)
        lines += [f"    train.{key} = {json.dumps(value)}" for key, value in train.items() if value != defaults[key]]
    return "\n".join(lines)


def _get(recipe: Recipe, key: str):
    section, _, name = key.partition(".")
    target = _section(recipe, section)
    if not hasattr(target, name) or (section == "model" and name in ("data", "tiny")):
        raise ValueError(f"{section} has no field {name!r}")
    return getattr(target, name)
