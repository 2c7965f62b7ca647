import numpy as np
import pytest

from study import fourier
from study.exploration import class_balance, pixel_statistics


def test_fft_round_trip():
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3)).astype(np.uint8)
    assert np.abs(fourier.reconstruct(images) - images).max() < 1e-9


def test_constant_image_spectrum_is_centre_only():
    # A constant image has all its energy at the zero frequency, which the
    # spatial-only shift puts at the centre (4, 4) of an 8x8 grid.
    amplitude = fourier.log_amplitude(np.full((8, 8, 3), 2.0))
    assert amplitude[4, 4, 0] == pytest.approx(np.log1p(2.0 * 64))
    assert np.count_nonzero(amplitude[..., 0] > 1e-9) == 1


def test_shift_keeps_channels_apart():
    # Channel c is constant c+1: a shift over the channel axis would mix them.
    image = np.stack([np.full((4, 4), c + 1.0) for c in range(3)], axis=-1)
    centre = fourier.log_amplitude(image)[2, 2]
    assert centre.tolist() == pytest.approx([np.log1p(16.0 * (c + 1)) for c in range(3)])


def test_low_pass_gain_centre_and_edge():
    gain = fourier.gaussian_low_pass(8, 8, sigma=0.25)
    assert gain[0, 0] == 1.0  # zero frequency
    # fftfreq(8)[4] is -0.5, the Nyquist corner: exp(-(0.25 + 0.25) / (2 * 0.0625)).
    assert gain[4, 4] == pytest.approx(np.exp(-4.0))


def test_high_pass_removes_mean():
    image = np.full((8, 8, 3), 100.0)
    assert np.abs(fourier.filter_images(image, 0.1, "high")).max() < 1e-9
    assert fourier.filter_images(image, 0.1, "low") == pytest.approx(image)


def test_energy_shares_sum_below_one():
    images = np.random.default_rng(1).normal(size=(2, 8, 8, 3))
    low = fourier.energy_kept(images, 0.1, "low")
    high = fourier.energy_kept(images, 0.1, "high")
    assert 0 < low < 1
    assert 0 < high < 1


def test_bad_filter_width_rejected():
    with pytest.raises(ValueError, match="must be positive"):
        fourier.gaussian_low_pass(4, 4, 0.0)


def test_class_balance_shares():
    rows = class_balance(np.array([0, 0, 0, 1]), np.array([1, 1]), ("a", "b"))
    assert rows[0] == {"class": "a", "train_count": 3, "train_share": 0.75,
                       "test_count": 0, "test_share": 0.0}
    assert rows[1]["test_share"] == 1.0


def test_pixel_statistics_saturation():
    images = np.zeros((1, 2, 2, 3), np.uint8)
    images[0, 0, 0] = 255  # one of four pixels saturated in every channel
    stats = pixel_statistics(images)
    assert stats["channels"]["red"]["saturated_share"] == 0.25
    assert stats["channels"]["blue"]["zero_share"] == 0.75
    assert stats["channels"]["green"]["mean"] == pytest.approx(255 / 4)
    assert sum(stats["counts"]["red"]) == 4
