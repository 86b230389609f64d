import mujoco
import numpy as np

from sim.experts.scripted import ScriptedExpert
from sim.rendering import WRIST_CAMERA


def test_wrist_culling_changes_no_pixel_during_an_expert_episode(env_cache):
    """The geoms hidden from the wrist camera are really out of its sight."""
    env = env_cache("place-color")
    expert = ScriptedExpert(env)
    obs, _ = env.reset(seed=4)
    expert.reset(obs["instruction"])
    checked = 0
    for step in range(200):
        obs, _, terminated, truncated, _ = env.step(expert.act(obs).actions[0])
        if step % 6 == 0:
            culled = env.renderer.render_camera(WRIST_CAMERA, cull=True)
            full = env.renderer.render_camera(WRIST_CAMERA, cull=False)
            np.testing.assert_array_equal(culled, full)
            checked += 1
        if terminated or truncated:
            break
    assert checked >= 10


def test_fast_render_settings_survive_resets(env_cache):
    env = env_cache("lift")
    for seed in range(2):
        env.reset(seed=seed)
        env.renderer.render()
        flags = env.renderer.context.scn.flags
        assert flags[mujoco.mjtRndFlag.mjRND_SHADOW] == 0
        assert flags[mujoco.mjtRndFlag.mjRND_REFLECTION] == 0
        assert flags[mujoco.mjtRndFlag.mjRND_SKYBOX] == 0
        assert env.suite_env.sim.model._model.vis.quality.offsamples == 0
