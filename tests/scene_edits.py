"""Moving the scene by hand in tests: put a cube somewhere, then let the physics settle with the arm held."""

import numpy as np


def move_cube(env, color: str, xyz) -> None:
    sim = env.suite_env.sim
    sim.data.set_joint_qpos(env.suite_env.cubes[color].joints[0], np.concatenate([xyz, [1, 0, 0, 0]]))
    sim.forward()


def hold(env, steps: int = 15) -> None:
    """Step with the arm holding its joints and the gripper open."""
    obs = env.observe()
    for _ in range(steps):
        obs, *_ = env.step(np.append(obs["robot0_joint_pos"], 0.0))
