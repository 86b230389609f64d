"""`vla generate`: more demonstrations of a task from a few recorded in simulation (sim/generate.py)."""

from __future__ import annotations

import sys

from vla.cli.types import POSITIVE_INT, SEED


def cmd_generate(args) -> int:
    from sim.generate import MAX_ATTEMPTS_PER_EPISODE, generate_demos

    report = generate_demos(args.source, args.episodes, args.out, seed=args.seed, sources=args.sources,
                            append=args.append, on_episode=None if args.quiet else _progress)
    print(f"generated {report.kept} episodes from {report.sources} source demos in {report.attempts} attempts "
          f"-> {report.out}")
    if report.kept < args.episodes:
        print(f"vla generate: error: only {report.kept} of {args.episodes} episodes succeeded in "
              f"{MAX_ATTEMPTS_PER_EPISODE * args.episodes} attempts", file=sys.stderr)
        return 1
    return 0


def _progress(episode: dict, kept: int) -> None:
    verdict = "kept" if episode["success"] else "failed"
    print(f"seed {episode['seed']} from {episode['source']}: {episode['steps']} steps, {verdict}; {kept} kept",
          file=sys.stderr, flush=True)


def add_generate_parser(sub) -> None:
    p = sub.add_parser("generate", help="more demonstrations from a few: each demo's object-centric segments moved "
                                        "into new simulated scenes, the successful episodes kept")
    p.add_argument("source", help="a dataset recorded in simulation (`vla teleop`, `vla collect`: with MuJoCo states)")
    p.add_argument("--out", required=True, help="output .hdf5 (the layout of `vla collect`)")
    p.add_argument("--episodes", type=POSITIVE_INT, required=True, help="successful episodes to keep")
    p.add_argument("--sources", type=POSITIVE_INT, help="use only the first N demos of the source (default: all)")
    p.add_argument("--seed", type=SEED, default=500000,
                   help="episode i uses seed SEED+i (keep them apart from the seeds you evaluate on)")
    p.add_argument("--append", action="store_true", help="add episodes to an existing --out file")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_generate)
