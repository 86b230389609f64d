"""The tiny VLA: overfitting, checkpoints, resume, inference and bad inputs (CPU, small sizes)."""

import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sim.dataset import DatasetWriter
from sim.episode import Episode
from vla.checkpoint import load_checkpoint
from vla.config import DataConfig, TinyModelConfig, VlaConfig
from vla.inference import VlaPredictor
from vla.train import TrainConfig, learning_rate, snapshot_dir, train

SIZE = 32
SMALL = VlaConfig(
    tiny=TinyModelConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128,
                         vision_channels=(16, 32), image_grid=2),
    data=DataConfig(image_size=SIZE, chunk_size=2),
)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threading only adds overhead on a busy 2-core machine
    yield
    torch.set_num_threads(threads)


def _episode(seed: int, steps: int = 6) -> Episode:
    rng = np.random.default_rng(seed)
    joints = np.cumsum(rng.normal(0, 0.05, (steps, 7)), axis=0)
    actions = np.concatenate([joints + 0.05, (np.arange(steps) >= steps // 2)[:, None]], 1)
    images = rng.integers(0, 255, (steps, SIZE, SIZE, 3), dtype=np.uint8)
    return Episode(seed=seed, instruction=f"pick up the {['red', 'blue'][seed % 2]} cube", goal={"target": "red"},
                   actions=actions.astype(np.float32),
                   observations={"agentview_image": images, "robot0_eye_in_hand_image": images[:, ::-1].copy(),
                                 "robot0_joint_pos": joints, "robot0_gripper_qpos": np.zeros((steps, 2))},
                   states=np.zeros((steps, 5)), rewards=np.zeros(steps), dones=np.zeros(steps, np.uint8),
                   subtasks=["reach the red cube"] * 3 + ["grasp"] * (steps - 3), model_file="<mujoco/>",
                   success=True)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "synthetic.hdf5"
    writer = DatasetWriter(path, "pick-color", {"task": "pick-color"})
    for seed in range(3):
        writer.write(_episode(seed))
    return str(path)


def test_learning_rate_warms_up_then_decays():
    cfg = TrainConfig(steps=100, warmup_steps=10, learning_rate=1.0)
    assert learning_rate(0, cfg) == pytest.approx(0.1) and learning_rate(9, cfg) == pytest.approx(1.0)
    assert learning_rate(50, cfg) < 1.0 and learning_rate(99, cfg) == pytest.approx(0.1, abs=1e-3)


@pytest.mark.parametrize("decoding,action_mode", [("parallel", "delta"), ("autoregressive", "absolute")])
def test_overfits_a_handful_of_samples(data_file, tmp_path, decoding, action_mode):
    cfg = TrainConfig(steps=250, batch_size=16, learning_rate=2e-3, warmup_steps=10, save_every=10**6,
                      eval_every=10**6, augment=False)
    config = replace(SMALL, decoding=decoding, data=replace(SMALL.data, action_mode=action_mode))
    metrics = train([data_file], tmp_path / "ck", config, cfg, progress=False)
    assert metrics["loss"] < 0.3 and metrics["accuracy"] > 0.95, metrics
    predictor = VlaPredictor.load(tmp_path / "ck")
    episode = _episode(1)
    obs = {k: v[2] for k, v in episode.observations.items()}
    chunk = predictor.predict(obs, episode.instruction)
    assert chunk.shape == (2, 8)
    np.testing.assert_allclose(chunk, episode.actions[2:4], atol=0.08)
    predictor.readout = "mean"
    if decoding == "parallel":
        np.testing.assert_allclose(predictor.predict(obs, episode.instruction), episode.actions[2:4], atol=0.08)
    else:
        with pytest.raises(ValueError, match="mean readout needs parallel decoding"):
            predictor.predict(obs, episode.instruction)
        from sim.policy_loader import PolicyOptions, checkpoint_policy

        with pytest.raises(ValueError, match="mean readout needs parallel decoding"):
            checkpoint_policy(tmp_path / "ck", PolicyOptions(readout="mean"))


@pytest.mark.parametrize("gripper_tokens", [False, True])
def test_regression_head_overfits_and_decodes_only_as_regression(data_file, tmp_path, gripper_tokens):
    cfg = TrainConfig(steps=250, batch_size=16, learning_rate=2e-3, warmup_steps=10, save_every=10**6,
                      eval_every=10**6, augment=False)
    config = replace(SMALL, decoding="regression", tiny=replace(SMALL.tiny, gripper_tokens=gripper_tokens))
    metrics = train([data_file], tmp_path / "ck", config, cfg, progress=False)
    if gripper_tokens:  # joints: L1; gripper: cross-entropy over its bins
        assert metrics["joint_l1"] < 0.15 and metrics["gripper_accuracy"] > 0.95, metrics
    else:
        assert metrics["loss"] < 0.05, metrics  # mean absolute error in normalized units
    predictor = VlaPredictor.load(tmp_path / "ck")
    assert predictor.model.regression_head is not None and predictor.config.tiny.gripper_tokens == gripper_tokens
    episode = _episode(1)
    obs = {k: v[2] for k, v in episode.observations.items()}
    chunk = predictor.predict(obs, episode.instruction)
    np.testing.assert_allclose(chunk, episode.actions[2:4], atol=0.08)
    with pytest.raises(ValueError, match="trained with 'regression' decoding and cannot decode 'parallel'"):
        predictor.predict(obs, episode.instruction, mode="parallel")
    predictor.readout = "mean"
    with pytest.raises(ValueError, match="head already outputs continuous values"):
        predictor.predict(obs, episode.instruction)


def test_token_checkpoints_refuse_regression_decoding_and_hf_backbones_the_regression_head(checkpoint):
    predictor = VlaPredictor.load(checkpoint)
    episode = _episode(0)
    with pytest.raises(ValueError, match="trained with 'parallel' decoding and cannot decode 'regression'"):
        predictor.predict({k: v[0] for k, v in episode.observations.items()}, episode.instruction,
                          mode="regression")
    with pytest.raises(ValueError, match="only the tiny backbone has a regression head"):
        VlaConfig(backbone="/some/hf/checkpoint", decoding="regression")
    with pytest.raises(ValueError, match="tiny.gripper_tokens .* needs --decoding regression"):
        VlaConfig(decoding="parallel", tiny=TinyModelConfig(gripper_tokens=True))


def test_checkpoint_files_and_resume_continue_the_same_run(data_file, tmp_path):
    cfg = TrainConfig(steps=6, batch_size=4, save_every=3, eval_every=3, warmup_steps=2)
    train([data_file], tmp_path / "full", SMALL, cfg, progress=False)
    names = {p.name for p in (tmp_path / "full").iterdir()}
    assert {"config.json", "model.safetensors", "norm_stats.json", "tokenizer.json", "training_state.pt",
            "tensorboard"} <= names
    stats = json.loads((tmp_path / "full" / "norm_stats.json").read_text())
    assert set(stats) == {"panda"} and len(stats["panda"]["action"]["q01"]) == 8

    train([data_file], tmp_path / "split", SMALL, replace(cfg, steps=3), progress=False)
    with open(tmp_path / "split" / "metrics.csv", "a") as f:
        f.write("4,loss,9.9\n")  # logged by a run stopped after its last save
    train([data_file], tmp_path / "split", SMALL, cfg, resume=True, progress=False)
    assert torch.load(tmp_path / "split" / "training_state.pt", weights_only=True)["step"] == 6
    def logged(run):  # (step, name) rows of the training curve
        return [row.split(",")[:2] for row in (tmp_path / run / "metrics.csv").read_text().splitlines()]

    assert logged("split") == logged("full")  # each step once, in order
    full, split = (load_file(tmp_path / d / "model.safetensors") for d in ("full", "split"))
    for key in full:
        torch.testing.assert_close(full[key], split[key], rtol=1e-5, atol=1e-6)
    with pytest.raises(FileExistsError, match="--resume"):
        train([data_file], tmp_path / "full", SMALL, cfg, progress=False)


def test_init_fine_tunes_a_checkpoint_with_a_fresh_schedule(data_file, tmp_path):
    cfg = TrainConfig(steps=4, batch_size=4, save_every=4, eval_every=4, warmup_steps=1)
    train([data_file], tmp_path / "base", SMALL, cfg, progress=False)
    other_sizes = replace(SMALL, data=replace(SMALL.data, chunk_size=4))  # ignored: the checkpoint's options win
    train([data_file], tmp_path / "frozen", other_sizes, replace(cfg, steps=2, learning_rate=0.0), progress=False,
          init=tmp_path / "base")
    train([data_file], tmp_path / "tuned", SMALL, replace(cfg, steps=2), progress=False, init=tmp_path / "base")
    base, frozen, tuned = (load_file(tmp_path / d / "model.safetensors") for d in ("base", "frozen", "tuned"))
    for key in base:
        torch.testing.assert_close(frozen[key], base[key])
    assert any(not torch.equal(tuned[key], base[key]) for key in base)
    assert load_checkpoint(tmp_path / "frozen")[1] == load_checkpoint(tmp_path / "base")[1]
    assert torch.load(tmp_path / "tuned" / "training_state.pt", weights_only=True)["step"] == 2
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train([data_file], tmp_path / "x", SMALL, cfg, progress=False, init=tmp_path / "missing")


def test_snapshots_keep_every_nth_step_and_an_ema_that_survives_resume(data_file, tmp_path):
    cfg = TrainConfig(steps=3, batch_size=4, save_every=2, eval_every=10**6, warmup_steps=1, snapshot_every=1,
                      ema_decay=0.5)
    train([data_file], tmp_path / "full", SMALL, cfg, progress=False)
    raw = [load_file(snapshot_dir(tmp_path / "full", step) / "model.safetensors") for step in (1, 2, 3)]
    ema = load_file(snapshot_dir(tmp_path / "full", 3, ema=True) / "model.safetensors")
    final = load_file(tmp_path / "full" / "model.safetensors")
    for key in final:
        torch.testing.assert_close(raw[2][key], final[key])
        expected = 0.5 * (0.5 * raw[0][key] + 0.5 * raw[1][key]) + 0.5 * raw[2][key]  # first update copies
        torch.testing.assert_close(ema[key], expected, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(ema[key], final[key]) for key in final)
    VlaPredictor.load(snapshot_dir(tmp_path / "full", 3, ema=True))  # a complete checkpoint

    train([data_file], tmp_path / "split", SMALL, replace(cfg, steps=2), progress=False)
    train([data_file], tmp_path / "split", SMALL, cfg, resume=True, progress=False)
    resumed = load_file(snapshot_dir(tmp_path / "split", 3, ema=True) / "model.safetensors")
    for key in ema:
        torch.testing.assert_close(resumed[key], ema[key], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="--snapshot-every"):
        train([data_file], tmp_path / "no_snapshots", SMALL, replace(cfg, snapshot_every=0), progress=False)


@pytest.fixture(scope="module")
def checkpoint(data_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("ck") / "ck"
    train([data_file], out, SMALL, TrainConfig(steps=2, batch_size=2, warmup_steps=1), progress=False)
    return out


def test_image_grid_sets_tokens_per_camera_up_to_the_feature_map(data_file, tmp_path, capsys):
    from vla.cli import main
    from vla.text_tokenizer import WordTokenizer
    from vla.tiny_model import TinyVla, check_image_grid

    words = WordTokenizer.train(["pick up the red cube"])
    finest = replace(SMALL.tiny, image_grid=4, text_vocab_size=words.vocab_size)  # 32 px / (4 * 2) = 4
    encoder = TinyVla(finest, SMALL.data, words).encoder
    assert encoder(torch.zeros(3, 3, SIZE, SIZE, dtype=torch.uint8)).shape == (3, 16, finest.hidden_size)
    check_image_grid(finest, SIZE)
    with pytest.raises(ValueError, match="image_grid 5 does not fit 32x32.*tiny.image_grid=1..4"):
        check_image_grid(replace(finest, image_grid=5), SIZE)
    args = ["train", "--data", data_file, "--out", str(tmp_path / "ck"), "--image-size", "32", "--set", "tiny.image_grid=3"]
    assert main(args) == 2  # the default (32, 64, 128) stem: 32 px / 16 = 2
    assert "pick --set tiny.image_grid=1..2" in capsys.readouterr().err and not (tmp_path / "ck").exists()


def test_spatial_soft_argmax_finds_each_maps_peak():
    from vla.tiny_model import spatial_soft_argmax

    heat = torch.zeros(1, 2, 4, 5)
    heat[0, 0, 1, 3] = 50.0  # row 1 of 4, column 3 of 5
    x, y = spatial_soft_argmax(heat)[0, 0].tolist()
    assert x == pytest.approx(-1 + 2 * 3 / 4) and y == pytest.approx(-1 + 2 * 1 / 3)
    assert spatial_soft_argmax(heat)[0, 1].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)  # flat map: the centre


def test_keypoints_add_trainable_tokens_per_camera(data_file, tmp_path, capsys):
    from vla.cli import main
    from vla.text_tokenizer import WordTokenizer
    from vla.tiny_model import TinyVla

    words = WordTokenizer.train(["pick up the red cube"])
    config = replace(SMALL.tiny, keypoints=16, text_vocab_size=words.vocab_size)
    encoder = TinyVla(config, SMALL.data, words).encoder
    images = torch.randint(0, 255, (3, 3, SIZE, SIZE), dtype=torch.uint8)
    tokens = encoder(images)
    assert tokens.shape == (3, 2 * 2 + 16 // 8, config.hidden_size)
    tokens[:, -2:].square().sum().backward()  # the keypoint tokens depend on the heat maps and their temperature
    assert encoder.keypoints.heat_maps.weight.grad.abs().sum() > 0
    assert encoder.keypoints.log_temperature.grad != 0

    args = ["train", "--data", data_file, "--image-size", "32", "--steps", "2", "--batch-size", "2", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "bad"), "--set", "tiny.keypoints=12"]) == 2
    assert "keypoints must be a multiple of 8" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    options = ["--set", "tiny.keypoints=8", "--set", "tiny.image_grid=2", "--set", "data.skip_idle_frames=true"]
    assert main(args + ["--out", str(tmp_path / "ck"), *options]) == 0
    saved = VlaConfig.load(tmp_path / "ck" / "config.json")
    assert saved.tiny.keypoints == 8 and saved.data.skip_idle_frames
    chunk = VlaPredictor.load(tmp_path / "ck").predict(_obs(), "pick up the red cube")
    assert chunk.shape == (8, 8) and np.isfinite(chunk).all()


def test_idle_frames_are_the_timed_wait_and_can_be_left_out_of_training():
    from vla.data import ChunkDataset, Demo, idle_frames

    joint = np.array([0.0, 0.01, 0.02, 0.03, 0.03, 0.03, 0.03, 0.03, 0.05, 0.07])  # rests from frame 3 to 7
    command = np.array([0.01, 0.02, 0.03, 0.03, 0.03, 0.03, 0.03, 0.07, 0.09, 0.11])  # moves on at frame 7
    demo = Demo(images=np.zeros((10, 1, 3, 4, 4), np.uint8), states=np.column_stack([joint, joint]),
                actions=np.column_stack([command, command]), instruction="lift the red cube", subtasks=[""] * 10)
    np.testing.assert_array_equal(np.flatnonzero(idle_frames(demo)), [3, 4, 5, 6])  # frame 7 commands the move
    kept = ChunkDataset([demo], replace(SMALL.data, skip_idle_frames=True), None, None).index
    assert [t for _, t in kept] == [0, 1, 2, 7, 8, 9]
    assert len(ChunkDataset([demo], SMALL.data, None, None)) == 10  # off by default


def test_state_noise_perturbs_only_the_training_proprio_not_the_targets():
    from vla.data import ChunkDataset, Demo
    from vla.normalization import NormStats
    from vla.tokenizer import ActionTokenizer

    steps = np.linspace(-0.5, 0.5, 12)
    demo = Demo(images=np.zeros((12, 1, 3, 4, 4), np.uint8), states=np.column_stack([steps, -steps]),
                actions=np.column_stack([steps + 0.1, steps > 0]), instruction="lift the red cube", subtasks=[""] * 12)
    stats = NormStats.compute("panda", np.column_stack([steps + 0.1, steps > 0]), demo.states)
    tokenizer = ActionTokenizer(64 + 256, 256)
    clean = ChunkDataset([demo], SMALL.data, stats, tokenizer)
    noisy = ChunkDataset([demo], replace(SMALL.data, state_noise=0.1), stats, tokenizer)
    for i in range(12):
        np.testing.assert_array_equal(noisy.sample(i)["state_ids"], clean[i]["state_ids"])  # validation: no noise
        np.testing.assert_array_equal(clean.sample(i, np.random.default_rng(i))["state_ids"], clean[i]["state_ids"])
    rng = np.random.default_rng(0)
    draws = [noisy.sample(5, rng) for _ in range(200)]
    shift = np.array([d["state_ids"] for d in draws]) - clean[5]["state_ids"]
    assert 0.5 < shift.std() / (0.1 * 128) < 1.5  # ~0.1 of the [-1, 1] range = ~12.8 bins
    assert all(np.array_equal(d["action_ids"], clean[5]["action_ids"]) for d in draws)
    with pytest.raises(ValueError, match="data.state_noise=0.1"):
        DataConfig(state_noise=-0.1)


def _obs():
    return {k: v[0] for k, v in _episode(0).observations.items()}


def test_bad_observations_are_named(checkpoint):
    predictor = VlaPredictor.load(checkpoint)
    assert predictor.predict(_obs(), "pick up the red cube", mode="autoregressive").shape == (2, 8)
    obs = _obs()
    obs["agentview_image"] = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="agentview_image is \\(64, 64, 3\\).*needs \\(32, 32, 3\\)"):
        predictor.predict(obs, "pick up the red cube")
    obs = _obs()
    del obs["robot0_eye_in_hand_image"]
    with pytest.raises(ValueError, match="lacks 'robot0_eye_in_hand_image'"):
        predictor.predict(obs, "x")
    obs = _obs()
    obs["robot0_joint_pos"] = np.full(7, np.nan)
    with pytest.raises(ValueError, match="NaN"):
        predictor.predict(obs, "x")
    with pytest.raises(ValueError, match="proprio state has 8 values.*'panda' has 9"):
        predictor.predict(_obs() | {"robot0_joint_pos": np.zeros(6)}, "x")


def test_bad_checkpoints_are_named(checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(ValueError, match="another robot"):
        load_checkpoint(checkpoint, robot="ur5e")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "norm_stats.json", "tokenizer.json"):
        (broken / name).write_bytes((checkpoint / name).read_bytes())
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        load_checkpoint(broken)
    (broken / "model.safetensors").write_bytes((checkpoint / "model.safetensors").read_bytes()[:1000])
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is corrupt"):
        load_checkpoint(broken)


def _copy_checkpoint(checkpoint, directory):
    directory.mkdir()
    for path in checkpoint.iterdir():
        if path.is_file():
            (directory / path.name).write_bytes(path.read_bytes())
    return directory


def _with_spoilt_weights(checkpoint, directory, spoil):
    """A copy of the checkpoint whose floating weights went through spoil(name, tensor) (in place)."""
    from safetensors.torch import save_file

    copy = _copy_checkpoint(checkpoint, directory)
    tensors = load_file(copy / "model.safetensors")
    for name, tensor in tensors.items():
        if tensor.is_floating_point():
            spoil(name, tensor)
    save_file(tensors, copy / "model.safetensors")
    return copy


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_file_and_tensor(checkpoint, tmp_path, bad_value):
    bad_name = sorted(load_file(checkpoint / "model.safetensors"))[3]

    def spoil(name, tensor):
        if name == bad_name:
            tensor.view(-1)[0] = bad_value

    corrupt = _with_spoilt_weights(checkpoint, tmp_path / "corrupt", spoil)
    with pytest.raises(ValueError, match=rf"corrupt/model\.safetensors: tensor '{re.escape(bad_name)}' contains NaN "
                                         "or Inf; the checkpoint is corrupt"):
        load_checkpoint(corrupt)


def test_eval_of_a_nan_checkpoint_fails_in_one_line(checkpoint, tmp_path, capsys):
    from vla.cli import main

    corrupt = _with_spoilt_weights(checkpoint, tmp_path / "corrupt", lambda name, tensor: tensor.fill_(float("nan")))
    assert main(["eval", "--task", "lift", "--policy", str(corrupt), "--episodes", "1", "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("vla eval: error: ") and "\n" not in error
    assert "corrupt/model.safetensors: tensor '" in error and "contains NaN or Inf" in error


@pytest.mark.parametrize("name, content", [("norm_stats.json", b"{not json"), ("norm_stats.json", b"\xff\xfe\x00"),
                                           ("norm_stats.json", b'{"panda": {"action": 3}}'),
                                           ("tokenizer.json", b"{not json"), ("config.json", b"\xff\xfe\x00")])
def test_unparseable_checkpoint_files_are_named(checkpoint, tmp_path, name, content):
    broken = _copy_checkpoint(checkpoint, tmp_path / "broken")
    (broken / name).write_bytes(content)
    with pytest.raises(ValueError, match=rf"broken/{name} is corrupt"):
        load_checkpoint(broken)


def test_planner_head_learns_the_subtask_and_the_hierarchy_runs(data_file, tmp_path):
    from policies.chunking import ChunkExecutor
    from policies.hierarchical import from_predictor

    config = replace(SMALL, data=replace(SMALL.data, use_subtasks=True))
    cfg = TrainConfig(steps=200, batch_size=16, learning_rate=2e-3, warmup_steps=10, save_every=10**6,
                      eval_every=10**6, augment=False)
    metrics = train([data_file], tmp_path / "ck", config, cfg, progress=False)
    assert metrics["plan_accuracy"] > 0.9, metrics
    predictor = VlaPredictor.load(tmp_path / "ck")
    assert predictor.config.tiny.planner_phrases == ("grasp", "reach the red cube")
    episode = _episode(1)
    plans = [predictor.plan({k: v[t] for k, v in episode.observations.items()}, episode.instruction)
             for t in range(6)]
    assert plans == episode.subtasks
    reach_obs, grasp_obs = ({k: v[episode.subtasks.index(s)] for k, v in episode.observations.items()}
                            for s in ("reach the red cube", "grasp"))
    assert predictor.plan(grasp_obs, episode.instruction, allowed=["reach the red cube"]) == "reach the red cube"
    with pytest.raises(ValueError, match="planner's phrases"):
        predictor.plan(grasp_obs, episode.instruction, allowed=["fly"])
    for forward_only, last in ((False, "reach the red cube"), (True, "grasp")):  # back to reach, or not
        replanning = from_predictor(predictor, forward_only, plan_every=1, executor=ChunkExecutor(1))
        replanning.reset(episode.instruction)
        subtasks = [replanning.act(obs).subtask for obs in (reach_obs, grasp_obs, reach_obs)]
        assert subtasks == ["reach the red cube", "grasp", last]
    policy = from_predictor(predictor, plan_every=2, executor=ChunkExecutor(1))
    policy.reset(episode.instruction)
    chunk = policy.act({k: v[4] for k, v in episode.observations.items()})
    assert chunk.subtask == "grasp" and chunk.actions.shape == (1, 8)
