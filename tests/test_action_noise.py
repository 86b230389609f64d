"""DART-style action noise: executed actions drift, recorded labels stay clean, replay is exact."""

import numpy as np
import pytest

from sim.action_noise import ActionNoise
from sim.dataset import read_episode
from vla.cli import main


def _offsets(noise: ActionNoise, seed: int, steps: int) -> np.ndarray:
    drift, clean = noise.drift(seed), np.linspace(-1, 1, 8)
    return np.stack([drift(clean) - clean for _ in range(steps)])


def test_offset_drifts_slowly_with_the_configured_spread_and_spares_the_gripper():
    offsets = _offsets(ActionNoise(0.03, correlation_steps=10), seed=7, steps=20000)
    assert np.all(offsets[:, 7] == 0.0)
    assert np.std(offsets[1000:, :7]) == pytest.approx(0.03, rel=0.1)
    lag1 = np.corrcoef(offsets[1000:-1, 0], offsets[1001:, 0])[0, 1]
    assert lag1 == pytest.approx(0.9, abs=0.03)  # 1 - 1/correlation_steps


def test_same_seed_same_offsets_other_seed_other_offsets():
    noise = ActionNoise(0.02)
    np.testing.assert_array_equal(_offsets(noise, 3, 50), _offsets(noise, 3, 50))
    assert not np.allclose(_offsets(noise, 3, 50), _offsets(noise, 4, 50))


def test_attrs_round_trip_and_clean_demos_have_no_noise():
    noise = ActionNoise(0.025, correlation_steps=6)
    assert ActionNoise.from_attrs(noise.attrs()) == noise
    assert ActionNoise.from_attrs({}) is None


@pytest.mark.parametrize("scale", [-0.1, float("nan"), float("inf")])
def test_bad_scale_is_refused_with_the_flag_name(scale):
    with pytest.raises(ValueError, match="--action-noise"):
        ActionNoise(scale)


def test_noisy_demos_record_clean_targets_and_replay_exactly(tmp_path, capsys):
    out = tmp_path / "noisy.hdf5"
    assert main(["collect", "--task", "lift", "--episodes", "1", "--seed", "5", "--out", str(out),
                 "--image-size", "48", "--action-noise", "0.03", "--quiet"]) == 0
    episode = read_episode(out, "demo_0")
    assert ActionNoise.from_attrs(episode.extra_attrs) == ActionNoise(0.03)
    executed = ActionNoise(0.03).drift(episode.seed)
    gaps = [np.abs(executed(a) - a).max() for a in episode.actions]
    assert max(gaps) > 0.01  # the robot was pushed off the recorded targets
    assert main(["replay", str(out), "--quiet"]) == 0
    assert "1/1 demos faithful" in capsys.readouterr().out
