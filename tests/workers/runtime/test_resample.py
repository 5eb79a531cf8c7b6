"""The shared resampler that moves sounds between a Pd array's rate and a model's."""
from __future__ import annotations

import numpy as np
import pytest

from workers.runtime.resample import output_length, resample


def tone(freq: float, sr: int, seconds: float = 0.5) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)


@pytest.mark.parametrize("sr_in,sr_out", [(44100, 48000), (48000, 44100), (22050, 44100), (44100, 16000),
                                          (44100, 44101)])
def test_a_tone_keeps_its_frequency_and_length(sr_in: int, sr_out: int) -> None:
    y = resample(tone(1000.0, sr_in), sr_in, sr_out)
    assert y.shape == (output_length(sr_in // 2, sr_in, sr_out),) and y.dtype == np.float32
    expected = tone(1000.0, sr_out, len(y) / sr_out)
    edge = 200  # the filter sees silence beyond both ends
    assert np.abs(y - expected[:len(y)])[edge:-edge].max() < 1e-3


def test_content_above_the_new_nyquist_is_removed() -> None:
    y = resample(tone(20000.0, 48000), 48000, 22050)  # 20 kHz cannot exist at 22.05 kHz
    assert np.abs(y[200:-200]).max() < 1e-3


def test_equal_rates_return_the_input() -> None:
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    np.testing.assert_array_equal(resample(x, 44100, 44100), x)


def test_leading_axes_are_channels() -> None:
    x = np.stack([tone(300.0, 44100), tone(500.0, 44100)])
    y = resample(x, 44100, 48000)
    assert y.shape == (2, output_length(x.shape[-1], 44100, 48000))
    np.testing.assert_allclose(y[1], resample(x[1], 44100, 48000), atol=1e-6)


def test_bad_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="positive whole"):
        resample(np.zeros(10), 44100.5, 48000)  # type: ignore[arg-type]
