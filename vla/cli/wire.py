"""`vla serve` and `vla robot`: the two ends of the gRPC wire on the command line."""

from __future__ import annotations

import contextlib
import sys

from vla.cli.options import add_policy_options, policy_options
from vla.cli.types import (BATCH_WAIT_MS, IMAGE_SIZE, MAX_CONCURRENT, MAX_STREAMS, PORT, POSITIVE_INT, SEED,
                           STREAM_IDLE_S)


def _serve_spec(args):
    """The robot spec a served policy expects: a checkpoint's own robot and cameras, else --robot."""
    from robots.spec import get_robot_spec
    from sim.policy_loader import checkpoint_dir

    config_file = checkpoint_dir(args.policy) / "config.json"
    if args.policy == "hold" or not config_file.is_file():
        return get_robot_spec(args.robot or "panda", image_size=args.image_size)
    from vla.config import VlaConfig

    data = VlaConfig.load(config_file).data
    if args.robot and args.robot != data.robot:
        raise ValueError(f"checkpoint {config_file.parent} drives {data.robot!r}, not --robot {args.robot!r}")
    return get_robot_spec(data.robot, image_size=data.image_size, cameras=tuple(data.cameras))


def _set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def cmd_serve(args) -> int:
    from dataclasses import replace

    from policies.rpc_guards import StreamLimits
    from policies.server import per_session_copies, serve, wait_for_stop_signal
    from robots.transport import TlsConfig, read_token_file
    from sim.policy_loader import checkpoint_execution, make_policy

    if args.policy == "expert":
        raise ValueError("--policy expert reads privileged simulator state (object poses), so it runs only inside "
                         "the simulator (vla eval); serve hold, default or a checkpoint directory")
    if args.policy.startswith("grpc://"):
        raise ValueError("a grpc:// policy is already served; serve the checkpoint itself")
    if bool(args.tls_cert) != bool(args.tls_key) or (args.tls_client_ca and not args.tls_cert):
        raise ValueError("--tls-cert and --tls-key go together (and --tls-client-ca needs them)")
    if args.streams_per_peer > args.max_streams:
        raise ValueError(f"--streams-per-peer ({args.streams_per_peer}) cannot exceed --max-streams "
                         f"({args.max_streams})")
    streams = StreamLimits(args.max_streams, args.streams_per_peer, args.stream_idle_s)
    if args.threads is not None:
        _set_torch_threads(args.threads)
    spec = _serve_spec(args)
    token = read_token_file(args.token_file) if args.token_file else None
    tls = TlsConfig.from_files(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
    options = replace(policy_options(args), max_batch=args.max_concurrent, batch_wait_ms=args.batch_wait_ms)
    settings = checkpoint_execution(args.policy, options)
    factory = per_session_copies(lambda: make_policy(args.policy, None, options))
    handle = serve(factory, spec, args.host, args.port, token=token, tls=tls, max_concurrent=args.max_concurrent,
                   batch_wait_ms=args.batch_wait_ms, model_name=args.policy, stream_limits=streams)
    print(f"vla.v1.PolicyService: {args.policy} for {spec.name} on {args.host}:{handle.port} "
          f"({'mutual TLS' if args.tls_client_ca else 'TLS' if tls else 'plaintext'}, "
          f"{'token required' if token else 'no token'}); loading the policy ...", flush=True)
    handle.wait_ready()
    print("ready (health: SERVING)" + (f"; execution: {settings.describe()}" if settings else ""), flush=True)
    signal_name = wait_for_stop_signal()
    print(f"{signal_name}: stopping; calls in flight get 2 s to finish", flush=True)
    handle.stop(grace=2.0)
    return 0


def cmd_robot(args) -> int:
    from pathlib import Path

    from robots.client import RobotClient
    from robots.driver import SimDriver
    from robots.spec import get_robot_spec
    from robots.transport import read_token_file
    from sim.env import VlaEnv
    from sim.robot_recording import RecordingDriver, recording_output

    if bool(args.server) == bool(args.teleop):
        raise ValueError("vla robot needs --server HOST:PORT (a policy server) or --teleop DEVICE (an operator), "
                         "one of them")
    if args.leader_replay and args.teleop != "leader":
        raise ValueError("--leader-replay is the demo a simulated leader arm replays: it needs --teleop leader")
    if args.interventions == "stdin" and not args.server:
        raise ValueError("--interventions stdin corrects a policy server's session: it needs --server")
    spec = get_robot_spec(args.robot, image_size=args.image_size)
    token = read_token_file(args.token_file) if args.token_file else None
    root_cert = Path(args.tls_ca).read_bytes() if args.tls_ca else None
    with contextlib.ExitStack() as cleanup:
        env = cleanup.enter_context(VlaEnv(args.task, image_size=args.image_size))
        sim_driver = SimDriver(env, finger_open_width=spec.finger_open_width)
        instruction = sim_driver.reset(seed=args.seed)
        writer = cleanup.enter_context(recording_output(args.record, env)) if args.record else None
        driver = RecordingDriver(sim_driver) if writer else sim_driver
        source, executor = _command_source(args, env, spec, token, root_cert)
        cleanup.callback(source.close)
        client = RobotClient(driver, source, spec, instruction, keep_records=writer is not None,
                             **_loop_timing(args.simulated_time, executor))
        cleanup.callback(client.close)
        print(f"{args.task} (seed {args.seed}): {instruction!r} -> {args.server or args.teleop + ' operator'}",
              flush=True)
        if _reads_interventions(args):
            from robots.interventions import InterventionConsole

            print("interventions: type `sub: SUBTASK`, `ins: INSTRUCTION` or a text (the server decides), then Enter",
                  flush=True)
            InterventionConsole(source, sys.stdin, out=lambda line: print(line, flush=True)).start()
        report = client.run(steps=args.steps, should_stop=lambda: sim_driver.done)
        success = sim_driver.is_success()
        if writer is not None:
            _save_recording(writer, driver, client.records, args.teleop)
    per_chunk = max(1, report.chunks)
    print(f"ticks {report.ticks} {dict(report.modes)}, chunks {report.chunks} (inference "
          f"{report.inference_ms / per_chunk:.1f} ms, round trip {report.round_trip_ms / per_chunk:.1f} ms), "
          f"expired dropped {report.expired_dropped}, request errors {report.request_errors}, overruns {report.overruns}, "
          f"safety clips {dict(report.clipped)}, success {success}")
    if report.last_error:
        print(f"last request error: {report.last_error}")
    if report.policy_lost:  # a supervisor relies on the exit status
        print(f"vla robot: error: {report.summary()}", file=sys.stderr)
        return 1
    return 0


def _loop_timing(simulated_time: bool, executor) -> dict:
    """The client's clock, sleep and request executor: wall-clock time (requests on a thread of their own
    unless the source asks inline), or simulated time (each request answered inline)."""
    if not simulated_time:
        return {"executor": executor}
    from robots.client import SimulatedTime

    return SimulatedTime().loop_options()


def _reads_interventions(args) -> bool:
    """--interventions stdin, or auto with a policy server and stdin a terminal (an operator at the keyboard)."""
    if args.interventions == "auto":
        return bool(args.server) and sys.stdin is not None and sys.stdin.isatty()
    return args.interventions == "stdin"


def _command_source(args, env, spec, token, root_cert):
    """(where the client gets its chunks, the executor that asks): the policy server, or with --teleop an
    operator driving the arm in end-effector space or a leader arm in joint space (asked on the control
    loop's own thread)."""
    if args.teleop == "leader":
        from robots.client import InlineExecutor
        from robots.leader import LeaderSource
        from sim.leader import simulated_leader

        return LeaderSource(simulated_leader(env, args.leader_replay), spec), InlineExecutor()
    if args.teleop:
        from robots.client import InlineExecutor
        from sim.teleop import DEVICES, EndEffectorTeleop, TeleopSource

        teleop = EndEffectorTeleop(env, DEVICES[args.teleop](seed=args.seed))
        return TeleopSource(teleop, spec.control_hz), InlineExecutor()
    from robots.connection import PolicyConnection

    return PolicyConnection(args.server, spec, token=token, root_cert=root_cert), None


def _save_recording(writer, driver, records, teleop: str | None = None) -> None:
    subtasks = [record.subtask for record in records if record.command is not None]
    if not subtasks:
        print(f"no command was executed: nothing recorded into {writer.path}")  # a new file is removed
        return
    episode = driver.episode(subtasks)
    if teleop:  # an operator names no subtasks: label them from the gripper events and motion
        from sim.teleop import label_teleop_episode

        episode = label_teleop_episode(episode, teleop)
    name = writer.write(episode)
    print(f"recorded {len(subtasks)} steps as {writer.path}:/data/{name}")


def add_serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve a policy to robots over gRPC (vla.v1.PolicyService)")
    p.add_argument("--policy", required=True, help="hold | default | CHECKPOINT_DIR")
    p.add_argument("--host", default="127.0.0.1", help="bind address; beyond loopback a --token-file is required")
    p.add_argument("--port", type=PORT, default=50051, help="0: any free port (the one bound is printed)")
    p.add_argument("--token-file", help="file holding the bearer token clients must send")
    p.add_argument("--tls-cert", help="PEM certificate chain (with --tls-key: TLS)")
    p.add_argument("--tls-key", help="PEM private key")
    p.add_argument("--tls-client-ca", help="PEM CA for client certificates (mutual TLS)")
    p.add_argument("--robot", help="robot spec for hold (default panda); checkpoints bring their own")
    p.add_argument("--image-size", type=IMAGE_SIZE, default=128, help="hold: camera image size clients must send")
    p.add_argument("--max-concurrent", type=MAX_CONCURRENT, default=4,
                   help="inferences at once, batched into one forward pass; more get RESOURCE_EXHAUSTED")
    p.add_argument("--batch-wait-ms", type=BATCH_WAIT_MS, default=0.0,
                   help="how long a request that finds the model idle waits for other robots' requests to share "
                        "its forward pass (requests arriving while a pass runs always share the next)")
    p.add_argument("--threads", type=POSITIVE_INT,
                   help="CPU threads for the model (default: PyTorch's, one per core); 1 when the server shares "
                        "its cores with a simulator or other busy processes")
    p.add_argument("--max-streams", type=MAX_STREAMS, default=16,
                   help="StreamActions (and health Watch) calls open at once, each on a thread of its own; more get "
                        "RESOURCE_EXHAUSTED")
    p.add_argument("--streams-per-peer", type=MAX_STREAMS, default=4, help="of those, at most this many from one "
                   "client address")
    p.add_argument("--stream-idle-s", type=STREAM_IDLE_S, default=5.0,
                   help="a stream without a request for this long ends with DEADLINE_EXCEEDED")
    add_policy_options(p)
    p.set_defaults(func=cmd_serve)


def add_robot_parser(sub) -> None:
    p = sub.add_parser("robot", help="drive a simulated robot from a policy server (the physical-robot client loop)")
    p.add_argument("--server", metavar="HOST:PORT", help="the policy server (or --teleop)")
    p.add_argument("--teleop", choices=["scripted", "leader"],
                   help="drive the robot by an operator instead of a policy, through the same safety filter and "
                        "watchdog (scripted: the headless operator of `vla teleop`; leader: a simulated leader "
                        "arm whose joints are the targets, see robots/leader.py); with --record, its demos")
    p.add_argument("--leader-replay", metavar="FILE.hdf5[:DEMO]",
                   help="--teleop leader replays this demo's actions (default: follows the scripted expert)")
    p.add_argument("--robot", default="panda")
    p.add_argument("--task", default="lift")
    p.add_argument("--steps", type=POSITIVE_INT, default=200,
                   help="control ticks to run (stops early when the episode ends)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--image-size", type=IMAGE_SIZE, default=128)
    p.add_argument("--token-file", help="file holding the server's bearer token")
    p.add_argument("--tls-ca", help="PEM root certificate of the server (switches TLS on)")
    p.add_argument("--record", metavar="FILE.hdf5",
                   help="append what the robot saw and executed to this dataset (a new demo; trains like collected data)")
    p.add_argument("--simulated-time", action="store_true",
                   help="run the control loop in simulated time: ticks one period apart however long each takes to "
                        "compute, every request answered before the tick goes on (reproducible runs on a busy "
                        "machine; a physical robot runs in wall-clock time)")
    p.add_argument("--interventions", choices=["auto", "stdin", "off"], default="auto",
                   help="stdin: each line typed while the robot runs corrects the policy (`sub: grasp` a subtask, "
                        "`ins: TEXT` a new instruction, plain text: the server decides), answered in one line; "
                        "auto (default): stdin when it is a terminal and --server is given; off: never")
    p.set_defaults(func=cmd_robot)
