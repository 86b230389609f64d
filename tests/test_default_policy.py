"""The shipped default checkpoint loads and acts in simulation (hierarchical and flat)."""

import json

import numpy as np

from sim.dataset import open_dataset
from sim.policy_loader import DEFAULT_CHECKPOINT, PolicyOptions, make_policy
from vla.cli import main
from vla.inference import VlaPredictor


def test_shipped_checkpoint_is_complete_and_small():
    names = {p.name for p in DEFAULT_CHECKPOINT.iterdir()}
    assert {"config.json", "model.safetensors", "norm_stats.json", "tokenizer.json", "metrics.csv"} <= names
    assert sum(p.stat().st_size for p in DEFAULT_CHECKPOINT.iterdir()) < 25 * 2**20


def test_default_policy_acts_in_simulation(env_cache):
    env = env_cache("place-color", 128)
    policy = make_policy("default", env)
    obs, _ = env.reset(seed=123)
    policy.reset(obs["instruction"])
    phrases = set(VlaPredictor.load(DEFAULT_CHECKPOINT).config.tiny.planner_phrases)
    for _ in range(3):
        chunk = policy.act(obs)
        assert chunk.actions.shape[1] == 8 and np.all(np.isfinite(chunk.actions))
        assert chunk.subtask in phrases
        for action in chunk.actions:
            obs, *_ = env.step(action)
    assert policy.plan_calls >= 1
    flat = make_policy("default", env, PolicyOptions(flat=True, execute_steps=2, ensemble=False))
    flat.reset(obs["instruction"])
    assert flat.act(obs).actions.shape == (2, 8)
    ensembled = make_policy("default", env, PolicyOptions(ensemble=True, ensemble_decay=-2.0))
    assert ensembled.executor.ensembler.decay == -2.0
    mean = make_policy("default", env, PolicyOptions(flat=True, execute_steps=8, readout="mean", ensemble=False))
    mean.reset(obs["instruction"])
    by_mean, by_argmax = mean.act(obs).actions, flat.predictor.predict(obs, obs["instruction"])
    assert mean.predictor.readout == "mean" and by_mean.shape == by_argmax.shape == (8, 8)
    gap = np.abs(by_mean[:, :7] - by_argmax[:, :7])
    assert 0 < np.median(gap) < 0.1  # mostly the same targets, read between bins (far apart where the bins spread)


def test_short_evaluation_end_to_end(tmp_path):
    report_path = tmp_path / "default.json"
    assert main(["eval", "--task", "lift", "--policy", "default", "--episodes", "1", "--seed", "100000",
                 "--json", str(report_path), "--quiet"]) == 0
    report = json.loads(report_path.read_text())
    assert report["policy"] == "default" and report["episodes"] == 1
    assert 0 < report["episodes_detail"][0]["steps"] <= 150
    assert report["execution"] == {**report["execution"], "flat": False, "ensemble": True}  # as the checkpoint says


def test_served_default_with_ensembling_acts_like_the_in_process_one(env_cache):
    """`vla serve --policy default --ensemble`: one ensembled action per Act, the same as in process."""
    from policies.remote import RemotePolicy
    from policies.server import per_session_copies, serve
    from robots.spec import get_robot_spec

    options = PolicyOptions(ensemble=True)
    env = env_cache("lift", 128)
    spec = get_robot_spec("panda", image_size=128, cameras=("agentview", "robot0_eye_in_hand"))
    handle = serve(per_session_copies(lambda: make_policy("default", None, options)), spec, "127.0.0.1", 0)
    handle.wait_ready(60)
    remote, local = RemotePolicy(f"127.0.0.1:{handle.port}"), make_policy("default", env, options)
    try:
        obs, _ = env.reset(seed=7)
        remote.reset(env.instruction)
        local.reset(env.instruction)
        for _ in range(3):
            served, own = remote.act(obs), local.act(obs)
            assert served.actions.shape == own.actions.shape == (1, 8)
            # the wire carries the gripper as one opening in [0, 1], not two finger positions: the
            # proprio tokens differ slightly (measured up to 0.007 rad on the joint targets)
            np.testing.assert_allclose(served.actions[:, :7], own.actions[:, :7], atol=2e-2)
            obs, *_ = env.step(own.actions[0])
    finally:
        remote.close()
        handle.stop(0)


def test_execution_options_of_a_served_policy_belong_to_vla_serve(capsys):
    assert main(["eval", "--task", "lift", "--policy", "grpc://127.0.0.1:1", "--ensemble", "--episodes", "1"]) == 2
    assert "pass them to `vla serve`" in capsys.readouterr().err


def test_offline_error_scores_the_shipped_checkpoint_against_holding_still(tmp_path, capsys):
    data, report_path = tmp_path / "lift.hdf5", tmp_path / "offline.json"
    assert main(["collect", "--task", "lift", "--episodes", "2", "--seed", "424242", "--out", str(data),
                 "--expert-yaw", "fixed", "--quiet"]) == 0  # the demos the shipped model imitates
    assert open_dataset(data).env_args["demonstrator"] == "expert:fixed-yaw"
    assert main(["offline-error", "--policy", "default", "--data", str(data), "--every", "2",
                 "--json", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["demos"] == 2 and report["frames"] >= 30  # no validation demo in 2: all are scored
    assert report["joint_error_rad"] < report["hold_error_rad"]  # the model knows where the expert goes next
    assert report["other_images_error_rad"] > report["joint_error_rad"]  # ... from what its cameras see
    assert 0.0 <= report["gripper_mismatch"] < 0.5
    assert report["first_frame_cube_error_cm"] < 3.0  # one cube: the head finds it before the arm moves
    assert main(["offline-error", "--policy", str(tmp_path), "--data", str(data)]) == 2
    assert "not a checkpoint directory" in capsys.readouterr().err


def test_the_default_finds_the_named_cube_before_the_arm_moves(tmp_path):
    """Pick-color at the first frame: the arm at rest, only the words tell which of three cubes is meant
    (seeds of the evaluation range, never trained on)."""
    from sim.dataset import read_episode
    from sim.offline_error import _first_frame_grounding, _first_frame_keypoints

    data = tmp_path / "pick-color.hdf5"
    assert main(["collect", "--task", "pick-color", "--episodes", "4", "--seed", "100000", "--out", str(data),
                 "--quiet"]) == 0
    episodes = [read_episode(data, name) for name in open_dataset(data).demo_names]
    predictor = VlaPredictor.load(DEFAULT_CHECKPOINT)
    error_cm, named = _first_frame_grounding(predictor, "pick-color", episodes)
    assert named == 1.0 and error_cm < 3.0
    error_px, named_by_keypoints = _first_frame_keypoints(predictor, "pick-color", episodes)
    assert named_by_keypoints >= 0.75 and error_px < 6.0
