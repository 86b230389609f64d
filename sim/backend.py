"""Building and re-seeding robosuite environments the way vla-stack runs them."""

from __future__ import annotations

import copy
import logging
import os

import numpy as np

CONTROL_HZ = 20
JOINT_KP = 150


def joint_position_controller_config(kp: float = JOINT_KP) -> dict:
    """robosuite composite config: absolute joint position targets + the Panda gripper."""
    arm = {
        "type": "JOINT_POSITION",
        "input_type": "absolute",
        "input_max": 1,
        "input_min": -1,
        "output_max": 0.05,
        "output_min": -0.05,
        "kp": kp,
        "damping_ratio": 1,
        "impedance_mode": "fixed",
        "kp_limits": [0, 300],
        "damping_ratio_limits": [0, 10],
        "qpos_limits": None,
        "interpolation": None,
        "ramp_ratio": 0.2,
        "gripper": {"type": "GRIP"},
    }
    return {"type": "BASIC", "body_parts": {"right": copy.deepcopy(arm)}}


def make_robosuite_env(env_name: str, *, control_hz: int = CONTROL_HZ, hard_reset: bool = False,
                       camera_obs: bool = False, cameras=(), image_size: int = 128, construction_seed: int = 0,
                       **scene_kwargs):
    """suite.make with the project's defaults.

    scene_kwargs go to the scene's constructor (a task's TaskSpec.suite_kwargs()). construction_seed
    fixes what robosuite randomises while building the model (e.g. the Lift cube's size) so every
    process builds the same scene; per-episode randomness comes from `reseed`.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    # Mesa llvmpipe: at 128 px one raster thread is faster than two, and leaves the other
    # core to a second worker (collection and eval scale with --workers).
    os.environ.setdefault("LP_NUM_THREADS", "1")
    quiet_robosuite_logs()
    import robosuite

    import sim.color_cubes  # noqa: F401  (registers ColorCubes with robosuite)

    return robosuite.make(
        env_name,
        robots="Panda",
        controller_configs=joint_position_controller_config(),
        has_renderer=False,
        has_offscreen_renderer=True,
        use_camera_obs=camera_obs,
        camera_names=list(cameras) or "agentview",
        camera_heights=image_size,
        camera_widths=image_size,
        control_freq=control_hz,
        hard_reset=hard_reset,
        ignore_done=True,
        horizon=10**6,
        seed=construction_seed,
        **scene_kwargs,
    )


def quiet_robosuite_logs() -> None:
    """Drop robosuite's import-time chatter (macro files, optional robots) below ERROR.

    Set VLA_ROBOSUITE_LOGS=1 to see everything.
    """
    logger = logging.getLogger("robosuite_logs")
    if os.environ.get("VLA_ROBOSUITE_LOGS") != "1" and not logger.filters:
        logger.addFilter(lambda record: record.levelno >= logging.ERROR)


def reseed(env, seed: int) -> None:
    """Make the next reset() place objects exactly as for `seed`, in a reused env.

    robosuite hands one Generator (env.rng) to its placement samplers and robot resets,
    so its state is replaced in place rather than the object.
    """
    env.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state
