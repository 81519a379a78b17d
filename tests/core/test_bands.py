"""Band normalisation: one function for training and segmentation."""
import numpy as np
import pytest

from stars_core.bands import BandStats, normalise


def _stats():
    return BandStats(("VV", "VH"), lo=(-30.0, -35.0), hi=(0.0, -5.0), mean=(-12.0, -20.0), std=(4.0, 5.0))


def test_values_are_clipped_centred_and_scaled_and_no_data_sits_at_the_mean():
    x = np.array([[[-12.0, 50.0]], [[-25.0, -20.0]]], np.float32)  # (2, 1, 2)
    valid = np.array([[True, False]])
    out = normalise(x, valid, _stats())
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], [0.0, -1.0])
    np.testing.assert_allclose(out[:, 0, 1], [0.0, 0.0])  # no data: 0, the band mean after normalisation
    clipped = normalise(x, np.ones((1, 2), bool), _stats())
    assert clipped[0, 0, 1] == pytest.approx((0.0 + 12.0) / 4.0)  # 50 dB clipped to hi = 0 first


def test_statistics_are_robust_to_outliers_and_round_trip():
    rng = np.random.default_rng(0)
    samples = rng.normal(-15, 3, (10_000, 2))
    samples[:20] = 1e6  # a few wild values do not move the clip limits or the mean much
    stats = BandStats.from_samples(["VV", "VH"], samples)
    assert stats.hi[0] < 0 and abs(stats.mean[0] + 15) < 0.3
    assert BandStats.from_dict(stats.to_dict()) == stats
    with pytest.raises(ValueError, match="expected 2 bands"):
        stats.apply(np.zeros((3, 2, 2)))
