"""Damped least-squares inverse kinematics on MuJoCo Jacobians, for one arm site."""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np


@dataclass(frozen=True)
class IKConfig:
    damping: float = 0.05
    iterations: int = 8
    max_joint_step: float = 0.2  # rad per iteration
    posture_gain: float = 0.05  # pull toward the home posture in the null space
    rotation_weight: float = 0.5


class DampedLeastSquaresIK:
    """Solves for arm joint positions that put `site` at a position and orientation.

    Works on a private MjData so the simulation is never touched.
    """

    def __init__(self, model: mujoco.MjModel, site_id: int, qpos_index: np.ndarray, dof_index: np.ndarray,
                 home_qpos: np.ndarray, config: IKConfig = IKConfig()):
        self.model = model
        self.data = mujoco.MjData(model)
        self.site_id = site_id
        self.qpos_index = np.asarray(qpos_index)
        self.dof_index = np.asarray(dof_index)
        self.home_qpos = np.asarray(home_qpos, dtype=np.float64)
        self.config = config
        self.low = model.jnt_range[model.dof_jntid[self.dof_index], 0]
        self.high = model.jnt_range[model.dof_jntid[self.dof_index], 1]

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Site position (3,) and rotation matrix (3, 3) at arm joints q (7,)."""
        self.data.qpos[self.qpos_index] = q
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self.site_id].copy(), self.data.site_xmat[self.site_id].reshape(3, 3).copy()

    def solve(self, q_start: np.ndarray, target_pos: np.ndarray, target_rot: np.ndarray) -> np.ndarray:
        """Arm joint positions (7,) near q_start reaching the target pose."""
        q = np.array(q_start, dtype=np.float64)
        for _ in range(self.config.iterations):
            pos, rot = self.forward(q)
            error = np.concatenate([target_pos - pos, self.config.rotation_weight * rotation_error(rot, target_rot)])
            q = np.clip(q + self._step(error, q), self.low, self.high)
        return q

    def _step(self, error: np.ndarray, q: np.ndarray) -> np.ndarray:
        jac_pos = np.zeros((3, self.model.nv))
        jac_rot = np.zeros((3, self.model.nv))
        mujoco.mj_comPos(self.model, self.data)
        mujoco.mj_jacSite(self.model, self.data, jac_pos, jac_rot, self.site_id)
        jac = np.vstack([jac_pos, self.config.rotation_weight * jac_rot])[:, self.dof_index]
        damped = jac @ jac.T + self.config.damping**2 * np.eye(6)
        pinv = jac.T @ np.linalg.inv(damped)
        null_space = np.eye(len(q)) - pinv @ jac
        dq = pinv @ error + null_space @ (self.config.posture_gain * (self.home_qpos - q))
        return np.clip(dq, -self.config.max_joint_step, self.config.max_joint_step)


def rotation_error(rot: np.ndarray, target_rot: np.ndarray) -> np.ndarray:
    """Axis-angle-like error (3,) that rotates `rot` toward `target_rot` (both 3x3)."""
    return 0.5 * sum(np.cross(rot[:, i], target_rot[:, i]) for i in range(3))


def yaw_rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def yaw_of(rot: np.ndarray) -> float:
    return float(np.arctan2(rot[1, 0], rot[0, 0]))
