"""SI-SDR reference values and conventions, U-Net shapes, separation inference."""

import numpy as np
import pytest
import tensorflow as tf

from tfaudio.audio import features
from tfaudio.audio.geometry import AudioGeometry
from tfaudio.models.unet import AudioUNet
from tfaudio.tasks.separation import MAX_SI_SDR_DB, SILENT_REFERENCE_DB, multi_resolution_stft_loss, si_sdr

TARGET = tf.constant([3.0, -0.5, 2.0, 7.0])
ESTIMATE = tf.constant([2.5, 0.0, 2.0, 8.0])


def test_si_sdr_reference_values():
    assert float(si_sdr(TARGET, ESTIMATE)) == pytest.approx(18.403, abs=1e-3)
    assert float(si_sdr(TARGET, ESTIMATE, zero_mean=True)) == pytest.approx(15.092, abs=1e-3)


def test_si_sdr_invariant_to_gain_and_sign():
    base = float(si_sdr(TARGET, ESTIMATE))
    assert float(si_sdr(TARGET, -3.0 * ESTIMATE)) == pytest.approx(base, abs=1e-4)
    assert float(si_sdr(0.1 * TARGET, ESTIMATE)) == pytest.approx(base, abs=1e-4)


def test_si_sdr_documented_edge_values():
    assert float(si_sdr(tf.zeros(4), ESTIMATE)) == SILENT_REFERENCE_DB
    assert float(si_sdr(TARGET, TARGET)) <= MAX_SI_SDR_DB
    assert si_sdr(tf.cast(TARGET, tf.float16), tf.cast(ESTIMATE, tf.float16)).dtype == tf.float32


@pytest.mark.parametrize("upsample", ["transposed", "subpixel"])
@pytest.mark.parametrize("length", [1000, 1023, 4096])
def test_unet_keeps_odd_lengths(upsample, length):
    model = AudioUNet(channels=(4, 8), strides=(4, 4), upsample=upsample, norm="batch")
    assert model(tf.zeros([2, length])).shape == (2, length)


def test_gradient_through_inverse_stft_is_finite():
    g = AudioGeometry(sample_rate=8000, n_fft=256, win_length=256, hop_length=64)
    spec = tf.Variable(features.stft(tf.random.normal([2, 2000]), g))
    with tf.GradientTape() as tape:
        wave = features.istft(spec, g, length=2000)
        loss = tf.reduce_mean(multi_resolution_stft_loss(tf.random.normal([2, 2000]), wave))
    grad = tape.gradient(loss, spec)
    assert np.all(np.isfinite(grad.numpy())) and float(tf.reduce_max(tf.abs(grad))) > 0
