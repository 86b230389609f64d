"""Turning a --policy argument into a Policy for a given environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from policies.base import Policy
from policies.execution import ExecutionSettings

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
    """How a checkpoint is run: each execution field overrides the checkpoint's own setting
    (policies.execution.ExecutionSettings, stored with it); None keeps the checkpoint's."""

    flat: bool | None = None
    execute_steps: int | None = None
    ensemble: bool | None = None
    plan_every: int | None = None
    ensemble_decay: float | None = None
    gripper_latch: bool | None = None
    readout: str | None = None
    forward_planner: bool | None = None
    planner_memory: bool | None = None
    step_planner: bool | None = None
    phase_timeout: int | None = None
    # 0: one caller (vla eval). n >= 1: served, the sessions share the checkpoint: its forward passes run on a
    # thread of their own, concurrent predictions in one pass of up to n observations, the first waiting up to
    # batch_wait_ms for others (VlaPredictor.share_between_threads)
    max_batch: int = 0
    batch_wait_ms: float = 0.0

    def overrides(self) -> dict:
        """{execution setting: value} for the settings these options set."""
        return {name: getattr(self, name) for name in ExecutionSettings.names() if getattr(self, name) is not None}


def execution_settings(directory: Path, options: PolicyOptions) -> ExecutionSettings:
    """The settings a checkpoint runs with: its own (execution.json), overridden by options."""
    return ExecutionSettings.load(directory).overridden(options.overrides())


def checkpoint_execution(spec: str, options: PolicyOptions) -> ExecutionSettings | None:
    """The settings a checkpoint --policy (default, a directory) runs with; None for other policies."""
    return execution_settings(checkpoint_dir(spec), options) if is_checkpoint(spec) else None


def is_checkpoint(spec: str) -> bool:
    """Whether a --policy names a checkpoint: `default` or a directory."""
    return spec == "default" or Path(spec).is_dir()


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
                             "--plan-every, --forward-planner, --step-planner and --phase-timeout of a served policy "
                             "are set where it is served: pass them to `vla serve`")
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
        return load_replay(spec, env.task.name if env is not None else None)
    if spec == "hold":
        from policies.hold import HoldPolicy

        return HoldPolicy()
    if is_checkpoint(spec):
        return checkpoint_policy(checkpoint_dir(spec), options)
    raise ValueError(f"unknown policy {spec!r}; available now: {', '.join(KNOWN)}")


def checkpoint_policy(directory: Path, options: PolicyOptions) -> Policy:
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint {directory} does not exist; reproduce it with `make default-model`")
    from policies.chunking import ChunkExecutor, GripperLatch
    from policies.hierarchical import from_predictor
    from policies.vla_policy import FlatVlaPolicy
    from sim.tasks import step_instructions
    from vla.inference import VlaPredictor, check_readout

    settings = execution_settings(directory, options)
    predictor = VlaPredictor.load(directory)
    check_readout(settings.readout, predictor.config.decoding)  # refused before the robot moves, not at its first step
    predictor.readout = settings.readout
    if options.max_batch:
        predictor.share_between_threads(options.max_batch, options.batch_wait_ms / 1000.0)
    execute = settings.execute_steps or max(1, predictor.chunk_size // 2)
    latch = GripperLatch() if settings.gripper_latch else None
    executor = ChunkExecutor(execute, settings.ensemble, settings.ensemble_decay, latch)
    if settings.flat or not predictor.has_planner:
        return FlatVlaPolicy(predictor, executor)
    return from_predictor(predictor, settings.forward_planner, plan_every=settings.plan_every, executor=executor,
                          phase_timeout=settings.phase_timeout, memory=settings.planner_memory,
                          step_instructions=step_instructions if settings.step_planner else None)


def parse_replay_spec(spec: str) -> tuple[str, str | None]:
    """`replay:FILE[#DEMO]` -> (FILE, DEMO or None for the file's first demo)."""
    body = spec.removeprefix("replay:")
    path, _, demo = body.partition("#")
    if not path:
        raise ValueError(f"{spec!r}: name a dataset, e.g. replay:data/lift.hdf5#demo_0")
    return path, demo or None


def load_replay(spec: str, task: str | None) -> Policy:
    """The policy `replay:FILE[#DEMO]` names; refused when FILE was recorded on another task
    (None: the task is not known here, e.g. when served)."""
    from policies.open_loop import OpenLoopReplay
    from sim.dataset import open_dataset, read_episode

    path, demo = parse_replay_spec(spec)
    info = open_dataset(path)
    recorded = info.env_args.get("task", info.env_name)
    if task is not None and recorded != task:
        raise ValueError(f"{path} holds {recorded!r} demos, the episode is {task!r}: "
                         f"replay a file collected with `vla collect --task {task}`")
    name = demo or info.demo_names[0]
    return OpenLoopReplay(read_episode(path, name).actions, name=f"replay {name}")
