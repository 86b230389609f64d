"""`vla convert`: datasets of other tools into vla-stack's, and back.

    vla convert ROBOSUITE_DEMOS.hdf5 --out F.hdf5          # robosuite DataCollectionWrapper states, re-rendered
    vla convert LEROBOT_DIR --out F.hdf5 [--camera top=agentview ...]   # a LeRobotDataset v3.0
    vla convert F.hdf5 --to lerobot --out DIR              # ours as a LeRobotDataset v3.0
"""

from __future__ import annotations

from pathlib import Path

from vla.cli.types import IMAGE_SIZE, IntRange

FPS = IntRange(1, 1000)


def cmd_convert(args) -> int:
    source = Path(args.input)
    if args.to == "lerobot":
        from sim.lerobot_write import export_lerobot

        report = export_lerobot(source, args.out, fps=args.fps, robot_type=args.robot_type)
        print(f"exported {report['episodes']} episodes ({report['frames']} frames, {report['codec']} video) "
              f"-> {args.out}")
    elif source.is_dir():
        from sim.lerobot_read import import_lerobot

        report = import_lerobot(source, args.out, task=args.task, state_key=args.state_key, action_key=args.action_key,
                                camera_map=camera_map(args.camera), image_size=args.image_size,
                                progress=not args.quiet)
        print(f"imported {report['demos']} LeRobot episodes ({report['samples']} frames, cameras "
              f"{', '.join(report['cameras'])}) -> {args.out}")
    else:
        from sim.convert import convert_robosuite_demos

        report = convert_robosuite_demos(args.input, args.out, task=args.task, image_size=args.image_size or 128,
                                         progress=not args.quiet)
        print(f"converted {report['demos']} demos ({report['samples']} frames) -> {args.out}")
    return 0


def camera_map(pairs: list[str] | None) -> dict[str, str] | None:
    """["top=agentview", ...] -> {"top": "agentview", ...} (None: every camera under its own name)."""
    if not pairs:
        return None
    mapping = {}
    for pair in pairs:
        theirs, sep, ours = pair.partition("=")
        if not sep or not theirs or not ours:
            raise ValueError(f"--camera {pair}: expected THEIRS=OURS, e.g. --camera top=agentview")
        mapping[theirs] = ours
    return mapping


def add_convert_parser(sub) -> None:
    p = sub.add_parser("convert", help="a robosuite demo file or a LeRobotDataset v3.0 into a vla-stack dataset, "
                       "or (--to lerobot) a vla-stack dataset into a LeRobotDataset v3.0")
    p.add_argument("input", help="robosuite demo .hdf5, LeRobot dataset directory, or (--to lerobot) our .hdf5")
    p.add_argument("--out", required=True, help="the new .hdf5 (or, with --to lerobot, a new directory)")
    p.add_argument("--to", choices=["lerobot"], help="write a LeRobotDataset v3.0 instead of reading one")
    p.add_argument("--task", help="task name; default: from the robosuite env name, or lerobot-<robot_type>")
    p.add_argument("--image-size", type=IMAGE_SIZE,
                   help="robosuite: render at this size (default 128); LeRobot: resize frames to it (default: keep)")
    p.add_argument("--state-key", default="observation.state", help="LeRobot: the joints + gripper feature")
    p.add_argument("--action-key", default="action", help="LeRobot: the action feature")
    p.add_argument("--camera", action="append", metavar="THEIRS=OURS",
                   help="LeRobot: import camera THEIRS as obs/OURS_image (repeatable; given: only those cameras), "
                        "e.g. --camera top=agentview --camera hand=robot0_eye_in_hand")
    p.add_argument("--fps", type=FPS, default=20, help="--to lerobot: frames per second (the control rate)")
    p.add_argument("--robot-type", default="panda", help="--to lerobot: info.json's robot_type")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_convert)
