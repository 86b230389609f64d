"""Offscreen camera rendering tuned for CPU (Mesa llvmpipe through EGL).

The software renderer is geometry-bound: the Panda's visual meshes are ~180k triangles.
Two measures make it fast without changing what the policy sees:
  * scene settings: no reflections, shadows or skybox, no multisampling (offsamples = 0);
  * per-camera culling: the wrist camera never sees the arm links behind it or the
    pedestal, so those geoms are moved to a geom group that is hidden for that camera
    only (tests check the wrist image is pixel-identical with and without culling).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

CULL_GROUP = 5  # MuJoCo geom group used for geoms hidden from some cameras
_FAST_OFF_FLAGS = (
    mujoco.mjtRndFlag.mjRND_REFLECTION,
    mujoco.mjtRndFlag.mjRND_SHADOW,
    mujoco.mjtRndFlag.mjRND_SKYBOX,
)
# Bodies a wrist camera cannot see: everything of the arm behind the hand.
WRIST_HIDDEN_BODIES = tuple(f"robot0_link{i}" for i in range(6)) + ("fixed_mount0_pedestal",)
WRIST_CAMERA = "robot0_eye_in_hand"


@dataclass(frozen=True)
class RenderSettings:
    height: int = 128
    width: int = 128
    fast: bool = True
    cull: bool = True


class CameraRenderer:
    """Renders named cameras of a robosuite MjSim into (H, W, 3) uint8, row 0 = top."""

    def __init__(self, sim, cameras: tuple[str, ...], settings: RenderSettings):
        self.sim = sim
        self.cameras = tuple(cameras)
        self.settings = settings
        self._camera_ids = {name: _camera_id(sim, name) for name in self.cameras}
        if settings.cull:
            sim.model._model.geom_group[_wrist_hidden_geoms(sim)] = CULL_GROUP
        if settings.fast:
            self._rebuild_context_without_multisampling()

    @property
    def context(self):
        return self.sim._render_context_offscreen

    def render(self) -> dict[str, np.ndarray]:
        """All cameras, keyed "<camera>_image"."""
        return {f"{name}_image": self.render_camera(name) for name in self.cameras}

    def render_camera(self, name: str, cull: bool | None = None) -> np.ndarray:
        ctx = self.context
        ctx.gl_ctx.make_current()  # several envs (GL contexts) may share a process
        h, w = self.settings.height, self.settings.width
        self._apply_scene_flags(ctx)
        use_cull = self.settings.cull if cull is None else cull
        ctx.vopt.geomgroup[CULL_GROUP] = 0 if (use_cull and name == WRIST_CAMERA) else 1
        ctx.render(w, h, camera_id=self._camera_ids[name])
        pixels = ctx.read_pixels(w, h, depth=False)
        return np.ascontiguousarray(pixels[::-1])

    def _apply_scene_flags(self, ctx) -> None:
        if self.settings.fast:
            for flag in _FAST_OFF_FLAGS:
                ctx.scn.flags[flag] = 0

    def _rebuild_context_without_multisampling(self) -> None:
        """offsamples is read when the GL framebuffer is made, so remake it."""
        self.sim.model._model.vis.quality.offsamples = 0
        ctx = self.context
        ctx.gl_ctx.make_current()
        ctx.con.free()
        ctx._set_mujoco_context_and_buffers()


def _camera_id(sim, name: str) -> int:
    model = sim.model._model
    cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
    if cam_id < 0:
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
        raise ValueError(f"unknown camera {name!r}; this scene has cameras {names}")
    return cam_id


def _wrist_hidden_geoms(sim) -> np.ndarray:
    """Visual (group 1) geoms of bodies behind the wrist camera."""
    model = sim.model._model
    body_ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in WRIST_HIDDEN_BODIES]
    body_ids = [b for b in body_ids if b >= 0]
    mask = np.isin(model.geom_bodyid, body_ids) & (model.geom_group == 1)
    return np.flatnonzero(mask)
