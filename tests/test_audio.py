"""Audio I/O, features, guarded log compression, padding and geometry."""


import numpy as np
import pytest
import tensorflow as tf

from tfaudio.audio import features
from tfaudio.audio.compression import LogCompression
from tfaudio.audio.geometry import AudioGeometry, GeometryError
from tfaudio.audio.io import AudioReadError, read_audio
from tfaudio.audio.padding import pad_to, random_crop

from audio_files import tone, write


@pytest.mark.parametrize("subtype", ["PCM_24", "FLOAT", "PCM_U8", "PCM_16"])
def test_reads_every_wav_width(tmp_path, subtype):
    path = write(str(tmp_path / f"{subtype}.wav"), tone(), subtype=subtype)
    audio = read_audio(path, 8000)
    assert audio.shape == (4000, 1) and audio.dtype == np.float32
    assert np.allclose(audio[:, 0], tone(), atol=1e-2)


def test_flac_and_stereo_to_mono(tmp_path):
    left, right = tone(freq=440.0), tone(freq=700.0, amp=0.25)
    path = write(str(tmp_path / "s.flac"), np.stack([left, right], axis=1))
    mono = read_audio(path, 8000, channels=1)
    assert mono.shape == (4000, 1) and np.allclose(mono[:, 0], (left + right) / 2, atol=1e-3)
    stereo = read_audio(path, 8000, channels=0)
    assert stereo.shape == (4000, 2) and np.allclose(stereo[:, 1], right, atol=1e-3)


def test_other_rate_is_resampled_or_rejected(tmp_path):
    path = write(str(tmp_path / "r16k.wav"), tone(rate=16000), rate=16000, subtype="FLOAT")
    resampled = read_audio(path, 8000)[:, 0]
    # The same 440 Hz tone at 8 kHz, away from the ends the resampler's filter touches.
    assert resampled.shape == (4000,) and np.allclose(resampled[200:-200], tone()[200:-200], atol=1e-3)
    with pytest.raises(AudioReadError, match="16000 Hz, expected 8000"):
        read_audio(path, 8000, on_rate_mismatch="reject")


def test_empty_and_truncated_files_name_the_path(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioReadError, match="empty.wav"):
        read_audio(str(empty), 8000)
    good = write(str(tmp_path / "good.wav"), tone())
    truncated = tmp_path / "trunc.wav"
    truncated.write_bytes(open(good, "rb").read()[:20])
    with pytest.raises(AudioReadError, match="trunc.wav"):
        read_audio(str(truncated), 8000)


def test_stft_round_trip_and_griffin_lim():
    g = AudioGeometry(sample_rate=8000, n_fft=256, win_length=256, hop_length=64)
    x = tf.constant(tone(0.25))
    spec = features.stft(x, g)
    assert spec.shape == (g.frames(2000), g.n_bins)
    y = features.istft(spec, g, length=2000)
    assert np.max(np.abs(y.numpy() - x.numpy())) < 1e-4
    assert features.mel_spectrogram(x, AudioGeometry(8000, 256, 256, 64, n_mels=40)).shape[-1] == 40


def test_griffin_lim_converges_towards_the_magnitude():
    g = AudioGeometry(sample_rate=8000, n_fft=256, win_length=256, hop_length=64)
    mag = tf.abs(features.stft(tf.constant(tone(0.25) + tone(0.25, freq=1234.0, amp=0.3)), g))

    def convergence(iterations):  # ||S - |STFT(y)||| / ||S||
        wave = features.griffin_lim(mag, g, iterations=iterations, length=2000)
        return float(tf.norm(tf.abs(features.stft(wave, g)) - mag) / tf.norm(mag))
    # Measured: 0.92 from the random phase alone, 0.57 after 1 iteration, 0.19 after 32.
    assert convergence(32) < 0.25 < 0.5 < convergence(1) < convergence(0)


@pytest.mark.parametrize("normalize", [False, True])
def test_log_compression_is_finite_and_bounded(normalize):
    layer = LogCompression(normalize=normalize)
    x = tf.constant([0.0, 1e-40, 1e-30, 1e-5, 1.0, 1e30, np.inf], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    grad = tape.gradient(y, x)
    assert np.all(np.isfinite(y.numpy())) and np.all(np.isfinite(grad.numpy()))
    assert np.max(np.abs(grad.numpy())) <= 1.0 / layer.floor * (1 + 1e-3)
    assert float(y[0]) == pytest.approx(layer.floor_value, abs=1e-4)
    if normalize:
        assert np.max(np.abs(y.numpy())) <= layer.max_abs
    back = layer.inverse(layer(tf.constant([1e-3, 0.5, 10.0])))
    assert np.allclose(back.numpy(), [1e-3, 0.5, 10.0], rtol=1e-3)
    assert np.all(np.isfinite(layer.inverse(tf.constant([1e9, -1e9])).numpy()))


def test_the_unguarded_log_is_the_plain_log_a_zero_makes_infinite():
    """The seed study's log, for its divergence variant: the guarded layer's values where
    both are defined, -inf and an infinite gradient at a zero."""
    x = tf.constant([0.0, 1e-3, 0.5, 10.0], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = LogCompression(guarded=False)(x)
    assert np.allclose(y.numpy()[1:], LogCompression()(x).numpy()[1:])
    assert y.numpy()[0] == -np.inf and not np.isfinite(tape.gradient(y, x).numpy()[0])


def test_log_compression_reports_nan():
    with pytest.raises(tf.errors.InvalidArgumentError, match="LogCompression: input contains NaN"):
        LogCompression()(tf.constant([1.0, np.nan]))


def test_log_compression_stays_float32_under_mixed_precision():
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        assert LogCompression()(tf.constant([1e-3], tf.float16)).dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_pad_methods():
    x = tf.constant([1.0, 2.0, 3.0])
    assert pad_to(x, 8, "zeros").numpy().tolist() == [1, 2, 3, 0, 0, 0, 0, 0]
    assert pad_to(x, 8, "wrap").numpy().tolist() == [1, 2, 3, 1, 2, 3, 1, 2]
    assert pad_to(x, 8, "edge").numpy().tolist() == [1, 2, 3, 3, 3, 3, 3, 3]
    assert pad_to(x, 8, "reflect").numpy().tolist() == [1, 2, 3, 2, 1, 2, 3, 2]
    assert pad_to(x, 8, "mirror").numpy().tolist() == [1, 2, 3, 3, 2, 1, 1, 2]
    crop = random_crop(tf.range(100.0), 10, tf.constant([1, 2]))
    assert crop.shape == (10,) and np.all(np.diff(crop.numpy()) == 1)


def test_geometry_names_both_bindings():
    with pytest.raises(GeometryError, match="win_length=2048 exceeds audio_geometry.n_fft=1024"):
        AudioGeometry(n_fft=1024, win_length=2048)
    with pytest.raises(GeometryError, match="fmax=6000.*sample_rate=8000"):
        AudioGeometry(sample_rate=8000, n_fft=256, win_length=256, hop_length=64, fmax=6000)


def test_training_statistics_count_the_frames_the_mask_keeps_over_the_examples_asked_for():
    from tfaudio.tasks.base import training_statistics

    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, (48, 5, 2)).astype(np.float32)
    masks = np.arange(5)[None, :] < rng.integers(1, 6, 48)[:, None]
    values[~masks] = 1e3  # padding: must never count

    class Data:
        def train(self, batch_size, seed):
            assert seed == 0
            return tf.data.Dataset.from_tensor_slices({"x": values, "mask": masks}).batch(batch_size)

    stats = training_statistics(Data(), 20, lambda b: {"x": (b["x"], b["mask"])})  # two batches of 16
    kept = values[:32][masks[:32]]
    np.testing.assert_allclose(stats["x"][0], kept.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["x"][1], kept.std(0), rtol=1e-4)
