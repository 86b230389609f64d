"""`vla teleop`: record demonstrations by driving the simulated Panda in end-effector space (sim/teleop.py):
a person with a keyboard, SpaceMouse or gamepad in a live view (sim/teleop_session.py), or the headless
scripted operator."""

from __future__ import annotations

import sys

from vla.cli.types import IMAGE_SIZE, POSITIVE_INT, SEED

HUMAN_DEVICES = ("keyboard", "spacemouse", "gamepad")


def cmd_teleop(args) -> int:
    from sim.teleop import DEVICES

    if args.device in HUMAN_DEVICES:
        _require_display(args.device)  # before the device and the simulator are built
    device = DEVICES[args.device](seed=args.seed)
    return _live_session(args, device) if args.device in HUMAN_DEVICES else _scripted(args, device)


def _require_display(device: str) -> None:
    from sim.teleop_view import display_problem

    problem = display_problem()
    if problem:
        raise RuntimeError(f"--device {device} needs a display for its live view and keys (none found: {problem}); "
                           "use --device scripted for a headless operator, or run under a desktop session / "
                           "`xvfb-run` / `ssh -X`")


def _scripted(args, device) -> int:
    from sim.env import EnvConfig
    from sim.teleop import record_teleop

    report = record_teleop(args.task, device, args.episodes, args.out, seed=args.seed, append=args.append,
                           keep_failures=args.keep_failures, env_config=EnvConfig(image_size=args.image_size),
                           instruction=args.instruction, on_episode=None if args.quiet else _progress)
    print(f"kept {report.kept} teleoperated episodes ({report.discarded} discarded) -> {report.out}")
    if report.kept < args.episodes:
        print(f"vla teleop: error: only {report.kept} of {args.episodes} episodes succeeded in "
              f"{len(report.episodes)} attempts", file=sys.stderr)
        return 1
    return 0


def _live_session(args, device) -> int:
    from sim.env import EnvConfig
    from sim.teleop_session import run_teleop_session
    from sim.teleop_view import OpenCvWindow

    window = OpenCvWindow(f"vla teleop: {args.task} ({args.device})")
    try:
        report = run_teleop_session(args.task, device, args.episodes, args.out, window, seed=args.seed,
                                    append=args.append, keep_failures=args.keep_failures,
                                    env_config=EnvConfig(image_size=args.image_size), instruction=args.instruction,
                                    device_name=args.device, on_episode=None if args.quiet else _progress)
    finally:
        window.close()
    print(f"kept {report.kept} teleoperated episodes ({report.discarded} discarded) -> {report.out}")
    return 0


def _progress(episode: dict, kept: int) -> None:
    kept_it = episode.get("kept", episode["success"])  # live sessions say; record_teleop keeps successes
    verdict = "kept" if kept_it else "discarded" if episode["success"] else "discarded (no success)"
    print(f"seed {episode['seed']}: {episode['steps']} steps, {verdict}; {kept} kept", file=sys.stderr, flush=True)


def add_teleop_parser(sub) -> None:
    p = sub.add_parser("teleop", help="record demonstrations by driving the simulated arm in end-effector space")
    p.add_argument("--task", required=True)
    p.add_argument("--device", choices=[*HUMAN_DEVICES, "scripted"], required=True,
                   help="keyboard, spacemouse (3Dconnexion) or gamepad (DualSense): you drive the arm in a live "
                        "window (needs a display; the SpaceMouse and gamepad need `pip install hidapi`); keys: "
                        "Enter start/stop recording, k keep, d discard, a again (same scene), n new scene, Esc quit. "
                        "scripted: a headless operator that steers through the same end-effector commands, with "
                        "tremor, pauses and overshoots")
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
