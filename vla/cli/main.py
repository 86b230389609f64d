"""The `vla` parser and the subcommands that are not about the wire (vla.cli.wire) or benchmarks."""

from __future__ import annotations

import argparse
import json
import os
import sys

from vla.cli.options import add_policy_options, add_run_options, env_config, policy_options
from vla.cli.types import (ACTION_NOISE_RAD, CHUNK_SIZE, IMAGE_SIZE, LEARNING_RATE, NON_NEGATIVE_FLOAT,
                           NON_NEGATIVE_INT, POSITIVE_INT, SEED, SHARE_BELOW_ONE, UNIT_INTERVAL)
from vla.cli.bench import add_bench_parser
from vla.cli.wire import add_robot_parser, add_serve_parser


def cmd_collect(args) -> int:
    from sim.action_noise import ActionNoise
    from sim.collect import collect
    from sim.policy_loader import PolicyOptions, expert_name

    noise = ActionNoise(args.action_noise) if args.action_noise else None
    options = policy_options(args)
    if args.learner is None and options != PolicyOptions():
        raise ValueError("--flat, --ensemble and the other policy options set how --learner runs; "
                         "without --learner the scripted expert collects")
    policy = expert_name(align_yaw=args.expert_yaw == "aligned", corrective=args.learner is not None)
    report = collect(args.task, args.episodes, args.out, seed=args.seed, workers=args.workers, policy=policy,
                     append=args.append, env_config=env_config(args), progress=not args.quiet, noise=noise,
                     learner=args.learner, learner_options=options)
    kept = (f"kept {report.kept} episodes of {args.learner} labelled by {policy} ({report.failed} not successful)"
            if args.learner else f"kept {report.kept} successful episodes, {report.failed} failed "
            f"({report.attempts} attempts)")
    print(f"{kept} in {report.wall_s:.1f} s = {report.episodes_per_min:.1f} episodes/min -> {report.out}")
    return 0


def cmd_eval(args) -> int:
    from sim.evaluate import evaluate, format_summary, write_report
    options = policy_options(args)
    report = evaluate(args.task, args.policy, args.episodes, seed=args.seed, workers=args.workers,
                      video_dir=args.video, env_config=env_config(args), progress=not args.quiet,
                      policy_options=options)
    print(format_summary(report))
    if args.json:
        write_report(report, args.json)
        print(f"report written to {args.json}")
    return 0


def cmd_select(args) -> int:
    from dataclasses import asdict

    from sim import checkpoint_selection as selection

    snapshots = _chosen_snapshots(selection.list_snapshots(args.run), args.snapshot, args.run)
    options = policy_options(args)
    print(f"{len(snapshots)} snapshots x {len(args.task)} task(s) x {args.episodes} episodes, seeds {args.seed}+",
          flush=True)
    successes_of = selection.count_successes(args.episodes, seed=args.seed, workers=args.workers, options=options,
                                             env_config=env_config(args))
    report = selection.select_checkpoint(snapshots, args.task, args.episodes, successes_of,
                                         on_row=lambda row: print(selection.format_row(row), flush=True))
    report.update(seed=args.seed, policy_options=asdict(options))
    print(selection.format_best(report))
    if args.json:
        selection.write_selection(report, args.json)
        print(f"report written to {args.json}")
    return 0


def _chosen_snapshots(snapshots, names: list[str] | None, run: str):
    if not names:
        return snapshots
    unknown = sorted(set(names) - {s.name for s in snapshots})
    if unknown:
        raise ValueError(f"no snapshot {', '.join(unknown)} in {run}/snapshots; "
                         f"there are: {', '.join(s.name for s in snapshots)}")
    return [s for s in snapshots if s.name in names]


def cmd_replay(args) -> int:
    from sim.replay import format_replay, replay_file

    results = replay_file(args.file, demos=args.demo, mode=args.mode, progress=not args.quiet)
    print(format_replay(results))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump([r.to_dict() for r in results], handle, indent=2)
    faithful = all(r.faithful for r in results)
    return 0 if faithful else 1


def cmd_convert(args) -> int:
    from sim.convert import convert_robosuite_demos

    report = convert_robosuite_demos(args.input, args.out, task=args.task, image_size=args.image_size,
                                     progress=not args.quiet)
    print(f"converted {report['demos']} demos ({report['samples']} frames) -> {args.out}")
    return 0


# the model and data options of `vla train`: a checkpoint fine-tuned with --init keeps its own
MODEL_OPTIONS = ("backbone", "decoding", "chunk_size", "action_mode", "image_size", "lora_rank", "subtasks",
                 "skip_idle_frames", "state_noise", "image_grid", "keypoints", "gripper_tokens", "object_loss",
                 "object_token", "coord_conv", "goal_keypoints", "goal_keypoint_loss")


def _refuse_model_options_with_init(args) -> None:
    """--init starts from a checkpoint's model and data options: a model flag given with it cannot be
    honoured, so it is an error rather than silently ignored."""
    if not args.init:
        return
    defaults = build_parser().parse_args(["train", "--data", "-", "--out", "-"])
    given = ["--" + name.replace("_", "-") for name in MODEL_OPTIONS if getattr(args, name) != getattr(defaults, name)]
    if given:
        raise ValueError(f"{', '.join(given)}: --init {args.init} keeps that checkpoint's model and data options; "
                         f"drop {'them' if len(given) > 1 else 'it'}, or train a new model without --init")


def cmd_train(args) -> int:
    _refuse_model_options_with_init(args)
    from sim.policy_loader import checkpoint_dir
    from sim.scene_labels import SIM_SCENE_LABELS
    from vla.config import DataConfig, VlaConfig
    from vla.train import TrainConfig, train

    data = DataConfig(image_size=args.image_size, chunk_size=args.chunk_size, use_subtasks=args.subtasks,
                      action_mode=args.action_mode, skip_idle_frames=args.skip_idle_frames,
                      state_noise=args.state_noise)
    config = VlaConfig(backbone=args.backbone, decoding=args.decoding, data=data, lora_rank=args.lora_rank,
                       tiny=_tiny_config(args))
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
                      save_every=args.save_every, eval_every=args.eval_every, seed=args.seed,
                      snapshot_every=args.snapshot_every, ema_decay=args.ema_decay, image_shift=args.image_shift,
                      relabel_goals=args.relabel_goals)
    init = checkpoint_dir(args.init) if args.init else None
    metrics = train(args.data, args.out, config, cfg, resume=args.resume, progress=not args.quiet, init=init,
                    scene_labels=SIM_SCENE_LABELS)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks
        _store_execution_settings(args.out, init)
        shown = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
        print(f"checkpoint: {args.out}  {shown}")
    return 0


def _store_execution_settings(out: str, init) -> None:
    """How the new checkpoint and its snapshots run: settings already in `out` stay (--resume, or edited
    by hand); otherwise those of the --init checkpoint, or the defaults."""
    from pathlib import Path

    from policies.execution import EXECUTION_FILE, ExecutionSettings

    out = Path(out)
    existing = out / EXECUTION_FILE
    settings = ExecutionSettings.load(out if existing.is_file() else init or out)
    for directory in (out, *sorted((out / "snapshots").glob("*"))):
        settings.save(directory)


def _tiny_config(args):
    from vla.config import TinyModelConfig

    chosen = {name: value for name, value in (("image_grid", args.image_grid), ("keypoints", args.keypoints),
                                              ("gripper_tokens", args.gripper_tokens or None),
                                              ("object_loss", args.object_loss),
                                              ("object_token", args.object_token),
                                              ("coordinate_channels", args.coord_conv or None),
                                              ("goal_keypoints", args.goal_keypoints or None),
                                              ("goal_keypoint_loss", args.goal_keypoint_loss)) if value is not None}
    if not chosen:
        return TinyModelConfig()
    if args.backbone != "tiny":
        flags = ", ".join("--" + name.replace("_", "-") for name in chosen)
        raise ValueError(f"{flags}: only for the tiny backbone; a Hugging Face backbone keeps its own image encoder "
                         "and has no regression head")
    from vla.tiny_model import check_image_grid, check_keypoints

    tiny = TinyModelConfig(**chosen)
    if "image_grid" in chosen:
        check_image_grid(tiny, args.image_size)
    check_keypoints(tiny.keypoints)
    return tiny


def cmd_offline_error(args) -> int:
    from pathlib import Path

    from sim.policy_loader import checkpoint_dir
    from sim.offline_error import format_offline_error, offline_error

    checkpoint = checkpoint_dir(args.policy)
    if not (checkpoint / "config.json").is_file():
        raise FileNotFoundError(f"{checkpoint} is not a checkpoint directory (no config.json); "
                                "pass `default` or a directory written by `vla train`")
    report = offline_error(checkpoint, args.data, every=args.every, max_demos=args.demos)
    print(format_offline_error(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2))
        print(f"report written to {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vla", description="vla-stack: VLA policies in MuJoCo simulation.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_collect_parser, _add_eval_parser, _add_replay_parser, _add_convert_parser,
                _add_train_parser, _add_select_parser, _add_offline_error_parser, add_bench_parser,
                add_serve_parser, add_robot_parser):
        add(sub)
    return parser


def _add_collect_parser(sub) -> None:
    p = sub.add_parser("collect", help="record successful scripted-expert demonstrations to HDF5")
    p.add_argument("--task", required=True)
    p.add_argument("--episodes", type=POSITIVE_INT, required=True, help="number of successful episodes to keep")
    p.add_argument("--out", required=True, help="output .hdf5 file")
    p.add_argument("--append", action="store_true", help="add episodes to an existing --out file")
    p.add_argument("--action-noise", type=ACTION_NOISE_RAD, default=0.0, metavar="RAD",
                   help="execute the expert's joint targets with a drifting offset of this standard deviation "
                        "and record the clean targets (DART-style recovery demos; 0: none)")
    p.add_argument("--expert-yaw", choices=("aligned", "fixed"), default="aligned",
                   help="aligned: the expert turns the fingers to the cube's faces on the way down; fixed: it keeps "
                        "the start yaw, so its joint path depends on where the cube is, not on how it is turned")
    p.add_argument("--learner", metavar="POLICY",
                   help="DAgger: this policy (a checkpoint, `default`) drives and the expert, deciding from the "
                        "scene at every step, labels each state it visits; every episode is kept")
    add_policy_options(p)
    add_run_options(p)
    p.set_defaults(func=cmd_collect)


def _add_select_parser(sub) -> None:
    p = sub.add_parser("select", help="rank a training run's snapshots by closed-loop success in simulation")
    p.add_argument("--run", required=True, help="a `vla train --snapshot-every N` output directory")
    p.add_argument("--task", action="append", required=True, help="task to evaluate on (repeatable)")
    p.add_argument("--snapshot", action="append", metavar="NAME", help="only this snapshot, e.g. step_002000-ema "
                   "(repeatable; default: all)")
    p.add_argument("--episodes", type=POSITIVE_INT, default=20, help="episodes per task and snapshot")
    p.add_argument("--json", help="write the ranking (JSON) here")
    add_policy_options(p)
    add_run_options(p)
    p.set_defaults(func=cmd_select, seed=200000)


def _add_offline_error_parser(sub) -> None:
    p = sub.add_parser("offline-error", help="a checkpoint's joint-target error on a dataset's validation demos")
    p.add_argument("--policy", required=True, help="default | CHECKPOINT_DIR")
    p.add_argument("--data", required=True, help="dataset .hdf5 (its /mask/valid demos are scored)")
    p.add_argument("--every", type=POSITIVE_INT, default=6, help="score every N-th frame")
    p.add_argument("--demos", type=POSITIVE_INT, default=6, help="at most this many validation demos")
    p.add_argument("--json", help="write the report (JSON) here")
    p.set_defaults(func=cmd_offline_error)


def _add_eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a policy on a task")
    p.add_argument("--task", required=True)
    p.add_argument("--policy", required=True, help="expert | expert:fixed-yaw | hold | default | CHECKPOINT_DIR | "
                   "grpc://HOST:PORT (token from $VLA_TOKEN) | replay:FILE[#DEMO] (one demo played blind: "
                   "the open-loop baseline)")
    add_policy_options(p)
    p.add_argument("--episodes", type=POSITIVE_INT, default=10)
    p.add_argument("--json", help="write the report (JSON) here")
    p.add_argument("--video", metavar="DIR", help="write one mp4 per episode into DIR")
    add_run_options(p)
    p.set_defaults(func=cmd_eval)


def _add_replay_parser(sub) -> None:
    p = sub.add_parser("replay", help="replay a dataset in simulation and check it is faithful")
    p.add_argument("file")
    p.add_argument("--demo", action="append", help="demo name (repeatable); default: all")
    p.add_argument("--mode", choices=["actions", "states"], default="actions",
                   help="re-execute the recorded actions, or set the recorded states (files whose actions "
                        "are not in this project's action space)")
    p.add_argument("--json")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_replay)


def _add_convert_parser(sub) -> None:
    p = sub.add_parser("convert", help="re-render a robosuite demo file (states only) into a full dataset")
    p.add_argument("input")
    p.add_argument("--out", required=True)
    p.add_argument("--task", help="task name; default: from the file's robosuite env name")
    p.add_argument("--image-size", type=IMAGE_SIZE, default=128)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_convert)


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a VLA on HDF5 datasets")
    p.add_argument("--data", nargs="+", required=True, metavar="FILE")
    p.add_argument("--out", required=True, help="checkpoint directory")
    p.add_argument("--backbone", default="tiny", help="tiny, or a local Hugging Face checkpoint directory")
    p.add_argument("--decoding", choices=["parallel", "autoregressive", "regression"], default="parallel",
                   help="action tokens in one pass or one by one, or a continuous L1 head on the same "
                        "one-pass queries (tiny backbone)")
    p.add_argument("--steps", type=POSITIVE_INT, default=2000)
    p.add_argument("--batch-size", type=POSITIVE_INT, default=32)
    p.add_argument("--lr", type=LEARNING_RATE, default=3e-4)
    p.add_argument("--chunk-size", type=CHUNK_SIZE, default=8)
    p.add_argument("--action-mode", choices=["absolute", "delta"], default="absolute",
                   help="joint targets as recorded, or relative to the joints at the chunk's start")
    p.add_argument("--image-size", type=IMAGE_SIZE, default=128)
    p.add_argument("--lora-rank", type=NON_NEGATIVE_INT, default=0,
                   help="LoRA rank for Hugging Face backbones (0: full)")
    p.add_argument("--subtasks", action="store_true", help="condition on the dataset's subtask phrases "
                   "(for hierarchical policies; a flat policy is trained without)")
    p.add_argument("--skip-idle-frames", action="store_true",
                   help="leave out frames where the robot rests and the command repeats (timed waits of the demos)")
    p.add_argument("--state-noise", type=UNIT_INTERVAL, default=0.0, metavar="S",
                   help="training only: Gaussian noise of std S on the normalized proprio state (range [-1, 1]; "
                        "e.g. 0.1), so the model steers back to the demos' path instead of following its own drift")
    _add_tiny_model_options(p)
    p.add_argument("--relabel-goals", type=SHARE_BELOW_ONE, default=0.0, metavar="P",
                   help="with an object head: a share P of the samples of multi-cube tasks (pick-color, place-color, "
                        "stack) names another goal of the task; they train the head to find that goal's cubes and "
                        "nothing else, so it reads the colour words rather than where the arm heads (e.g. 0.5)")
    p.add_argument("--image-shift", type=NON_NEGATIVE_INT, default=6, metavar="PX",
                   help="augmentation: shift each training image by up to PX pixels (default 6; 0: off)")
    p.add_argument("--save-every", type=POSITIVE_INT, default=500)
    p.add_argument("--eval-every", type=POSITIVE_INT, default=250)
    p.add_argument("--snapshot-every", type=NON_NEGATIVE_INT, default=0, metavar="N",
                   help="also keep the weights of every N-th step in OUT/snapshots/step_NNNNNN (for `vla select`)")
    p.add_argument("--ema-decay", type=SHARE_BELOW_ONE, default=0.0, metavar="D",
                   help="with --snapshot-every, also snapshot a moving average of the weights (e.g. 0.999)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="fine-tune: start from this checkpoint (`default`, a directory): its weights, model and "
                        "data options, tokenizers and normalization; a fresh optimizer and schedule over --steps")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)


def _add_tiny_model_options(p) -> None:
    """The tiny backbone's model options (read back by _tiny_config)."""
    p.add_argument("--image-grid", type=POSITIVE_INT, metavar="G",
                   help="tiny backbone: G x G image tokens per camera (default 4; at most image size / 16)")
    p.add_argument("--keypoints", type=NON_NEGATIVE_INT, metavar="K",
                   help="tiny backbone: K spatial-softmax keypoints per camera, 8 per extra token (default 0)")
    p.add_argument("--gripper-tokens", action="store_true",
                   help="with --decoding regression: regress the joints, keep the gripper command an action token")
    p.add_argument("--object-loss", type=NON_NEGATIVE_FLOAT, metavar="W",
                   help="tiny backbone: also predict where the goal's cubes are (privileged sim state, training "
                        "only) with weight W (e.g. 1; default 0: off), so the image encoder learns to localize them")
    p.add_argument("--object-token", choices=("predicted", "teacher"),
                   help="tiny backbone, with --object-loss: feed the head's cube offsets to the actions as one more "
                        "input token (predict, then act); in training the token carries the head's own prediction, "
                        "or with teacher the recorded offsets plus 1 cm of noise")
    p.add_argument("--coord-conv", action="store_true",
                   help="tiny backbone: give the image encoder each pixel's x and y as two more input channels, so "
                        "the tokens can say where inside their cell an object is (CoordConv)")
    p.add_argument("--goal-keypoints", action="store_true",
                   help="tiny backbone: the instruction's words give, per camera, a query for the cube to pick and "
                        "one for the cube to put it on; where on the image features each matches best becomes a "
                        "token (a spatial soft-argmax with a language-given query)")
    p.add_argument("--goal-keypoint-loss", type=NON_NEGATIVE_FLOAT, metavar="W",
                   help="with --goal-keypoints: train each keypoint's attention onto the 4x4-pixel patch where "
                        "the goal's cube is in that image (privileged sim state, training only), weight W (e.g. 1)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as error:  # DatasetError is a ValueError
        print(f"vla {args.command}: error: {error}", file=sys.stderr)
        return 2

