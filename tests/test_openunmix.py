"""Open-Unmix: the reference parameter count, uni- vs bidirectional wiring, input
statistics from the training mixtures."""

import os

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfaudio.audio import features
from tfaudio.audio.geometry import AudioGeometry
from tfaudio.audio.wiener import wiener
from tfaudio.data.separation_data import SeparationData
from tfaudio.models.openunmix import OpenUnmix, bandwidth_to_max_bin
from tfaudio.tasks.separation import MaskSeparationTask, si_sdr

import audio_files

# open-unmix-pytorch's counts at its defaults (its LSTMs keep an input and a recurrent bias).
REFERENCE = {False: 8_893_348, True: 10_466_212}


def trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


@pytest.mark.parametrize("unidirectional", [False, True], ids=["bi", "uni"])
def test_reference_geometry_matches_the_reference_parameter_count(unidirectional):
    gin.parse_config(["audio_geometry.sample_rate = 44100", "audio_geometry.n_fft = 4096",
                      "audio_geometry.hop_length = 1024"])
    assert bandwidth_to_max_bin(44100, 4096, 16000.0) == 1487
    model = OpenUnmix(channels=2, hidden_size=512, nb_layers=3, unidirectional=unidirectional, bandwidth=16000.0)
    out = model(tf.zeros([1, 44100, 2]))
    assert out.shape == (1, 44100, 2)
    assert trainable(model) == REFERENCE[unidirectional]


@pytest.mark.parametrize("unidirectional", [True, False], ids=["uni", "bi"])
def test_only_the_unidirectional_model_ignores_the_future(unidirectional):
    gin.parse_config(["audio_geometry.sample_rate = 8000", "audio_geometry.n_fft = 256",
                      "audio_geometry.hop_length = 64"])
    keras.utils.set_random_seed(0)
    model = OpenUnmix(hidden_size=16, nb_layers=2, unidirectional=unidirectional, bandwidth=4000.0)
    x = np.random.default_rng(0).normal(0, 0.3, (1, 8000)).astype(np.float32)
    changed = x.copy()
    changed[:, 6000:] = np.random.default_rng(1).normal(0, 0.3, (1, 2000))
    a, b = model(x).numpy(), model(changed).numpy()
    past = slice(0, 6000 - 256)  # samples whose frames all end before the change
    assert np.allclose(a[:, past], b[:, past], atol=1e-6) == unidirectional
    assert not np.allclose(a[:, 7000:], b[:, 7000:])


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_half_precision_runs_the_network_in_half_and_the_signal_in_float32(precision):
    gin.parse_config(["audio_geometry.sample_rate = 8000", "audio_geometry.n_fft = 256",
                      "audio_geometry.hop_length = 64"])
    keras.mixed_precision.set_global_policy(precision)
    try:
        model = OpenUnmix(hidden_size=16, nb_layers=2, bandwidth=4000.0)
        x = tf.constant(np.random.default_rng(0).normal(0, 0.3, (2, 4000)), tf.float32)
        with tf.GradientTape() as tape:
            magnitude = model.target_magnitude(x, training=True)
            loss = tf.reduce_mean(tf.square(magnitude))
        grads = tape.gradient(loss, model.trainable_variables)
        wave = model(x)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert magnitude.dtype == wave.dtype == tf.float32 and wave.shape == (2, 4000)
    assert model.lstms[0].compute_dtype == precision.split("_")[1]
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)


def test_wiener_sources_add_up_to_the_mixture_and_refine_oracle_magnitudes():
    geometry = AudioGeometry(sample_rate=8000, n_fft=256, win_length=256, hop_length=64)
    t = np.arange(8000) / 8000
    tone = np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    voice = np.stack([tone, 0.3 * tone], -1).astype(np.float32)  # loud left, quiet right
    noise = (np.random.default_rng(0).normal(size=(8000, 2)) * [0.2, 0.6]).astype(np.float32)
    mixture = features.channel_stft((voice + noise)[None], geometry)
    oracle = tf.stack([tf.abs(features.channel_stft(s[None], geometry)) for s in (voice, noise)], 1)
    scores = []
    for iterations in (0, 1):
        sources = wiener(oracle, mixture, iterations)
        if iterations:
            np.testing.assert_allclose(tf.reduce_sum(sources, 1), mixture, atol=1e-4 * np.abs(mixture).max())
        estimate = tf.transpose(features.istft(sources[:, 0], geometry, 8000), [0, 2, 1])[0]
        scores.append(np.mean(si_sdr(voice.T, tf.transpose(estimate)).numpy()))
    assert scores[1] > scores[0] + 1.0  # measured +1.65 dB: the quiet channel borrows the loud one's spatial model


def test_wiener_post_filter_applies_only_at_inference():
    gin.parse_config(["audio_geometry.sample_rate = 8000", "audio_geometry.n_fft = 256",
                      "audio_geometry.hop_length = 64"])
    x = np.random.default_rng(0).normal(0, 0.3, (2, 4000, 2)).astype(np.float32)
    keras.utils.set_random_seed(0)
    plain = OpenUnmix(channels=2, hidden_size=16, nb_layers=1, bandwidth=4000.0)
    plain(x)
    filtered = OpenUnmix(channels=2, hidden_size=16, nb_layers=1, bandwidth=4000.0, wiener_iterations=1)
    filtered(x)
    filtered.set_weights(plain.get_weights())
    np.testing.assert_allclose(filtered(x, training=True), plain(x, training=True), atol=1e-6)
    assert not np.allclose(filtered(x), plain(x), atol=1e-3)


def test_input_statistics_come_from_the_training_mixtures(tmp_path):
    gin.parse_config(["audio_geometry.sample_rate = 8000", "audio_geometry.n_fft = 256",
                      "audio_geometry.hop_length = 64"])
    data = SeparationData(data_dir=audio_files.mixtures(str(tmp_path / "mixtures")), segment_seconds=0.5)
    task = MaskSeparationTask(stats_examples=16)
    task.initialize(data, str(tmp_path))
    mixture = next(iter(data.train(16, seed=0)))["mixture"]
    magnitude = np.abs(np.fft.rfft(np.stack([np.pad(m, 128, mode="reflect")[t:t + 256] * np.hanning(257)[:256]
                                             for m in mixture.numpy() for t in range(0, 4001, 64)]), axis=-1))
    np.testing.assert_allclose(task.state.mean.numpy(), magnitude.mean(0), rtol=1e-3, atol=1e-5)
    model = OpenUnmix(hidden_size=8, nb_layers=1, bandwidth=2000.0)
    model(mixture[:1])
    task.initialize_model(model)
    assert model.max_bin == 65
    np.testing.assert_allclose(model.input_mean.numpy(), -task.state.mean.numpy()[:65])
    np.testing.assert_allclose(model.input_scale.numpy(), 1 / np.maximum(task.state.std.numpy()[:65], 1e-2))
    assert os.path.isfile(tmp_path / "feature_stats.json")


@pytest.mark.parametrize("channels", [1, 2])
def test_streaming_equals_offline_separation(channels):
    from tfaudio.models.openunmix import StreamingSeparator

    gin.parse_config(["audio_geometry.sample_rate = 8000", "audio_geometry.n_fft = 256",
                      "audio_geometry.hop_length = 64"])
    keras.utils.set_random_seed(0)
    model = OpenUnmix(channels=channels, hidden_size=16, nb_layers=2, unidirectional=True, bandwidth=3000.0)
    shape = (5003,) if channels == 1 else (5003, 2)
    mixture = np.random.default_rng(0).normal(0, 0.3, shape).astype(np.float32)
    offline = model(mixture[None]).numpy()[0]
    stream = StreamingSeparator(model)
    pieces, start = [], 0
    for size in [100, 333, 1, 64, 1000, 2049] + [500] * 3:  # irregular blocks, then the rest
        pieces.append(stream.push(mixture[start:start + size]))
        start += size
    pieces.append(stream.push(mixture[start:]))
    assert sum(len(p) for p in pieces) <= len(mixture) - 64  # a hop and a window behind
    pieces.append(stream.flush())
    np.testing.assert_allclose(np.concatenate(pieces), offline, atol=1e-4)


@pytest.mark.parametrize("stereo", [False, True], ids=["mono_stream", "stereo_offline"])
def test_separate_command_equals_the_restored_model(tmp_path, stereo):
    import subprocess
    import sys

    import soundfile as sf

    from tfaudio import compose as training
    from tfaudio import config
    from tfaudio.experiment import restore_for_inference

    data = audio_files.mixtures(str(tmp_path / "mixtures"))
    config.parse([os.path.join(config.REPO_GIN_DIR, "openunmix_8khz.gin")], [
        f"data_dir = '{data}'", "batch_size = 2", "train_steps = 2", "eval_every = 2", "Trainer.steps_per_loop = 1",
        "OpenUnmix.hidden_size = 16", f"OpenUnmix.unidirectional = {not stereo}",
        f"OpenUnmix.channels = {2 if stereo else 1}", f"SeparationData.channels = {2 if stereo else 1}"],
        finalize=False)
    run = str(tmp_path / "run")
    training.train(run, tracker="none")
    mixture = os.path.join(data, "valid", "t0", "mixture.wav")
    wave, rate = sf.read(mixture, dtype="float32")
    how = (["--stream", "--block_samples=700"] if not stereo else  # one chunk as long as the file
           ["--overlap=0", f"--chunk_seconds={len(wave) / rate}"])
    out = subprocess.run([sys.executable, "-m", "tfaudio.separate", f"--model_dir={run}", f"--input={mixture}",
                          f"--output_dir={tmp_path / 'out'}", *how], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert ("real-time factor" in out.stdout) != stereo
    separated, _ = sf.read(str(tmp_path / "out" / "mixture_speech.wav"), dtype="float32")
    gin.clear_config()
    model, _ = restore_for_inference(run)
    if stereo:
        wave = np.stack([wave, wave], axis=-1)
    assert separated.shape == wave.shape
    np.testing.assert_allclose(separated, model(wave[None]).numpy()[0], atol=1e-4)


@pytest.mark.parametrize("channels", [1, 2])
def test_stream_step_reproduces_offline_separation_hop_by_hop(channels):
    gin.parse_config(["audio_geometry.sample_rate = 8000", "audio_geometry.n_fft = 256",
                      "audio_geometry.win_length = 256", "audio_geometry.hop_length = 64"])
    keras.utils.set_random_seed(0)
    model = OpenUnmix(channels=channels, hidden_size=16, nb_layers=2, unidirectional=True, bandwidth=4000.0)
    x = np.random.default_rng(0).normal(0, 0.3, (3000, channels)).astype(np.float32)
    offline = model(x[None] if channels == 2 else x[None, :, 0]).numpy()[0].reshape(3000, channels)
    n_fft, hop, pad = 256, 64, 128
    padded = np.concatenate([x[1:pad + 1][::-1], x, x[-pad - 1:-1][::-1]])
    state, step, pieces = model.stream_state(), tf.function(model.stream_step), []
    for start in range(0, len(padded) - hop + 1, hop):
        out, state = step(tf.constant(padded[start:start + hop]), state)
        pieces.append(out.numpy())
    streamed = np.concatenate(pieces)
    assert not streamed[:n_fft - hop].any()  # the frame is still filling
    streamed = streamed[n_fft - hop + pad:]
    np.testing.assert_allclose(streamed, offline[:len(streamed)], atol=1e-5)
    assert len(streamed) > 2800
