"""Finding the cube the words name: counterfactual goals (`vla train --set train.relabel_goals=P`) and goal keypoints
(`--goal-keypoints`)."""

import csv
import re

import h5py
import numpy as np
import pytest
import torch

from sim.tasks import Goal
from vla.cli import main
from vla.config import DataConfig
from vla.data import ChunkDataset, collate, load_demos
from sim.goal_relabel import other_goals
from sim.scene_labels import SIM_SCENE_LABELS

IMAGE = 32


@pytest.fixture(scope="module")
def pick_file(one_demo_file):
    return one_demo_file("pick-color", 5, IMAGE)


def test_other_goals_are_the_same_kind_of_goal_over_the_scenes_cubes():
    assert other_goals(Goal("red"), ["red", "green", "blue"]) == [Goal("blue"), Goal("green")]
    place = other_goals(Goal("red", "green"), ["red", "green", "blue"])
    assert len(place) == 5 and Goal("red", "green") not in place and all(g.target != g.base for g in place)
    assert other_goals(Goal("red", "green"), ["red", "green"]) == [Goal("green", "red")]  # stack's scene
    assert other_goals(Goal("red"), ["red"]) == []  # lift: nothing to relabel


def _dataset(path):
    from vla.normalization import NormStats
    from vla.tokenizer import ActionTokenizer

    config = DataConfig(image_size=IMAGE)
    (demo,), _ = load_demos([path], config, SIM_SCENE_LABELS)
    stats = NormStats.compute("panda", demo.actions, demo.states)
    return demo, ChunkDataset([demo], config, stats, ActionTokenizer(512, 256), (), SIM_SCENE_LABELS)


def test_a_relabelled_sample_names_another_cube_and_is_located_where_the_simulator_puts_it(pick_file, env_cache):
    demo, dataset = _dataset(pick_file)
    with h5py.File(pick_file, "r") as f:
        states, gripper = f["data/demo_0/states"][()], f["data/demo_0/obs/robot0_eef_pos"][()]
    env = env_cache("pick-color", IMAGE)
    env.reset(seed=5)
    rng = np.random.default_rng(0)
    named = set()
    for t in (0, len(dataset) // 2, len(dataset) - 1):
        plain = dataset.sample(t, np.random.default_rng(0))
        assert plain["instruction"] == demo.instruction and "train_actions" not in plain
        sample = dataset.sample(t, rng, relabel_goals=0.999)
        color = re.search(r"(red|green|blue)", sample["instruction"]).group(1)
        assert color != demo.goal.target
        named.add(color)
        env.set_mujoco_state(states[t])
        np.testing.assert_allclose(sample["objects"][:3] * 0.05, env.cube_pose(color)[0] - gripper[t], atol=1e-6)
        np.testing.assert_allclose(sample["goal_pixels"][:, 0], demo.cube_pixels[color][t], atol=1e-4)
        assert np.isnan(sample["goal_pixels"][:, 1]).all()
        assert np.isnan(sample["objects"][3:]).all()  # a pick goal has no base cube
        assert sample["subtask"] == "" and sample["plan_target"] == -1 and sample["train_actions"] is False
        np.testing.assert_array_equal(sample["images"], plain["images"])  # same frame, other words
        np.testing.assert_array_equal(sample["action_ids"], plain["action_ids"])
    assert len(named) == 2  # both other cubes get named
    batch = collate([dataset.sample(0, np.random.default_rng(0)), dataset.sample(0, rng, relabel_goals=0.999)])
    assert batch.action_rows.tolist() == [True, False]
    assert collate([dataset.sample(0, np.random.default_rng(0))]).action_rows is None


def test_rows_marked_as_relabelled_train_the_object_head_but_not_the_actions():
    from tests.test_object_loss import _object_token_batch, _object_token_model

    model = _object_token_model("teacher").train()
    batch = _object_token_batch(model, rows=3)
    g = torch.Generator().manual_seed(2)
    batch.action_ids = torch.randint(model.action_tokenizer.first_id, model.config.vocab_size,
                                     (3, model.chunk_size, model.action_dim), generator=g)
    batch.objects = torch.randn(3, 6, generator=g)
    batch.action_rows = torch.tensor([True, False, True])

    def metrics(b):
        torch.manual_seed(0)
        return model.loss(b, "parallel")[1]

    marked = metrics(batch)
    other_actions = batch.action_ids.clone()
    other_actions[1] = model.action_tokenizer.first_id  # the relabelled row's recorded actions do not count
    assert metrics(batch.__class__(**{**batch.__dict__, "action_ids": other_actions}))["loss"] == marked["loss"]
    other_objects = batch.objects.clone()
    other_objects[1] += 3.0  # but its cube offsets do
    assert metrics(batch.__class__(**{**batch.__dict__, "objects": other_objects}))["object_loss"] != \
        marked["object_loss"]
    unmarked = metrics(batch.__class__(**{**batch.__dict__, "action_rows": None}))
    assert unmarked["loss"] != marked["loss"]
    none_left = metrics(batch.__class__(**{**batch.__dict__, "action_rows": torch.zeros(3, dtype=torch.bool)}))
    assert "loss" not in none_left and "object_loss" in none_left


def test_train_with_relabelled_goals_and_its_refusals(pick_file, tmp_path, capsys):
    args = ["train", "--data", pick_file, "--image-size", str(IMAGE), "--set", "tiny.image_grid=2", "--steps", "6",
            "--batch-size", "8", "--eval-every", "3", "--quiet"]
    out = tmp_path / "ck"
    assert main(args + ["--out", str(out), "--object-loss", "1", "--object-token", "teacher",
                        "--set", "train.relabel_goals=0.5"]) == 0
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["name"] for r in rows} >= {"loss", "object_error_cm", "val_object_error_cm"}
    assert all(np.isfinite(float(r["value"])) for r in rows)
    assert main(args + ["--out", str(tmp_path / "a"), "--set", "train.relabel_goals=0.5"]) == 2
    assert "train.relabel_goals trains the object head" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def test_a_goal_keypoint_lands_on_the_cell_whose_features_match_its_slots_query():
    from vla.goal_keypoints import GoalKeypoints

    keypoints = GoalKeypoints(channels=4, hidden=8, n_cameras=1)
    with torch.no_grad():
        keypoints.log_temperature.fill_(-3.0)  # sharp
    maps = torch.zeros(1, 1, 4, 3, 5)
    maps[0, 0, 1, 0, 4] = 1.0  # "red" features top right
    maps[0, 0, 2, 2, 0] = 1.0  # "green" bottom left
    queries = torch.zeros(1, 2, 4)
    queries[0, 0, 1] = queries[0, 1, 2] = 5.0  # slot 0 looks for red, slot 1 for green
    weights = keypoints.attend(maps, queries)[0, 0]
    assert int(weights[0].argmax()) == 4 and int(weights[1].argmax()) == 10  # row-major cells of 3 x 5
    assert weights[0].max() > 0.9 and weights[1].max() > 0.9
    swapped, _ = keypoints(maps, queries.flip(1))
    tokens, logits = keypoints(maps, queries)
    assert logits.shape == (1, 1, 2, 3, 5)
    assert tokens.shape == (1, 2, 8) and not torch.allclose(tokens, swapped)  # the words decide which is which


def test_goal_keypoint_tokens_follow_the_instruction_and_not_the_subtask():
    from vla.batch import Batch
    from vla.config import TinyModelConfig
    from vla.text_tokenizer import WordTokenizer
    from vla.tiny_model import TinyVla

    torch.manual_seed(0)
    text = WordTokenizer.train(["pick up the red cube", "pick up the green cube", "grasp"])
    config = TinyModelConfig(text_vocab_size=text.vocab_size, hidden_size=32, num_layers=1, num_heads=2,
                             intermediate_size=64, vision_channels=(8, 16), image_grid=2, goal_keypoints=True)
    model = TinyVla(config, DataConfig(image_size=IMAGE, chunk_size=2), text).eval()
    plain = TinyVla(replace_config(config, goal_keypoints=False), DataConfig(image_size=IMAGE, chunk_size=2), text)
    images = torch.randint(0, 255, (1, 2, 3, IMAGE, IMAGE), dtype=torch.uint8)
    state = torch.full((1, 9), model.action_tokenizer.first_id)

    def keypoint_tokens(instruction, subtask=""):
        batch = Batch(images, state, [instruction], [subtask])
        _, maps = model.encoder.encode(batch.images.flatten(0, 1))
        with torch.no_grad():
            return model._goal_keypoint_tokens(batch, maps.unflatten(0, (1, 2)))[0]

    red = keypoint_tokens("pick up the red cube")
    assert red.shape == (1, 4, 32)  # two cameras x two slots
    assert not torch.allclose(red, keypoint_tokens("pick up the green cube"))
    torch.testing.assert_close(red, keypoint_tokens("pick up the red cube", subtask="grasp"))
    with torch.no_grad():
        batch = Batch(images, state, ["pick up the red cube"], [""])
        assert model.prefix_embeddings(batch).shape[1] == plain.prefix_embeddings(batch).shape[1] + 4


def replace_config(config, **changes):
    from dataclasses import replace

    return replace(config, **changes)


def test_train_and_act_with_goal_keypoints(pick_file, tmp_path):
    from vla.inference import VlaPredictor

    out = tmp_path / "gk"
    assert main(["train", "--data", pick_file, "--out", str(out), "--image-size", str(IMAGE), "--set", "tiny.image_grid=2",
                 "--steps", "4", "--batch-size", "8", "--eval-every", "2", "--object-loss", "1", "--goal-keypoints",
                 "--set", "train.relabel_goals=0.5", "--quiet"]) == 0
    predictor = VlaPredictor.load(out)
    assert predictor.model.config.goal_keypoints and predictor.model.goal_keypoints is not None
    with h5py.File(pick_file, "r") as f:
        obs = {key: f[f"data/demo_0/obs/{key}"][0] for key in
               ("agentview_image", "robot0_eye_in_hand_image", "robot0_joint_pos", "robot0_gripper_qpos")}
        instruction = f["data/demo_0"].attrs["instruction"]
    chunk = predictor.predict(obs, instruction)
    assert chunk.shape == (predictor.chunk_size, 8) and np.isfinite(chunk).all()
    assert np.isfinite(predictor.goal_cubes(obs, instruction)).all()


def test_first_frame_grounding_scores_which_cube_the_head_points_at(pick_file, env_cache):
    from sim.dataset import read_episode
    from sim.offline_error import _first_frame_grounding

    episode = read_episode(pick_file, "demo_0")
    named = episode.goal["target"]
    other = next(color for color in ("red", "green", "blue") if color != named)
    env = env_cache("pick-color", IMAGE)
    env.reset(seed=5)
    env.set_mujoco_state(episode.states[0])
    gripper = episode.observations["robot0_eef_pos"][0]

    class PointsAt:  # a head that always names one colour's cube
        has_object_head = True

        def __init__(self, color):
            self.offset = env.cube_pose(color)[0] - gripper

        def goal_cubes(self, observation, instruction):
            return np.concatenate([self.offset, np.zeros(3)])

    error, share = _first_frame_grounding(PointsAt(named), "pick-color", [episode])
    assert share == 1.0 and error < 1e-6
    error, share = _first_frame_grounding(PointsAt(other), "pick-color", [episode])
    gap = 100 * np.linalg.norm(env.cube_pose(other)[0] - env.cube_pose(named)[0])
    assert share == 0.0 and error == pytest.approx(gap)
    assert _first_frame_grounding(PointsAt(named), None, [episode]) == (None, None)
