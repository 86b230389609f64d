import numpy as np
import pytest

from vla.normalization import NormStats, Quantiles
from vla.tokenizer import ActionTokenizer


def openvla_reference_encode(x, vocab_size, n_bins=256):
    """The formula of OpenVLA's prismatic/vla/action_tokenizer.py, written out independently."""
    bins = np.linspace(-1, 1, n_bins)
    return vocab_size - np.digitize(np.clip(x, -1, 1), bins)


def openvla_reference_decode(ids, vocab_size, n_bins=256):
    bins = np.linspace(-1, 1, n_bins)
    centers = (bins[:-1] + bins[1:]) / 2
    return centers[np.clip(vocab_size - ids - 1, 0, centers.shape[0] - 1)]


@pytest.mark.parametrize("vocab_size", [32000, 515, 256])
def test_ids_equal_openvla(vocab_size):
    tok = ActionTokenizer(vocab_size)
    x = np.random.default_rng(0).uniform(-1.3, 1.3, (200, 7))
    np.testing.assert_array_equal(tok.encode(x), openvla_reference_encode(x, vocab_size))
    ids = tok.encode(x)
    np.testing.assert_array_equal(tok.decode(ids), openvla_reference_decode(ids, vocab_size))
    assert ids.min() >= vocab_size - 256 and ids.max() <= vocab_size - 1


def test_round_trip_error_is_at_most_one_bin():
    tok = ActionTokenizer(32000)
    x = np.linspace(-1, 1, 1001)
    assert np.abs(tok.decode(tok.encode(x)) - x).max() <= 2 / 255 + 1e-9
    assert tok.encode(np.array([1.0]))[0] == 32000 - 256 and tok.encode(np.array([-1.0]))[0] == 32000 - 1


def test_mean_readout_is_the_expected_decoded_value():
    tok = ActionTokenizer(vocab_size=300, n_bins=256)
    ids = np.array([tok.first_id + 10, tok.first_id + 11])
    one_hot = np.zeros((2, 256))
    one_hot[[0, 1], [10, 11]] = 1.0
    np.testing.assert_allclose(tok.mean_of(one_hot), tok.decode(ids))
    half = one_hot.sum(0) / 2  # half on each of two neighbouring bins: between their centres
    assert tok.mean_of(half) == pytest.approx(tok.decode(ids).mean())
    assert tok.mean_of(np.full(256, 1 / 256)) == pytest.approx(0.0, abs=1e-2)  # uniform: the middle


def test_bad_sizes():
    with pytest.raises(ValueError):
        ActionTokenizer(100, n_bins=256)


def test_quantile_normalization():
    values = np.random.default_rng(1).normal(size=(5000, 3))
    values[:, 2] = 4.0  # constant dimension
    q = Quantiles.of(values)
    normed = q.normalize(values)
    assert normed.min() >= -1 and normed.max() <= 1 and np.all(normed[:, 2] == 0)
    inside = (values[:, 0] > q.q01[0]) & (values[:, 0] < q.q99[0])
    np.testing.assert_allclose(q.unnormalize(normed)[inside, 0], values[inside, 0], atol=1e-9)
    with pytest.raises(ValueError, match="NaN"):
        Quantiles.of(np.array([[np.nan, 1.0]]))


def test_gripper_uses_a_fixed_range_and_stats_round_trip(tmp_path):
    actions = np.zeros((100, 8))
    actions[:, :7] = np.random.default_rng(2).normal(size=(100, 7))
    stats = NormStats.compute("panda", actions, np.ones((100, 9)))  # gripper always open
    assert stats.action.q01[7] == 0.0 and stats.action.q99[7] == 1.0
    assert stats.action.normalize(np.r_[np.zeros(7), 1.0])[7] == 1.0
    stats.save(tmp_path / "norm_stats.json")
    loaded = NormStats.load(tmp_path / "norm_stats.json", "panda")
    np.testing.assert_array_equal(loaded.action.q99, stats.action.q99)
    with pytest.raises(ValueError, match="another robot"):
        NormStats.load(tmp_path / "norm_stats.json", "ur5e")
