"""The auxiliary goal-cube loss (`vla train --object-loss`) and the image-shift option."""

import csv

import h5py
import numpy as np
import pytest

from sim.object_positions import cube_positions, goal_slots
from sim.scene_labels import SIM_SCENE_LABELS
from sim.tasks import Goal
from vla.cli import main
from vla.config import DataConfig
from vla.data import load_demos

IMAGE = 32


@pytest.fixture(scope="module")
def stack_file(one_demo_file):
    return one_demo_file("stack", 3, IMAGE)


def test_goal_cubes_are_given_where_the_simulator_puts_them_from_the_gripper(stack_file, env_cache):
    (demo,), _ = load_demos([stack_file], DataConfig(image_size=IMAGE), SIM_SCENE_LABELS)
    with h5py.File(stack_file, "r") as f:
        states, gripper = f["data/demo_0/states"][()], f["data/demo_0/obs/robot0_eef_pos"][()]
    env = env_cache("stack", IMAGE)
    env.reset(seed=3)
    for t in (0, len(states) // 2, len(states) - 1):
        env.set_mujoco_state(states[t])
        np.testing.assert_allclose(demo.objects[t, :3], env.cube_pose("red")[0] - gripper[t], atol=1e-9)  # target
        np.testing.assert_allclose(demo.objects[t, 3:], env.cube_pose("green")[0] - gripper[t], atol=1e-9)  # base
    assert np.linalg.norm(demo.objects[0, :3]) > 0.1  # the demo starts away from the red cube...
    assert np.linalg.norm(demo.objects[len(states) // 2, :3]) < 0.03  # ...and holds it half-way through


def test_a_goal_without_a_base_cube_leaves_its_slot_unknown():
    states = np.arange(40.0).reshape(2, 20)
    positions = goal_slots(cube_positions({"red": 4, "blue": 10}, states), Goal("blue"))
    np.testing.assert_array_equal(positions[:, :3], states[:, 10:13])
    assert np.isnan(positions[:, 3:]).all()
    with pytest.raises(ValueError, match="'green' has no cube"):
        goal_slots(cube_positions({"red": 4}, states), Goal("red", "green"))


def test_object_loss_trains_a_head_that_localizes_and_the_coordconv_object_token_policy_acts(stack_file, tmp_path):
    from vla.inference import VlaPredictor

    out = tmp_path / "ck"
    assert main(["train", "--data", stack_file, "--out", str(out), "--image-size", str(IMAGE), "--set", "tiny.image_grid=2",
                 "--steps", "40", "--batch-size", "8", "--lr", "1e-3", "--eval-every", "20", "--object-loss", "1",
                 "--coord-conv", "--object-token", "teacher", "--quiet"]) == 0
    with open(out / "metrics.csv") as f:
        errors = [float(row["value"]) for row in csv.DictReader(f) if row["name"] == "object_error_cm"]
    assert len(errors) == 40 and np.mean(errors[-5:]) < np.mean(errors[:5])  # centimetres off, falling
    predictor = VlaPredictor.load(out)
    assert predictor.model.config.object_loss == 1.0 and predictor.model.encoder.coordinates
    assert predictor.model.object_embedding is not None
    with h5py.File(stack_file, "r") as f:
        obs = {key: f[f"data/demo_0/obs/{key}"][0] for key in
               ("agentview_image", "robot0_eye_in_hand_image", "robot0_joint_pos", "robot0_gripper_qpos")}
    chunk = predictor.predict(obs, "stack the red cube on the green cube")
    assert chunk.shape[1] == 8 and np.isfinite(chunk).all()


def test_a_resumed_teacher_token_run_continues_the_same_run(stack_file, tmp_path, monkeypatch):
    """The teacher noise draws from torch's generator, which is seeded per step like the data order, so a
    resumed run continues the same run — also with image shifts off, where before only the shifts reseeded
    it (a constant learning rate here, so that the three-step first part has the six-step run's schedule)."""
    from dataclasses import replace

    from safetensors.torch import load_file
    from torch.testing import assert_close

    from vla.config import TinyModelConfig, VlaConfig
    from vla.train import TrainConfig, train

    config = VlaConfig(tiny=TinyModelConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128,
                                            vision_channels=(16, 32), image_grid=2, object_loss=1.0,
                                            object_token="teacher"),
                       data=DataConfig(image_size=IMAGE, chunk_size=2))
    cfg = TrainConfig(steps=6, batch_size=4, learning_rate=1e-2, save_every=3, eval_every=100, image_shift=0)
    monkeypatch.setattr("vla.train.learning_rate", lambda step, cfg: cfg.learning_rate)
    labelled = {"progress": False, "scene_labels": SIM_SCENE_LABELS}
    train([stack_file], tmp_path / "full", config, cfg, **labelled)
    train([stack_file], tmp_path / "split", config, replace(cfg, steps=3), **labelled)
    train([stack_file], tmp_path / "split", config, cfg, resume=True, **labelled)
    full, split = (load_file(tmp_path / out / "model.safetensors") for out in ("full", "split"))
    for key in full:
        assert_close(full[key], split[key], rtol=1e-5, atol=1e-6)


def test_object_loss_needs_recorded_scenes_and_fitting_options(tmp_path, capsys):
    from sim.dataset import DatasetWriter
    from sim.episode import Episode

    path = tmp_path / "no_scene.hdf5"
    steps = 4
    images = np.zeros((steps, IMAGE, IMAGE, 3), np.uint8)
    DatasetWriter(path, "lift", {"task": "lift"}).write(Episode(
        seed=0, instruction="lift the red cube", goal={"target": "red"}, actions=np.zeros((steps, 8), np.float32),
        observations={"agentview_image": images, "robot0_eye_in_hand_image": images,
                      "robot0_joint_pos": np.zeros((steps, 7)), "robot0_gripper_qpos": np.zeros((steps, 2))},
        states=np.zeros((steps, 5)), rewards=np.zeros(steps), dones=np.zeros(steps, np.uint8),
        subtasks=["grasp"] * steps, model_file="<mujoco/>", success=True))
    args = ["train", "--data", str(path), "--image-size", str(IMAGE), "--set", "tiny.image_grid=2", "--steps", "1", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "a"), "--object-loss", "1"]) == 2
    assert "no free cube body 'cube_main'" in capsys.readouterr().err
    assert main(args + ["--out", str(tmp_path / "b"), "--image-shift", "16"]) == 2
    assert "--image-shift is a number of pixels, 0 (off) to 15" in capsys.readouterr().err
    assert main(args + ["--out", str(tmp_path / "c"), "--object-token", "predicted"]) == 2
    assert "add --object-loss W (e.g. 1) to --object-token" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "abc")


def test_coordinate_channels_let_the_pooled_tokens_tell_where_an_object_is():
    import torch

    from vla.tiny_model import ConvImageEncoder, coordinate_channels

    xy = coordinate_channels(torch.zeros(1, 3, 4, 8))
    assert xy.shape == (1, 2, 4, 8) and xy[0, 0, 0].tolist() == pytest.approx(np.linspace(-1, 1, 8).tolist())
    assert xy[0, 1, :, 0].tolist() == pytest.approx(np.linspace(-1, 1, 4).tolist())
    left, right = torch.zeros(2, 1, 3, 64, 64, dtype=torch.uint8).unbind(0)
    left[..., 24:28, 16:20] = 255
    right[..., 24:28, 32:36] = 255  # the same blob, one 16-pixel stride of the stem further right
    torch.manual_seed(0)
    for coordinates in (False, True):
        encoder = ConvImageEncoder((8, 16, 16), grid=1, hidden=16, coordinates=coordinates)
        with torch.no_grad():
            moved = (encoder(left) - encoder(right)).abs().max()
        assert (moved > 1e-3) if coordinates else (moved < 1e-5)  # average-pooled convolutions cannot tell


def test_image_shift_zero_keeps_the_training_images():
    import torch

    from vla.train import TrainConfig, sample_batch

    class Images:  # every call draws the same rows; only the shift differs
        config = DataConfig(image_size=IMAGE)
        weights = None  # uniform sampling, as a ChunkDataset without replay data

        def __len__(self):
            return 4

        def sample(self, i, rng=None, relabel_goals=0.0, step_instructions=0.0):
            image = np.arange(2 * 3 * IMAGE * IMAGE, dtype=np.int64).reshape(2, 3, IMAGE, IMAGE) % 251
            return {"images": (image + i).astype(np.uint8), "state_ids": np.zeros(9, np.int64),
                    "action_ids": np.zeros((2, 8), np.int64), "actions": np.zeros((2, 8), np.float32),
                    "instruction": "lift the red cube", "subtask": "", "plan_target": -1}

    plain = sample_batch(Images(), TrainConfig(batch_size=4, image_shift=0), step=0, rank=0, augment=True)
    shifted = sample_batch(Images(), TrainConfig(batch_size=4, image_shift=6), step=0, rank=0, augment=True)
    reference = sample_batch(Images(), TrainConfig(batch_size=4), step=0, rank=0, augment=False)
    assert torch.equal(plain.images, reference.images)
    assert not torch.equal(shifted.images, reference.images)


def _object_token_model(mode: str, chunk: int = 2):
    import torch

    from vla.config import TinyModelConfig
    from vla.text_tokenizer import WordTokenizer
    from vla.tiny_model import TinyVla

    torch.manual_seed(0)
    text = WordTokenizer.train(["lift the red cube"])
    config = TinyModelConfig(text_vocab_size=text.vocab_size, hidden_size=32, num_layers=2, num_heads=2,
                             intermediate_size=64, vision_channels=(8, 16), image_grid=2, object_loss=1.0,
                             object_token=mode)
    return TinyVla(config, DataConfig(image_size=IMAGE, chunk_size=chunk), text).eval()


def _object_token_batch(model, rows: int = 3):
    import torch

    from vla.batch import Batch

    g = torch.Generator().manual_seed(1)
    shape = (rows, len(model.data.cameras), 3, IMAGE, IMAGE)
    state_ids = torch.randint(model.action_tokenizer.first_id, model.config.vocab_size, (rows, 9), generator=g)
    return Batch(torch.randint(0, 255, shape, dtype=torch.uint8, generator=g), state_ids,
                 ["lift the red cube"] * rows, [""] * rows)


def test_the_object_token_carries_the_heads_offsets_and_steers_the_actions():
    import torch

    model = _object_token_model("predicted")
    batch = _object_token_batch(model)
    with torch.no_grad():
        prefix = model.prefix_embeddings(batch)
        queries = model.action_queries.expand(batch.size, -1, -1)
        offsets = model.object_head(model.lm.model(inputs_embeds=prefix).last_hidden_state[:, -1])
        one_pass = model.lm.model(inputs_embeds=torch.cat(
            [prefix, model.object_embedding(offsets)[:, None], queries], 1)).last_hidden_state
        cached = model._hidden_states(prefix, queries)  # prefix first, the rest on its KV cache
        torch.testing.assert_close(cached, one_pass, rtol=1e-4, atol=1e-5)
        n = queries.shape[1]
        logits = model.parallel_action_logits(batch)
        torch.testing.assert_close(logits, model._action_slice(model.lm.lm_head(one_pass[:, -n:])))
        model.object_head[-1].bias += 5.0  # the head now says the cubes are elsewhere: the actions change
        assert not torch.allclose(model.parallel_action_logits(batch), logits)
        autoregressive = model.predict_action_ids(batch, "autoregressive")
    assert autoregressive.shape == (batch.size, model.chunk_size, model.action_dim)


def test_teacher_forcing_feeds_the_recorded_offsets_in_training_only():
    import torch

    from vla.tiny_model import TEACHER_NOISE_CM, noisy_recorded_offsets

    predicted = torch.full((4000, 6), 7.0)
    recorded = torch.zeros(4000, 6)
    recorded[:, 3:] = float("nan")  # a pick goal: no base cube
    fed = noisy_recorded_offsets(recorded, predicted)
    assert torch.equal(fed[:, 3:], predicted[:, 3:])
    assert abs(float(fed[:, :3].std()) * 5 - TEACHER_NOISE_CM) < 0.05 and abs(float(fed[:, :3].mean())) < 0.02
    model = _object_token_model("teacher")
    batch = _object_token_batch(model, rows=2)
    batch.action_ids = torch.randint(model.action_tokenizer.first_id, model.config.vocab_size,
                                     (2, model.chunk_size, model.action_dim))
    action_loss = {}
    for training in (True, False):
        model.train(training)
        for name, objects in (("near", torch.zeros(2, 6)), ("far", torch.full((2, 6), 4.0))):
            batch.objects = objects
            torch.manual_seed(0)
            action_loss[training, name] = model.loss(batch, "parallel")[1]["loss"]
    assert action_loss[True, "near"] != action_loss[True, "far"]  # training reads the recorded offsets,
    assert action_loss[False, "near"] == action_loss[False, "far"]  # validation and inference its own


def test_the_object_loss_without_the_simulators_labels_says_what_is_missing(stack_file, tmp_path):
    from vla.config import TinyModelConfig, VlaConfig
    from vla.train import TrainConfig, train

    config = VlaConfig(tiny=TinyModelConfig(object_loss=1.0), data=DataConfig(image_size=IMAGE))
    with pytest.raises(ValueError, match="pass scene_labels=sim.scene_labels.SIM_SCENE_LABELS"):
        train([stack_file], tmp_path / "out", config, TrainConfig(steps=1), progress=False)


def test_a_dataset_without_mujoco_states_trains_with_the_side_losses_off(stack_file, tmp_path, capsys):
    """A real robot's or an imported dataset: no states, no model file. Fine-tuning a model with an object
    head on it trains the actions and says that the simulator-only losses are off."""
    import shutil

    from vla.config import TinyModelConfig, VlaConfig
    from vla.train import TrainConfig, train

    robot_file = tmp_path / "robot.hdf5"
    shutil.copy(stack_file, robot_file)
    with h5py.File(robot_file, "a") as f:
        for demo in f["data"].values():
            del demo["states"]
            del demo.attrs["model_file"]
    config = VlaConfig(tiny=TinyModelConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128,
                                            vision_channels=(16, 32), image_grid=2, object_loss=1.0),
                       data=DataConfig(image_size=IMAGE, chunk_size=2))
    metrics = train([str(robot_file)], tmp_path / "out", config, TrainConfig(steps=2, batch_size=4, eval_every=2),
                    progress=False, scene_labels=SIM_SCENE_LABELS)
    assert np.isfinite(metrics["loss"]) and "object_error_cm" not in metrics
    err = capsys.readouterr().err
    assert "the object and goal-keypoint losses are off" in err and "has no MuJoCo states" in err
