"""Options shared by several `vla` subcommands: how a checkpoint is run, and the episode/run options."""

from __future__ import annotations

import argparse

from vla.cli.types import ENSEMBLE_DECAY, IMAGE_SIZE, NON_NEGATIVE_INT, POSITIVE_INT, SEED, WORKERS
from vla.config import READOUTS


def env_config(args):
    from sim.env import EnvConfig

    return EnvConfig(image_size=args.image_size)


def add_policy_options(p) -> None:
    """How a checkpoint runs; each flag overrides the setting stored with the checkpoint (execution.json)."""
    flag = argparse.BooleanOptionalAction
    p.add_argument("--flat", action=flag, help="checkpoints: run the controller without the planner")
    p.add_argument("--execute-steps", type=POSITIVE_INT, help="checkpoints: actions run per chunk (default: half)")
    p.add_argument("--ensemble", action=flag, help="checkpoints: temporal ensembling, re-predict every step")
    p.add_argument("--plan-every", type=POSITIVE_INT, help="checkpoints: control steps between planner calls")
    p.add_argument("--forward-planner", action=flag,
                   help="checkpoints: the planner never goes back to an earlier phase (reach, grasp, lift, move "
                        "above, lower, release)")
    p.add_argument("--planner-memory", action=flag,
                   help="checkpoints: the planner remembers the cubes placed this episode and never reaches for "
                        "one of them again (long-horizon tasks)")
    p.add_argument("--step-planner", action=flag,
                   help="checkpoints (on by default): a long-horizon instruction is pursued one pick-and-place step "
                        "at a time, the planner and controller told the step's instruction (--no-step-planner: whole)")
    p.add_argument("--phase-timeout", type=NON_NEGATIVE_INT, metavar="STEPS",
                   help="checkpoints: once the planner has kept one subtask for STEPS control steps, the "
                        "controller acts without it until the planner moves on (0: off)")
    p.add_argument("--ensemble-decay", type=ENSEMBLE_DECAY,
                   help="with --ensemble: the i-th oldest prediction weighs exp(-DECAY * i); < 0 favours the newest")
    p.add_argument("--readout", choices=READOUTS,
                   help="checkpoints: each action token's likeliest bin, or its expected value (parallel decoding)")
    p.add_argument("--gripper-latch", action=flag,
                   help="checkpoints: send the gripper fully closed above 0.5 and fully open again only below 0.25")


def policy_options(args):
    """The execution flags given on the command line (None: the checkpoint's own setting)."""
    from policies.execution import ExecutionSettings
    from sim.policy_loader import PolicyOptions

    return PolicyOptions(**{name: getattr(args, name) for name in ExecutionSettings.names()})


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=SEED, default=0, help="episode i uses seed SEED+i")
    p.add_argument("--workers", type=WORKERS, default=1)
    p.add_argument("--image-size", type=IMAGE_SIZE, default=128)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
