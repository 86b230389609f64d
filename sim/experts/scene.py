"""Read-only privileged simulator state the scripted experts plan with."""

from __future__ import annotations

import numpy as np

from sim.experts.ik import DampedLeastSquaresIK


class Scene:
    """Cube poses, the grip site, the fingers and grasp contacts of one VlaEnv."""

    def __init__(self, env):
        self.env = env
        self.site_id = env.robot.eef_site_id["right"]
        self.qpos_index = env.arm_qpos_index

    def arm_ik(self) -> DampedLeastSquaresIK:
        """Inverse kinematics for the grip site, on a private copy of the arm's state."""
        robot = self.env.robot
        return DampedLeastSquaresIK(self.sim.model._model, self.site_id, self.qpos_index,
                                    np.array(robot._ref_joint_vel_indexes), np.array(robot.init_qpos))

    @property
    def sim(self):
        return self.env.suite_env.sim

    def cube_pos(self, color: str) -> np.ndarray:
        return self.env.cube_pose(color)[0]

    def cube_quat(self, color: str) -> np.ndarray:
        return self.env.cube_pose(color)[1]

    def cube_half_height(self, color: str) -> float:
        model = self.sim.model._model
        return float(max(model.geom_size[g][2] for g in self._cube_geoms(color)))

    def grip_site_pos(self) -> np.ndarray:
        return np.array(self.sim.data.site_xpos[self.site_id])

    def joint_positions(self) -> np.ndarray:
        return np.array(self.sim.data.qpos[self.qpos_index])

    def finger_gap(self) -> float:
        """Distance between the fingers (m): about 0.08 open, the cube's width when closed on one."""
        fingers = self.sim.data.qpos[self.env.robot._ref_gripper_joint_pos_indexes["right"]]
        return float(fingers[0] - fingers[1])

    def finger_gap_rate(self) -> float:
        """How fast the fingers part (m/s); negative while they close."""
        fingers = self.sim.data.qvel[self.env.robot._ref_gripper_joint_vel_indexes["right"]]
        return float(fingers[0] - fingers[1])

    def is_grasped(self, color: str) -> bool:
        """Both finger pads touch the cube (robosuite's contact test)."""
        model = self.sim.model
        names = [model.geom_id2name(int(g)) for g in self._cube_geoms(color)]
        return bool(self.env.suite_env._check_grasp(gripper=self.env.robot.gripper["right"], object_geoms=names))

    def _cube_geoms(self, color: str) -> np.ndarray:
        body = self.sim.model.body_name2id(self.env.task.cube_bodies[color])
        return np.flatnonzero(self.sim.model._model.geom_bodyid == body)
