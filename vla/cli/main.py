"""The `vla` parser and the subcommands that are not about the wire (vla.cli.wire) or benchmarks."""

from __future__ import annotations

import argparse
import json
import os
import sys

from vla.cli.options import add_policy_options, add_run_options, env_config, policy_options
from vla.cli.types import ACTION_NOISE_RAD, POSITIVE_INT
from vla.cli.bench import add_bench_parser
from vla.cli.convert import add_convert_parser
from vla.cli.generate import add_generate_parser
from vla.cli.teleop import add_teleop_parser
from vla.cli.train import add_train_parser
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
                     learner=args.learner, learner_options=options,
                     takeover=takeover_rule(args))
    kept = (f"kept {report.kept} episodes of {args.learner} labelled by {policy} ({report.failed} not successful)"
            + (f", as the {report.written} stretches the expert drove" if args.takeover_only else "")
            if args.learner else f"kept {report.kept} successful episodes, {report.failed} failed "
            f"({report.attempts} attempts)")
    print(f"{kept} in {report.wall_s:.1f} s = {report.episodes_per_min:.1f} episodes/min -> {report.out}")
    return 0


def takeover_rule(args):
    from sim.takeover import TakeoverRule

    if args.takeover_only and not args.takeover:
        raise ValueError("--takeover-only keeps the stretches the expert drove: give --takeover STEPS as well")
    return TakeoverRule(args.takeover, expert_only=args.takeover_only) if args.takeover else None


def cmd_eval(args) -> int:
    from sim.evaluate import evaluate, format_summary, write_report
    from sim.interventions import parse_plan

    options = policy_options(args)
    interventions = parse_plan(args.intervene) if args.intervene else None
    report = evaluate(args.task, args.policy, args.episodes, seed=args.seed, workers=args.workers,
                      video_dir=args.video, env_config=env_config(args), progress=not args.quiet,
                      policy_options=options, interventions=interventions)
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
    for add in (_add_collect_parser, _add_eval_parser, _add_replay_parser, add_convert_parser,
                add_train_parser, _add_select_parser, _add_offline_error_parser, add_bench_parser,
                add_serve_parser, add_robot_parser, add_teleop_parser, add_generate_parser):
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
    p.add_argument("--takeover", type=POSITIVE_INT, metavar="STEPS",
                   help="with --learner: once the expert has named the same subtask for the learner's states for "
                        "STEPS control steps (stuck), the expert drives for 60 steps, then hands back "
                        "(HG-DAgger-style: recovery demos from where the learner got stuck, without the stuck frames)")
    p.add_argument("--takeover-only", action="store_true",
                   help="with --takeover: keep only the stretches the expert drove, each as a demo of its own "
                        "(HG-DAgger); the learner-driven frames are left out")
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
    p.add_argument("--intervene", action="append", metavar="STEP:TEXT|oracle[:N]",
                   help="scripted operator interventions (repeatable), recorded per episode in the report: STEP:TEXT "
                        "at control step STEP (kind auto; STEP:sub:TEXT a subtask, STEP:ins:TEXT an instruction), "
                        "or oracle[:N]: once per episode, the scene's subtask (privileged) after the policy's has "
                        "disagreed with it for N steps in a row (default 16)")
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as error:  # DatasetError is a ValueError
        print(f"vla {args.command}: error: {error}", file=sys.stderr)
        return 2

