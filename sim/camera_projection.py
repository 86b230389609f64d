"""Where world points appear in a recorded episode's camera images, from its simulator states.

Privileged information for training only (`vla train --goal-keypoint-loss`): where the goal's cubes
are in each camera, the target of the language-queried keypoints. The wrist camera moves with the
arm, so every state is posed (forward kinematics) before its cameras project. Pixels follow the
recorded images: x to the right, y down from the top row (sim/rendering.py flips MuJoCo's rows),
in units of one pixel of an image `image_size` wide and high.
"""

from __future__ import annotations

import mujoco
import numpy as np

from sim.env import localize_asset_paths


class CameraProjector:
    """Projects world points into named cameras of the scene in `model_xml`, one recorded state at a time."""

    def __init__(self, model_xml: str, cameras: tuple[str, ...], image_size: int):
        self.model = mujoco.MjModel.from_xml_string(localize_asset_paths(model_xml))
        self.data = mujoco.MjData(self.model)
        self.camera_ids = [_camera_id(self.model, name) for name in cameras]
        self.image_size = image_size
        fovy = np.radians(self.model.cam_fovy[self.camera_ids])
        self.focal = (image_size / 2) / np.tan(fovy / 2)  # (N,) pixels

    def pixels(self, states: np.ndarray, points: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """name -> (T, N_cam, 2) pixel (x, y) of that name's (T, 3) world points at each of the (T, S)
        recorded states ([time, qpos, qvel]); NaN where a point is behind a camera or outside its image."""
        out = {name: np.full((len(states), len(self.camera_ids), 2), np.nan) for name in points}
        nq = self.model.nq
        for t, state in enumerate(states):
            self.data.qpos[:] = state[1:1 + nq]
            mujoco.mj_kinematics(self.model, self.data)
            mujoco.mj_camlight(self.model, self.data)
            for name, xyz in points.items():
                out[name][t] = self._project(xyz[t])
        return out

    def _project(self, point: np.ndarray) -> np.ndarray:
        """(N_cam, 2) pixel (x, y) of one world point in each camera at the posed state."""
        origin = self.data.cam_xpos[self.camera_ids]  # (N, 3)
        axes = self.data.cam_xmat[self.camera_ids].reshape(-1, 3, 3)  # columns: right, up, backward
        local = np.einsum("nij,ni->nj", axes, point - origin)  # (N, 3) in each camera's frame
        depth = -local[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            x = self.image_size / 2 + self.focal * local[:, 0] / depth
            y = self.image_size / 2 - self.focal * local[:, 1] / depth
        xy = np.stack([x, y], axis=1)
        inside = (depth > 0) & (xy >= 0).all(1) & (xy < self.image_size).all(1)
        xy[~inside] = np.nan
        return xy


def _camera_id(model: mujoco.MjModel, name: str) -> int:
    camera = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
    if camera < 0:
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
        raise ValueError(f"the recorded scene has no camera {name!r} (it has {names}); train with the "
                         "cameras the data was collected with")
    return camera

