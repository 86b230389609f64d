"""Running episodes over seeds in worker processes, each with its own env and policy."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from sim.action_noise import ActionNoise
from sim.env import EnvConfig
from sim.interventions import InterventionPlan
from sim.policy_loader import PolicyOptions
from sim.takeover import TakeoverRule


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to build its env and policy (picklable)."""

    task: str
    policy: str
    env_config: EnvConfig = EnvConfig()
    record: bool = False
    video_dir: str | None = None
    execute_steps: int | None = None
    policy_options: PolicyOptions = PolicyOptions()
    noise: ActionNoise | None = None  # DART-style perturbation of the executed actions
    labeller: str | None = None  # DAgger: `policy` drives, this expert's actions are recorded
    takeover: TakeoverRule | None = None  # DAgger: when the labeller drives instead (sim.takeover)
    interventions: InterventionPlan | None = None  # `vla eval --intervene` (sim.interventions)


_worker_state: dict = {}


def _init_worker(spec: WorkerSpec) -> None:
    """A pool worker's start; an error in it is raised by the worker's first episode instead (a pool restarts a
    worker whose start fails, forever: `vla eval --workers 2` hung on a corrupt checkpoint)."""
    try:
        _start_worker(spec)
    except Exception as error:
        _worker_state.update(error=error)


def _start_worker(spec: WorkerSpec) -> None:
    from sim.env import VlaEnv
    from sim.interventions import Operator
    from sim.policy_loader import make_policy

    env = VlaEnv(spec.task, spec.env_config)
    labeller = make_policy(spec.labeller, env) if spec.labeller else None
    operator = Operator(spec.interventions, env) if spec.interventions else None
    _worker_state.update(spec=spec, env=env, policy=make_policy(spec.policy, env, spec.policy_options),
                         labeller=labeller, operator=operator)
    _one_torch_thread()


def _one_torch_thread() -> None:
    """Rendering, physics and inference take turns in a worker: a second torch thread only
    spins against the renderer (measured: a 150-step episode 16.5 s -> 9.1 s)."""
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _run_seed(seed: int):
    from sim.rollout import run_episode

    if "error" in _worker_state:
        raise _worker_state["error"]
    spec: WorkerSpec = _worker_state["spec"]
    result = run_episode(_worker_state["env"], _worker_state["policy"], seed, record=spec.record,
                         video=spec.video_dir is not None, execute_steps=spec.execute_steps,
                         noise=spec.noise, labeller=_worker_state["labeller"], operator=_worker_state["operator"],
                         takeover=spec.takeover)
    if spec.video_dir is not None:
        from pathlib import Path

        from sim.video import write_video

        path = Path(spec.video_dir) / f"{spec.task}_seed{seed:06d}.mp4"
        write_video(path, result.frames, result.instruction, result.subtasks, success=result.success)
        result.frames = []
    return result


def run_seeds(spec: WorkerSpec, seeds: Iterable[int], workers: int = 1) -> Iterator:
    """Yield RolloutResults in seed order; at most 2 * workers episodes run ahead.

    Stop early by closing the generator (it shuts the workers down).
    """
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if workers == 1:
        _start_worker(spec)
        try:
            yield from map(_run_seed, seeds)
        finally:
            _worker_state["env"].close()
            _worker_state.clear()
        return
    ctx = mp.get_context("spawn")  # EGL contexts do not survive fork
    with ctx.Pool(workers, initializer=_init_worker, initargs=(spec,)) as pool:
        yield from _ordered(pool.apply_async, _run_seed, iter(seeds), window=2 * workers)


def _ordered(submit: Callable, fn: Callable, seeds: Iterator[int], window: int) -> Iterator:
    pending = []
    for seed in seeds:
        pending.append(submit(fn, (seed,)))
        if len(pending) >= window:
            yield pending.pop(0).get()
    while pending:
        yield pending.pop(0).get()
