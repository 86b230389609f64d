import gymnasium as gym
import mujoco
import numpy as np
import pytest

import sim
from sim.env import DEFAULT_CAMERAS
from sim.tasks import TASKS, get_task

SMALL_IMAGE = 64  # matches the env_cache fixture


def test_every_task_resets_and_steps(env_cache, task_name):
    env = env_cache(task_name)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    for cam in DEFAULT_CAMERAS:
        image = obs[f"{cam}_image"]
        assert image.shape == (SMALL_IMAGE, SMALL_IMAGE, 3) and image.dtype == np.uint8
        assert image.std() > 5, f"{cam} image is blank"
    assert obs["robot0_joint_pos"].shape == (7,) and obs["robot0_gripper_qpos"].shape == (2,)
    assert isinstance(obs["instruction"], str) and info["goal"]["target"] in obs["instruction"]
    hold = np.append(obs["robot0_joint_pos"], 0.0)
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(hold)
    for key, value in obs.items():
        if key != "instruction":
            assert np.all(np.isfinite(value)), key
    assert not terminated and not truncated and reward == 0.0


def test_registered_with_gymnasium():
    for spec in TASKS.values():
        assert spec.gym_id in gym.registry
    env = gym.make("vla/PickColor-v0", image_size=32)
    obs, _ = env.reset(seed=1)
    assert obs["agentview_image"].shape == (32, 32, 3)
    assert env.unwrapped.task.name == "pick-color"
    env.close()


def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError, match="valid tasks: lift, stack, pick-color, place-color"):
        get_task("pick-colour")
    with pytest.raises(ValueError, match="valid tasks"):
        sim.make("nope")


def test_same_seed_same_scene_and_goal(env_cache):
    env = env_cache("place-color")
    first, info_a = env.reset(seed=7)
    poses_a = [env.cube_pose(c)[0] for c in ("red", "green", "blue")]
    env.reset(seed=8)
    second, info_b = env.reset(seed=7)
    poses_b = [env.cube_pose(c)[0] for c in ("red", "green", "blue")]
    np.testing.assert_array_equal(np.array(poses_a), np.array(poses_b))
    np.testing.assert_array_equal(first["agentview_image"], second["agentview_image"])
    assert info_a["goal"] == info_b["goal"] and first["instruction"] == second["instruction"]


def test_seeds_vary_goals_and_placements(env_cache):
    env = env_cache("place-color")
    goals, positions = set(), []
    for seed in range(8):
        _, info = env.reset(seed=seed)
        goals.add((info["goal"]["target"], info["goal"]["base"]))
        positions.append(env.cube_pose("red")[0][:2])
        assert info["goal"]["target"] != info["goal"]["base"]
    assert len(goals) >= 3
    assert np.ptp(np.array(positions), axis=0).min() > 0.02


def _project(env, camera: str, point: np.ndarray, size: int) -> tuple[float, float]:
    """(row from the top, column) of a world point in a camera image."""
    model, data = env.suite_env.sim.model._model, env.suite_env.sim.data._data
    cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    local = data.cam_xmat[cam].reshape(3, 3).T @ (point - data.cam_xpos[cam])
    focal = (size / 2) / np.tan(np.deg2rad(model.cam_fovy[cam]) / 2)
    return size / 2 - focal * local[1] / -local[2], size / 2 + focal * local[0] / -local[2]


def test_images_are_upright(env_cache):
    """The red cube appears where the pinhole projection (row 0 = top) says it is."""
    env = env_cache("pick-color")
    for seed in range(50):  # a scene where the cube is well off the middle row
        obs, _ = env.reset(seed=seed)
        row, col = _project(env, "agentview", env.cube_pose("red")[0], SMALL_IMAGE)
        if abs(row - (SMALL_IMAGE - 1) / 2) > 6:
            break
    image = obs["agentview_image"].astype(int)
    red = (image[..., 0] > 120) & (image[..., 1] < 80) & (image[..., 2] < 80)
    rows, cols = np.nonzero(red)
    assert len(rows) > 0, "no red cube pixels"
    assert abs(rows.mean() - row) < 4 and abs(cols.mean() - col) < 4
    assert abs(rows.mean() - (SMALL_IMAGE - 1 - row)) > 8, "image would also fit upside down"


def test_bad_actions_are_refused(env_cache):
    env = env_cache("lift")
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="8 values"):
        env.step(np.zeros(7))
    bad = np.append(obs["robot0_joint_pos"], 0.0)
    bad[2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        env.step(bad)


def test_image_size_is_configurable():
    env = sim.make("lift", image_size=48, cameras=("agentview",))
    obs, _ = env.reset(seed=0)
    assert obs["agentview_image"].shape == (48, 48, 3) and "robot0_eye_in_hand_image" not in obs
    env.close()
    with pytest.raises(ValueError, match="unknown camera"):
        sim.make("lift", cameras=("nosuchcam",))
