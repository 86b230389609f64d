"""`vla augment`: a simulated dataset re-rendered with a fixture standing in its scenes (sim/distractors.py)."""

from __future__ import annotations

import sys

from vla.cli.types import SEED


def cmd_augment(args) -> int:
    from sim.distractors import add_distractor

    report = add_distractor(args.source, args.out, args.distractor, seed=args.seed, append=args.append,
                            on_demo=None if args.quiet else _progress)
    print(f"re-rendered {report.written} demos with a {args.distractor} in the scene ({report.skipped} without room "
          f"for it, left out) -> {report.out}")
    return 0


def _progress(name: str, where: str | None) -> None:
    print(f"{name}: {where or 'no room for the fixture, left out'}", file=sys.stderr, flush=True)


def add_augment_parser(sub) -> None:
    p = sub.add_parser("augment", help="re-render a simulated dataset with a fixture (a bin, a marker) standing "
                                       "still in every scene: the replay of a fine-tune that teaches a task with "
                                       "that fixture, so the old skills learn to ignore it")
    p.add_argument("source", help="a dataset recorded in simulation of a task in the cube scene without a fixture "
                                  "(pick-color, place-color, stack-three): it needs MuJoCo states")
    p.add_argument("--distractor", required=True, metavar="FIXTURE",
                   help="the fixture to render (sim/fixtures.py: bin, marker, crate)")
    p.add_argument("--out", required=True, help="output .hdf5: the source's demos, actions and states as they "
                                                "were, images re-rendered")
    p.add_argument("--seed", type=SEED, default=0, help="where the fixture goes when the scene's own spot for it "
                                                        "is crossed by a cube during the demo")
    p.add_argument("--append", action="store_true", help="add demos to an existing --out file")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_augment)
