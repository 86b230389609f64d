"""`vla teleop`: record demonstrations by driving the simulated Panda in end-effector space (sim/teleop.py)."""

from __future__ import annotations

import sys

from vla.cli.types import IMAGE_SIZE, POSITIVE_INT, SEED


def cmd_teleop(args) -> int:
    from sim.env import EnvConfig
    from sim.teleop import DEVICES, record_teleop

    device = DEVICES[args.device](seed=args.seed)
    progress = None if args.quiet else _progress
    report = record_teleop(args.task, device, args.episodes, args.out, seed=args.seed, append=args.append,
                           keep_failures=args.keep_failures, env_config=EnvConfig(image_size=args.image_size),
                           instruction=args.instruction, on_episode=progress)
    print(f"kept {report.kept} teleoperated episodes ({report.discarded} discarded) -> {report.out}")
    if report.kept < args.episodes:
        print(f"vla teleop: error: only {report.kept} of {args.episodes} episodes succeeded in "
              f"{len(report.episodes)} attempts", file=sys.stderr)
        return 1
    return 0


def _progress(episode: dict, kept: int) -> None:
    verdict = "kept" if episode["success"] else "discarded (no success)"
    print(f"seed {episode['seed']}: {episode['steps']} steps, {verdict}; {kept} kept", file=sys.stderr, flush=True)


def add_teleop_parser(sub) -> None:
    p = sub.add_parser("teleop", help="record demonstrations by driving the simulated arm in end-effector space")
    p.add_argument("--task", required=True)
    p.add_argument("--device", choices=["scripted"], required=True,
                   help="scripted: a headless operator that steers through the same end-effector commands as a "
                        "device, with tremor, pauses and overshoots (keyboard, SpaceMouse and gamepad: not yet)")
    p.add_argument("--out", required=True, help="output .hdf5 (the layout of `vla collect`)")
    p.add_argument("--episodes", type=POSITIVE_INT, default=10, help="successful episodes to keep")
    p.add_argument("--seed", type=SEED, default=0, help="episode i uses seed SEED+i")
    p.add_argument("--append", action="store_true", help="add episodes to an existing --out file")
    p.add_argument("--keep-failures", action="store_true", help="keep episodes that do not succeed too")
    p.add_argument("--instruction", help="record this as every demo's instruction (default: the task's phrasing of "
                   "the episode's goal)")
    p.add_argument("--image-size", type=IMAGE_SIZE, default=128)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_teleop)
