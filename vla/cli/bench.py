"""`vla bench {sim,inference,serve,soak}`: the benchmarks (benchmarks/) on the command line."""

from __future__ import annotations

import json
import sys

from vla.cli.types import BENCH_SECONDS, POSITIVE_INT, SOAK_CLIENTS, SOAK_HZ


def _bench_serve(args) -> dict:
    """`vla bench serve` (the null policy: the wire's cost) or `vla bench serve --policy P` (serving a model)."""
    from benchmarks import serve as bench_serve
    from benchmarks.serve_report import format_serve, format_serve_policy

    options = {"seconds": 3.0 if args.seconds is None else args.seconds,
               "repeats": 3 if args.repeats is None else args.repeats, "progress": _progress(args)}
    if args.policy:
        report = bench_serve.bench_serve_policy(args.policy, **options)
        print(format_serve_policy(report))
    else:
        report = bench_serve.bench_serve(**options)
        print(format_serve(report))
    return report


def _bench_soak(args) -> dict:
    """`vla bench soak`: robots at a fixed rate against `vla serve --policy P` (default hold) on loopback."""
    from benchmarks.soak import SoakConfig, format_soak, run_soak

    config = SoakConfig(policy=args.policy or "hold", clients=args.clients, hz=args.hz,
                        seconds=60.0 if args.seconds is None else args.seconds)
    report = run_soak(config, progress=_progress(args))
    print(format_soak(report))
    return report


def _bench_backbone(args) -> dict:
    """`vla bench inference --backbone DIR`: DIR (full fine-tuning and LoRA) against the tiny default."""
    from benchmarks.backbone import Settings, bench_backbone, format_backbone

    settings = Settings(repeats=10 if args.repeats is None else args.repeats, train_steps=args.train_steps,
                        batch_size=args.batch_size, threads=args.threads)
    report = bench_backbone(args.backbone, settings, progress=_progress(args))
    print(format_backbone(report))
    return report


def _progress(args):
    return None if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))


def cmd_bench(args) -> int:
    if args.policy and args.what not in ("serve", "soak"):
        raise ValueError(f"--policy belongs to `vla bench serve` and `vla bench soak`, not `vla bench {args.what}`")
    if args.backbone and args.what != "inference":
        raise ValueError(f"--backbone belongs to `vla bench inference`, not `vla bench {args.what}`")
    if args.what == "inference" and args.backbone:
        report = _bench_backbone(args)
    elif args.what == "inference":
        from benchmarks.inference import bench_inference, format_inference

        report = bench_inference(repeats=50 if args.repeats is None else args.repeats, threads=args.threads)
        print(format_inference(report))
    elif args.what == "serve":
        report = _bench_serve(args)
    elif args.what == "soak":
        report = _bench_soak(args)
    else:
        from benchmarks.sim_speed import bench_sim, format_bench

        report = bench_sim(task=args.task, steps=args.steps)
        print(format_bench(report))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
        print(f"report written to {args.json}")
    return 0


def add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks")
    p.add_argument("what", choices=["sim", "inference", "serve", "soak"],
                   help="sim: env steps/s, ours vs robosuite defaults; inference: predict latency of the tiny VLA "
                        "(with --backbone DIR: that checkpoint's latency, training speed and memory vs the tiny); "
                        "serve: gRPC serving latency/throughput vs websocket+msgpack and FastAPI+JSON servers; "
                        "soak: robots at a fixed rate against `vla serve` on loopback for a while: errors, "
                        "latency tail, server memory")
    p.add_argument("--json")
    p.add_argument("--task", default="lift")
    p.add_argument("--steps", type=POSITIVE_INT, default=100, help="sim: env steps timed per side")
    p.add_argument("--repeats", type=POSITIVE_INT, help="inference: predict calls timed per mode (default 50); "
                   "serve: times each figure is measured (default 3)")
    p.add_argument("--seconds", type=BENCH_SECONDS, help="serve: seconds per measurement (default 3); soak: "
                   "seconds in all (default 60)")
    p.add_argument("--quiet", action="store_true", help="serve, soak, inference --backbone: no progress lines")
    p.add_argument("--backbone", metavar="DIR", help="inference: this Hugging Face checkpoint (full fine-tuning and "
                   "LoRA) against the tiny default: chunk latency in both decoding modes, training samples/s, "
                   "peak memory; each model in a fresh process (default --repeats 10)")
    p.add_argument("--threads", type=POSITIVE_INT, default=2, help="inference: CPU threads (torch.set_num_threads)")
    p.add_argument("--train-steps", type=POSITIVE_INT, default=3, help="inference --backbone: training steps timed")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=4, help="inference --backbone: training batch size")
    p.add_argument("--policy", help="serve: serve this checkpoint (default or a directory) instead of the null "
                   "policy, gRPC batching the sessions' forward passes; soak: the policy `vla serve` serves "
                   "(default hold)")
    p.add_argument("--clients", type=SOAK_CLIENTS, default=4, help="soak: robots, one session each")
    p.add_argument("--hz", type=SOAK_HZ, default=30.0, help="soak: Act calls per second per robot")
    p.set_defaults(func=cmd_bench)
