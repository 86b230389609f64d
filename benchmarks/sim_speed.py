"""`vla bench sim`: env steps/s with both cameras, ours vs robosuite's defaults, one run."""

from __future__ import annotations

import platform
import time

import numpy as np

from sim.env import DEFAULT_CAMERAS, VlaEnv
from sim.tasks import get_task


def _time_steps(step, hold_action: np.ndarray, steps: int) -> float:
    step(hold_action)  # warm-up
    started = time.perf_counter()
    for _ in range(steps):
        step(hold_action)
    return steps / (time.perf_counter() - started)


def _time_reset(reset, repeats: int = 3) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        reset()
    return (time.perf_counter() - started) / repeats


def bench_ours(task: str, steps: int, image_size: int) -> dict:
    env = VlaEnv(task, image_size=image_size)
    obs, _ = env.reset(seed=0)
    hold = np.append(obs["robot0_joint_pos"], 0.0)
    result = {"steps_per_s": _time_steps(env.step, hold, steps), "reset_s": _time_reset(lambda: env.reset(seed=0))}
    env.close()
    return result


def bench_robosuite_default(task: str, steps: int, image_size: int) -> dict:
    """robosuite.make's own defaults (render settings, hard_reset=True) on the same scene,
    controller and cameras."""
    from sim.backend import make_robosuite_env

    spec = get_task(task)
    env = make_robosuite_env(spec.robosuite_env, hard_reset=True, camera_obs=True, cameras=DEFAULT_CAMERAS,
                             image_size=image_size, **spec.suite_kwargs())
    obs = env.reset()
    hold = np.append(obs["robot0_joint_pos"], -1.0)
    result = {"steps_per_s": _time_steps(env.step, hold, steps), "reset_s": _time_reset(env.reset)}
    env.close()
    return result


def bench_sim(task: str = "lift", steps: int = 100, image_size: int = 128) -> dict:
    if steps < 1:
        raise ValueError(f"--steps must be at least 1, got {steps}")
    ours = bench_ours(task, steps, image_size)
    default = bench_robosuite_default(task, steps, image_size)
    return {
        "benchmark": "sim", "task": task, "cameras": list(DEFAULT_CAMERAS), "image_size": image_size,
        "steps": steps, "ours": ours, "robosuite_default": default,
        "step_ratio": ours["steps_per_s"] / default["steps_per_s"],
        "reset_ratio": default["reset_s"] / ours["reset_s"],
        "machine": {"cpu_count": _cpu_count(), "python": platform.python_version()},
    }


def format_bench(report: dict) -> str:
    ours, default = report["ours"], report["robosuite_default"]
    return "\n".join([
        f"task {report['task']}, cameras {', '.join(report['cameras'])} at {report['image_size']}px, "
        f"{report['steps']} steps",
        f"{'':20}{'steps/s':>10}{'reset (s)':>12}",
        f"{'vla-stack':20}{ours['steps_per_s']:>10.1f}{ours['reset_s']:>12.2f}",
        f"{'robosuite defaults':20}{default['steps_per_s']:>10.1f}{default['reset_s']:>12.2f}",
        f"speed-up: {report['step_ratio']:.2f}x steps/s, {report['reset_ratio']:.1f}x faster resets",
    ])


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
