"""Turning a --policy argument into a Policy for a given environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from policies.base import Policy

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "policies" / "checkpoints" / "default"  # package data
EXPERT_ALIGNS_YAW = {"expert": True, "expert:fixed-yaw": False}  # --policy name -> ExpertConfig.align_yaw
# the state-feedback experts that can label any state (DAgger, sim.experts.corrective)
CORRECTIVE_ALIGNS_YAW = {"expert:corrective": True, "expert:corrective-fixed-yaw": False}
KNOWN = (*EXPERT_ALIGNS_YAW, *CORRECTIVE_ALIGNS_YAW, "hold", "default", "a checkpoint directory", "grpc://HOST:PORT", "replay:FILE[#DEMO]")


def expert_name(align_yaw: bool, corrective: bool = False) -> str:
    """The --policy name of the scripted (or state-feedback) expert that does (not) turn the
    fingers to the cube."""
    names = CORRECTIVE_ALIGNS_YAW if corrective else EXPERT_ALIGNS_YAW
    return next(name for name, aligns in names.items() if aligns == align_yaw)


@dataclass(frozen=True)
class PolicyOptions:
    """How a checkpoint is run: hierarchical (planner + controller) unless `flat`."""

    flat: bool = False
    execute_steps: int | None = None  # None: half the chunk
    ensemble: bool = False
    plan_every: int = 8
    ensemble_decay: float = 0.1  # with ensemble: the i-th oldest prediction weighs exp(-decay * i)
    gripper_latch: bool = False  # gripper commands become 0 or 1 with hysteresis (policies.chunking.GripperLatch)
    readout: str = "argmax"  # or "mean": each action token's expected value (parallel decoding)
    forward_planner: bool = False  # the planner never goes back to an earlier phase (policies.hierarchical)
    phase_timeout: int = 0  # control steps after which a subtask the planner keeps is dropped (0: off)
    # 0: one caller (vla eval). n >= 1: served, the sessions share the checkpoint: its forward passes run on a
    # thread of their own, concurrent predictions in one pass of up to n observations, the first waiting up to
    # batch_wait_ms for others (VlaPredictor.share_between_threads)
    max_batch: int = 0
    batch_wait_ms: float = 0.0


def checkpoint_dir(spec: str) -> Path:
    """The directory a --policy names: the shipped checkpoint for `default`, else the path as given."""
    return DEFAULT_CHECKPOINT if spec == "default" else Path(spec)


def make_policy(spec: str, env, options: PolicyOptions = PolicyOptions()) -> Policy:
    """`expert` (privileged scripted expert, sim only; `expert:corrective` decides its phase from
    the scene at every step, so it can take over from any state), `hold` (keeps the current pose),
    `default` (the shipped checkpoint), a checkpoint directory, `grpc://HOST:PORT` (a policy
    server; its bearer token, if it needs one, from the VLA_TOKEN environment variable), or
    `replay:FILE[#DEMO]` (one demo's commands played blind: the open-loop baseline)."""
    if spec.startswith("grpc://"):
        if options != PolicyOptions():
            raise ValueError("--flat, --ensemble, --ensemble-decay, --gripper-latch, --readout, --execute-steps, "
                             "--plan-every, --forward-planner and --phase-timeout of a served policy are set where "
                             "it is served: pass them to `vla serve`")
        import os

        from policies.remote import RemotePolicy

        return RemotePolicy(spec, token=os.environ.get("VLA_TOKEN") or None)
    if spec in EXPERT_ALIGNS_YAW:
        from sim.experts.scripted import ExpertConfig, ScriptedExpert

        return ScriptedExpert(env, ExpertConfig(align_yaw=EXPERT_ALIGNS_YAW[spec]))
    if spec in CORRECTIVE_ALIGNS_YAW:
        from sim.experts.corrective import CorrectiveExpert
        from sim.experts.scripted import ExpertConfig

        return CorrectiveExpert(env, ExpertConfig(align_yaw=CORRECTIVE_ALIGNS_YAW[spec]))
    if spec.startswith("replay:"):
        from policies.open_loop import load_replay

        return load_replay(spec, env.task.name if env is not None else None)
    if spec == "hold":
        from policies.hold import HoldPolicy

        return HoldPolicy()
    if spec == "default" or Path(spec).is_dir():
        return checkpoint_policy(checkpoint_dir(spec), options)
    raise ValueError(f"unknown policy {spec!r}; available now: {', '.join(KNOWN)}")


def checkpoint_policy(directory: Path, options: PolicyOptions) -> Policy:
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint {directory} does not exist; reproduce it with `make default-model`")
    from policies.chunking import ChunkExecutor, GripperLatch
    from policies.hierarchical import from_predictor
    from policies.vla_policy import FlatVlaPolicy
    from vla.inference import VlaPredictor, check_readout

    predictor = VlaPredictor.load(directory)
    check_readout(options.readout, predictor.config.decoding)  # refused before the robot moves, not at its first step
    predictor.readout = options.readout
    if options.max_batch:
        predictor.share_between_threads(options.max_batch, options.batch_wait_ms / 1000.0)
    execute = options.execute_steps or max(1, predictor.chunk_size // 2)
    latch = GripperLatch() if options.gripper_latch else None
    executor = ChunkExecutor(execute, options.ensemble, options.ensemble_decay, latch)
    if options.flat or not predictor.has_planner:
        return FlatVlaPolicy(predictor, executor)
    return from_predictor(predictor, options.forward_planner, plan_every=options.plan_every, executor=executor,
                          phase_timeout=options.phase_timeout)
