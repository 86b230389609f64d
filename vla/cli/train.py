"""`vla train`: a recipe (a preset, --set overrides, the common flags) trained on HDF5 datasets."""

from __future__ import annotations

import os
from pathlib import Path

from vla.cli.types import (CHUNK_SIZE, IMAGE_SIZE, LEARNING_RATE, NON_NEGATIVE_FLOAT, NON_NEGATIVE_INT, POSITIVE_INT,
                           SEED, SHARE_BELOW_ONE)

# flag -> the recipe field it sets (a flag not given keeps the recipe's value)
FLAG_FIELDS = {
    "backbone": "model.backbone", "decoding": "model.decoding", "lora_rank": "model.lora_rank",
    "chunk_size": "data.chunk_size", "image_size": "data.image_size", "subtasks": "data.use_subtasks",
    "object_loss": "tiny.object_loss", "object_token": "tiny.object_token", "coord_conv": "tiny.coordinate_channels",
    "goal_keypoints": "tiny.goal_keypoints", "goal_keypoint_loss": "tiny.goal_keypoint_loss",
    "steps": "train.steps", "batch_size": "train.batch_size", "lr": "train.learning_rate",
    "save_every": "train.save_every", "eval_every": "train.eval_every", "seed": "train.seed",
    "snapshot_every": "train.snapshot_every", "ema_decay": "train.ema_decay", "image_shift": "train.image_shift",
}


def cmd_train(args) -> int:
    from sim.policy_loader import checkpoint_dir
    from sim.scene_labels import SIM_SCENE_LABELS
    from vla.train import train

    recipe = recipe_of(args)
    init = checkpoint_dir(args.init) if args.init else None
    metrics = train(args.data, args.out, recipe.model, recipe.train, resume=args.resume, progress=not args.quiet,
                    init=init, scene_labels=SIM_SCENE_LABELS, replay=tuple(args.replay or ()))
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks
        store_execution_settings(args.out, init)
        shown = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
        print(f"checkpoint: {args.out}  {shown}")
    return 0


def recipe_of(args):
    """The preset, then --set, then the flags given; checked against --init and the backbone."""
    from vla.recipes import preset, with_settings, with_value

    recipe = with_settings(preset(args.preset), args.set or [])
    for flag, key in FLAG_FIELDS.items():
        if getattr(args, flag) is not None:
            try:
                recipe = with_value(recipe, key, getattr(args, flag))
            except ValueError as error:
                raise ValueError(f"--{flag.replace('_', '-')}: {error}") from None
    _check_model(recipe, args.init)
    return recipe


def _check_model(recipe, init) -> None:
    from vla.config import TinyModelConfig
    from vla.recipes import model_changes

    if init:  # fine-tuning keeps the checkpoint's model: a model setting cannot be honoured
        changes = model_changes(recipe)
        if changes:
            raise ValueError(f"{', '.join(changes)}: --init {init} keeps that checkpoint's model and data options; "
                             "drop these settings (a preset of training settings only, e.g. --preset finetune), or "
                             "train a new model without --init")
        return
    model = recipe.model
    if model.backbone != "tiny" and model.tiny != TinyModelConfig():
        changed = [c for c in model_changes(recipe) if c.startswith("tiny.")]
        raise ValueError(f"{', '.join(changed)}: only for the tiny backbone; a Hugging Face backbone keeps its own "
                         "image encoder and has no regression head")
    if model.backbone == "tiny":
        from vla.tiny_model import check_image_grid, check_keypoints

        if model.tiny.image_grid != TinyModelConfig().image_grid:  # the default also loads older small-image runs
            check_image_grid(model.tiny, model.data.image_size)
        check_keypoints(model.tiny.keypoints)


def store_execution_settings(out: str, init) -> None:
    """How the new checkpoint and its snapshots run: settings already in `out` stay (--resume, or edited
    by hand); otherwise those of the --init checkpoint, or the defaults."""
    from policies.execution import EXECUTION_FILE, ExecutionSettings

    out = Path(out)
    existing = out / EXECUTION_FILE
    settings = ExecutionSettings.load(out if existing.is_file() else init or out)
    for directory in (out, *sorted((out / "snapshots").glob("*"))):
        settings.save(directory)


def add_train_parser(sub) -> None:
    from vla.recipes import PRESETS

    p = sub.add_parser("train", help="train a VLA on HDF5 datasets")
    p.add_argument("--data", nargs="+", required=True, metavar="FILE")
    p.add_argument("--out", required=True, help="checkpoint directory")
    p.add_argument("--preset", choices=list(PRESETS), default="tiny",
                   help="the recipe (vla/recipes.py; default tiny): " + "; ".join(
                       f"{name}: {recipe.about}" for name, recipe in PRESETS.items()))
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                   help="override any field of the recipe (repeatable; sections train, model, data, tiny; e.g. "
                        "--set tiny.image_grid=2 --set data.action_mode=delta); the flags below win over it")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="fine-tune: start from this checkpoint (`default`, a directory): its weights, model and "
                        "data options, tokenizers and normalization; a fresh optimizer and schedule over --steps")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    p.add_argument("--replay", nargs="+", metavar="FILE",
                   help="fine-tuning: also train on these datasets (e.g. what the --init checkpoint learned from), "
                        "as train.replay_share (default 0.5) of every batch, so it keeps what it could do")
    _add_model_flags(p)
    _add_training_flags(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)


def _add_model_flags(p) -> None:
    p.add_argument("--backbone", help="tiny, or a local Hugging Face checkpoint directory")
    p.add_argument("--decoding", choices=["parallel", "autoregressive", "regression"],
                   help="action tokens in one pass or one by one, or a continuous L1 head on the same one-pass "
                        "queries (tiny backbone)")
    p.add_argument("--lora-rank", type=NON_NEGATIVE_INT, help="LoRA rank for Hugging Face backbones (0: full)")
    p.add_argument("--chunk-size", type=CHUNK_SIZE, help="actions per predicted chunk (default 8)")
    p.add_argument("--image-size", type=IMAGE_SIZE, help="camera images are this square size (default 128)")
    p.add_argument("--subtasks", action="store_true", default=None, help="condition on the dataset's subtask "
                   "phrases and train the planner head (hierarchical policies)")
    p.add_argument("--object-loss", type=NON_NEGATIVE_FLOAT, metavar="W",
                   help="tiny backbone: also predict where the goal's cubes are (privileged sim state, training "
                        "only) with weight W (e.g. 1; 0: off), so the image encoder learns to localize them")
    p.add_argument("--object-token", choices=("predicted", "teacher"),
                   help="tiny backbone, with --object-loss: feed the head's cube offsets to the actions as one more "
                        "input token (predict, then act); in training the token carries the head's own prediction, "
                        "or with teacher the recorded offsets plus 1 cm of noise")
    p.add_argument("--coord-conv", action="store_true", default=None,
                   help="tiny backbone: give the image encoder each pixel's x and y as two more input channels "
                        "(CoordConv)")
    p.add_argument("--goal-keypoints", action="store_true", default=None,
                   help="tiny backbone: the instruction's words give, per camera, a query for the cube to pick and "
                        "one for the cube to put it on; where each matches best becomes a token")
    p.add_argument("--goal-keypoint-loss", type=NON_NEGATIVE_FLOAT, metavar="W",
                   help="with --goal-keypoints: train each keypoint's attention onto the 4x4-pixel patch where "
                        "the goal's cube is in that image (privileged sim state, training only), weight W (e.g. 1)")


def _add_training_flags(p) -> None:
    p.add_argument("--steps", type=POSITIVE_INT, help="optimizer steps (default 2000)")
    p.add_argument("--batch-size", type=POSITIVE_INT, help="samples per step (default 32)")
    p.add_argument("--lr", type=LEARNING_RATE, help="peak learning rate (default 3e-4; warmup, then cosine)")
    p.add_argument("--save-every", type=POSITIVE_INT, help="steps between checkpoints (default 500)")
    p.add_argument("--eval-every", type=POSITIVE_INT, help="steps between validation passes (default 250)")
    p.add_argument("--snapshot-every", type=NON_NEGATIVE_INT, metavar="N",
                   help="also keep the weights of every N-th step in OUT/snapshots/step_NNNNNN (for `vla select`)")
    p.add_argument("--ema-decay", type=SHARE_BELOW_ONE, metavar="D",
                   help="with --snapshot-every, also snapshot a moving average of the weights (e.g. 0.999)")
    p.add_argument("--image-shift", type=NON_NEGATIVE_INT, metavar="PX",
                   help="augmentation: shift each training image by up to PX pixels (default 6; 0: off)")
    p.add_argument("--seed", type=SEED)
