"""VlaEnv: a robosuite task as a gymnasium environment with language goals.

Observation (dict):
    "<camera>_image"        (H, W, 3) uint8, row 0 = top, for each camera
    "robot0_joint_pos"      (7,) float64
    "robot0_gripper_qpos"   (2,) float64
    "robot0_eef_pos"        (3,) float64, "robot0_eef_quat" (4,) float64 (x, y, z, w)
    "instruction"           str
Action (8,): 7 absolute joint position targets (rad) + gripper in [0, 1] (1 = closed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from sim.backend import CONTROL_HZ, make_robosuite_env, reseed
from sim.rendering import CameraRenderer, RenderSettings
from sim.tasks import Goal, TaskSpec, get_task

DEFAULT_CAMERAS = ("agentview", "robot0_eye_in_hand")
PROPRIO_KEYS = {"robot0_joint_pos": 7, "robot0_gripper_qpos": 2, "robot0_eef_pos": 3, "robot0_eef_quat": 4}
NUM_ARM_JOINTS = 7


@dataclass(frozen=True)
class EnvConfig:
    image_size: int = 128
    cameras: tuple[str, ...] = DEFAULT_CAMERAS
    control_hz: int = CONTROL_HZ
    max_steps: int | None = None  # None: the task's own limit
    fast_render: bool = True


class VlaEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(self, task: str | TaskSpec = "lift", config: EnvConfig = EnvConfig(), **overrides):
        config = EnvConfig(**{**config.__dict__, **overrides})
        if config.image_size < 8:
            raise ValueError(f"image_size must be at least 8 pixels, got {config.image_size}")
        self.task = get_task(task) if isinstance(task, str) else task
        self.config = config
        self.max_steps = config.max_steps or self.task.max_steps
        self.suite_env = make_robosuite_env(self.task.robosuite_env, control_hz=config.control_hz,
                                            **self.task.suite_kwargs())
        settings = RenderSettings(config.image_size, config.image_size, fast=config.fast_render,
                                  cull=config.fast_render)
        self.renderer = CameraRenderer(self.suite_env.sim, config.cameras, settings)
        self.joint_low, self.joint_high = self._arm_joint_limits()
        self.action_space = gym.spaces.Box(
            np.append(self.joint_low, 0.0).astype(np.float32), np.append(self.joint_high, 1.0).astype(np.float32)
        )
        self.observation_space = self._make_observation_space()
        self.goal = Goal("red")
        self.instruction = ""
        self.seed_used: int | None = None
        self.steps = 0

    # -- gymnasium API -------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(2**31))
        self.seed_used = int(seed)
        reseed(self.suite_env, seed)
        goal_rng = np.random.default_rng([seed, 1])
        self.set_goal(self.task.draw_goal(goal_rng))
        self.instruction = self.task.instruction(self.goal, goal_rng)
        self.suite_env.reset()
        self.steps = 0
        return self._observation(), self._info()

    def step(self, action):
        action = self._check_action(action)
        gripper = 2.0 * float(action[-1]) - 1.0  # robosuite: -1 open, +1 close
        self.suite_env.step(np.append(action[:NUM_ARM_JOINTS], gripper))
        self.steps += 1
        success = self.is_success()
        truncated = self.steps >= self.max_steps and not success
        return self._observation(), float(success), success, truncated, self._info()

    def render(self):
        return self.renderer.render_camera(self.config.cameras[0])

    def close(self):
        self.suite_env.close()

    # -- privileged state (experts, recording) -------------------------------------------
    def is_success(self) -> bool:
        return bool(self.suite_env._check_success())

    def cube_pose(self, color: str) -> tuple[np.ndarray, np.ndarray]:
        """World position (3,) and quaternion (w, x, y, z) of a cube."""
        if color not in self.task.cube_bodies:
            raise ValueError(f"task {self.task.name} has no {color} cube; it has {sorted(self.task.cube_bodies)}")
        body = self.suite_env.sim.model.body_name2id(self.task.cube_bodies[color])
        data = self.suite_env.sim.data
        return np.array(data.body_xpos[body]), np.array(data.body_xquat[body])

    def mujoco_state(self) -> np.ndarray:
        """(1 + nq + nv,) float64: time, qpos, qvel."""
        return np.array(self.suite_env.sim.get_state().flatten())

    def model_xml(self) -> str:
        return self.suite_env.sim.model.get_xml()

    def set_mujoco_state(self, state: np.ndarray) -> None:
        """Put the simulation in a recorded (1 + nq + nv,) state."""
        sim = self.suite_env.sim
        expected = 1 + sim.model.nq + sim.model.nv
        if np.shape(state) != (expected,):
            raise ValueError(f"state has shape {np.shape(state)}, this scene needs ({expected},): "
                             "was the file recorded on another task or robot?")
        sim.set_state_from_flattened(np.asarray(state, dtype=np.float64))
        sim.forward()

    def load_model_xml(self, xml: str) -> None:
        """Rebuild the scene from a recorded MJCF (robosuite's reset_from_xml_string)."""
        self.suite_env.reset_from_xml_string(localize_asset_paths(xml))
        self.renderer = CameraRenderer(self.suite_env.sim, self.config.cameras, self.renderer.settings)

    def observe(self) -> dict:
        """The observation of the current simulation state (no step)."""
        return self._observation()

    @property
    def robot(self):
        return self.suite_env.robots[0]

    def set_goal(self, goal: Goal) -> None:
        """Override the drawn goal (replaying a recorded episode); the success check follows it."""
        self.goal = goal
        if hasattr(self.suite_env, "set_goal"):
            self.suite_env.set_goal([(step.target, step.base) for step in goal.steps])

    @property
    def arm_qpos_index(self) -> np.ndarray:
        """(7,) indices of the arm joints in MuJoCo's qpos."""
        return np.array(self.robot._ref_joint_pos_indexes)

    # -- internals -----------------------------------------------------------------------

    def _check_action(self, action) -> np.ndarray:
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != self.action_space.shape:
            raise ValueError(
                f"action must have {self.action_space.shape[0]} values (7 joint targets + gripper), got {action.shape[0]}"
            )
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action contains NaN or Inf: {action.tolist()}")
        return np.clip(action, self.action_space.low, self.action_space.high)

    def _observation(self) -> dict:
        robot_obs = self.suite_env._get_observations(force_update=True)
        obs = {key: np.asarray(robot_obs[key], dtype=np.float64) for key in PROPRIO_KEYS}
        obs.update(self.renderer.render())
        obs["instruction"] = self.instruction
        return obs

    def _info(self) -> dict:
        return {"success": self.is_success(), "instruction": self.instruction, "goal": self.goal.to_dict(),
                "seed": self.seed_used, "steps": self.steps}

    def _arm_joint_limits(self) -> tuple[np.ndarray, np.ndarray]:
        model = self.suite_env.sim.model
        joint_ids = [model.joint_name2id(name) for name in self.robot.robot_joints]
        ranges = np.array(model.jnt_range[joint_ids])
        return ranges[:, 0], ranges[:, 1]

    def _make_observation_space(self) -> gym.spaces.Dict:
        size = self.config.image_size
        spaces = {
            f"{cam}_image": gym.spaces.Box(0, 255, (size, size, 3), np.uint8) for cam in self.config.cameras
        }
        spaces.update({k: gym.spaces.Box(-np.inf, np.inf, (n,), np.float64) for k, n in PROPRIO_KEYS.items()})
        spaces["instruction"] = gym.spaces.Text(max_length=256, charset=_INSTRUCTION_CHARSET)
        return gym.spaces.Dict(spaces)


def localize_asset_paths(xml: str) -> str:
    """Point mesh/texture paths of an MJCF recorded on another machine at this robosuite."""
    import re

    import robosuite

    assets = os.path.join(os.path.dirname(robosuite.__file__), "models", "assets")
    return re.sub(r'(file=")[^"]*?/robosuite/models/assets(/[^"]*")', rf"\g<1>{assets}\g<2>", xml)


_INSTRUCTION_CHARSET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.'-"
