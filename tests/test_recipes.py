"""Training recipes as presets: `vla train --preset NAME --set SECTION.FIELD=VALUE`, flags on top."""

import json

import pytest

from vla.cli import build_parser, main
from vla.cli.train import recipe_of
from vla.config import TinyModelConfig, TrainConfig, VlaConfig
from vla.recipes import PRESETS, format_presets, model_changes, with_settings


def _train_args(*flags):
    return build_parser().parse_args(["train", "--data", "d.hdf5", "--out", "runs/x", *flags])


def test_the_shipped_defaults_base_is_its_recipe():
    """What `make default-model` trained with 16 flags (docs/results.md), now --preset default-base."""
    recipe = PRESETS["default-base"]
    tiny, data = recipe.model.tiny, recipe.model.data
    assert (tiny.coordinate_channels, tiny.object_loss, tiny.object_token) == (True, 1.0, "teacher")
    assert (tiny.goal_keypoints, tiny.goal_keypoint_loss) == (True, 1.0)
    assert (data.use_subtasks, data.action_mode, data.chunk_size, data.image_size) == (True, "absolute", 8, 128)
    assert recipe.train == TrainConfig(steps=6000, batch_size=32, save_every=500, eval_every=250, snapshot_every=500,
                                       ema_decay=0.998)
    assert PRESETS["default-finetune"].train.learning_rate == 1e-4 and not model_changes(PRESETS["default-finetune"])


def test_without_a_preset_training_uses_the_defaults():
    recipe = recipe_of(_train_args())
    assert recipe.model == VlaConfig() and recipe.train == TrainConfig()


def test_set_then_flags_each_override_what_came_before():
    recipe = recipe_of(_train_args("--preset", "default-base", "--set", "train.steps=100", "--set",
                                   "tiny.image_grid=2", "--set", "data.action_mode=delta", "--steps", "50",
                                   "--object-loss", "0.5"))
    assert recipe.train.steps == 50 and recipe.train.snapshot_every == 500  # the flag wins over --set
    assert recipe.model.tiny.image_grid == 2 and recipe.model.tiny.object_loss == 0.5
    assert recipe.model.data.action_mode == "delta" and recipe.model.tiny.goal_keypoints


@pytest.mark.parametrize("assignment, message", [
    ("train.stepz=3", "train has no field 'stepz'"), ("steps=3", "expected SECTION.FIELD=VALUE"),
    ("train.steps=many", "expected int"), ("tiny.object_loss=-1", "object_loss is a loss weight"),
    ("data.action_mode=sideways", "--set data.action_mode=sideways"), ("model.tiny=1", "model has no field 'tiny'"),
])
def test_bad_settings_name_the_assignment(assignment, message):
    with pytest.raises(ValueError, match=message):
        with_settings(PRESETS["tiny"], [assignment])


def test_values_are_json_or_bare_words():
    recipe = with_settings(PRESETS["tiny"], ['data.cameras=["agentview"]', "data.skip_idle_frames=true",
                                             "train.learning_rate=1", "tiny.object_token=teacher",
                                             "tiny.object_loss=2"])
    assert recipe.model.data.cameras == ("agentview",) and recipe.model.data.skip_idle_frames
    assert recipe.train.learning_rate == 1.0 and recipe.model.tiny.object_token == "teacher"


@pytest.mark.parametrize("flag", ["--image-grid", "--keypoints", "--skip-idle-frames", "--state-noise",
                                  "--relabel-goals", "--gripper-tokens", "--action-mode"])
def test_options_measured_as_not_helping_left_the_command_line(flag, capsys):
    with pytest.raises(SystemExit):
        _train_args(flag, "1")
    assert "unrecognized arguments" in capsys.readouterr().err


def test_a_tiny_model_setting_with_a_hugging_face_backbone_is_refused():
    with pytest.raises(ValueError, match="tiny.image_grid: only for the tiny backbone"):
        recipe_of(_train_args("--backbone", "/models/smolvlm", "--set", "tiny.image_grid=2"))


def test_presets_are_listed_with_what_they_change():
    text = format_presets()
    for name in PRESETS:
        assert f"{name}: " in text
    assert '    tiny.object_token = "teacher"' in text and "    train.steps = 6000" in text


def test_the_smoke_preset_trains_end_to_end(tmp_path):
    from tests.test_vla_model import _episode
    from sim.dataset import DatasetWriter

    data = tmp_path / "d.hdf5"
    with DatasetWriter(data, "pick-color", {"task": "pick-color"}) as writer:
        for seed in range(2):
            writer.write(_episode(seed))
    out = tmp_path / "smoke"
    assert main(["train", "--data", str(data), "--out", str(out), "--preset", "smoke", "--set",
                 "data.image_size=32", "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["tiny"]["hidden_size"] == 64 and config["data"]["image_size"] == 32
    assert TinyModelConfig().hidden_size != 64


def _two_datasets(tmp_path):
    from sim.dataset import DatasetWriter
    from tests.test_vla_model import _episode

    paths = []
    for name, seeds in (("new", (0, 1)), ("old", (2, 3, 4, 5))):
        path = tmp_path / f"{name}.hdf5"
        with DatasetWriter(path, "pick-color", {"task": "pick-color"}) as writer:
            for seed in seeds:
                writer.write(_episode(seed))
        paths.append(str(path))
    return paths


def test_replay_data_is_its_share_of_every_batch(tmp_path):
    """Fine-tuning beside the data the checkpoint learned from: half of the samples from each, whatever
    their sizes (here 2 new demos and 4 replayed)."""
    import numpy as np

    from vla.config import DataConfig
    from vla.data import ChunkDataset, compute_norm_stats, load_demos
    from vla.tokenizer import ActionTokenizer

    new, old = _two_datasets(tmp_path)
    config = DataConfig(image_size=32, chunk_size=2)
    new_demos, _ = load_demos([new], config)
    old_demos, _ = load_demos([old], config)
    dataset = ChunkDataset(new_demos + old_demos, config, compute_norm_stats(new_demos + old_demos, config),
                           ActionTokenizer(512, 256))
    dataset.mix_in(len(new_demos), 0.3)
    draws = np.random.default_rng(0).choice(len(dataset), size=20_000, p=dataset.weights)
    replayed = np.mean([dataset.index[i][0] >= len(new_demos) for i in draws])
    assert abs(replayed - 0.3) < 0.02
    with pytest.raises(ValueError, match="a share in \\(0, 1\\)"):
        dataset.mix_in(len(new_demos), 1.0)


def test_vla_train_replay_fine_tunes_beside_the_old_data(tmp_path):
    new, old = _two_datasets(tmp_path)
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    assert main(["train", "--data", old, "--out", str(base), "--preset", "smoke", "--set", "data.image_size=32",
                 "--quiet"]) == 0
    assert main(["train", "--data", new, "--replay", old, "--init", str(base), "--out", str(tuned),
                 "--preset", "finetune", "--steps", "2", "--set", "train.replay_share=0.25", "--quiet"]) == 0
    from vla.checkpoint import load_training_state

    saved = json.loads((tuned / "config.json").read_text())
    assert saved["tiny"]["hidden_size"] == 64  # the init checkpoint's model, fine-tuned
    assert load_training_state(tuned)["train_config"]["replay_share"] == 0.25
