"""SI-SDR reference values and conventions, U-Net shapes, a tiny training run, the
separate CLI and study reports."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from tfaudio.audio import features
from tfaudio.audio.geometry import AudioGeometry
from tfaudio.models.unet import AudioUNet
from tfaudio.run_dir import read_metrics
from tfaudio.tasks.separation import (
    MAX_SI_SDR_DB,
    SILENT_REFERENCE_DB,
    SeparationTask,
    multi_resolution_stft_loss,
    si_sdr,
)

import audio_files

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
    assert 90.0 < float(si_sdr(TARGET, TARGET)) <= MAX_SI_SDR_DB  # a perfect estimate: finite, near the top
    orthogonal = float(si_sdr(tf.constant([1.0, 0.0]), tf.constant([0.0, 1.0])))
    assert -MAX_SI_SDR_DB <= orthogonal <= -79.0  # nothing of the target: finite, at the epsilon's floor
    assert si_sdr(tf.cast(TARGET, tf.float16), tf.cast(ESTIMATE, tf.float16)).dtype == tf.float32


@pytest.mark.parametrize("upsample", ["transposed", "subpixel"])
@pytest.mark.parametrize("length", [1000, 1023, 4096])
def test_unet_keeps_odd_lengths(upsample, length):
    model = AudioUNet(channels=(4, 8), strides=(4, 4), upsample=upsample, norm="batch")
    assert model(tf.zeros([2, length])).shape == (2, length)


def test_multi_resolution_stft_loss_values():
    reference = tf.random.normal([2, 4000], seed=1)
    np.testing.assert_allclose(multi_resolution_stft_loss(reference, reference).numpy(), 0.0, atol=1e-6)
    # Twice the reference: spectral convergence 1 and |log 2|, at every resolution.
    np.testing.assert_allclose(multi_resolution_stft_loss(reference, 2 * reference).numpy(), 1 + np.log(2), rtol=1e-4)


def test_gradient_through_inverse_stft_is_finite():
    g = AudioGeometry(sample_rate=8000, n_fft=256, win_length=256, hop_length=64)
    spec = tf.Variable(features.stft(tf.random.normal([2, 2000]), g))
    with tf.GradientTape() as tape:
        wave = features.istft(spec, g, length=2000)
        loss = tf.reduce_mean(multi_resolution_stft_loss(tf.random.normal([2, 2000]), wave))
    grad = tape.gradient(loss, spec)
    assert np.all(np.isfinite(grad.numpy())) and float(tf.reduce_max(tf.abs(grad))) > 0


@pytest.mark.parametrize("length", [1000, 4097])
def test_hybrid_unet_odd_lengths_and_finite_gradient(length):
    import gin

    from tfaudio import config
    from tfaudio.models.unet import HybridUNet

    config.parse([], ["audio_geometry.sample_rate = 8000", "audio_geometry.n_fft = 256",
                      "audio_geometry.hop_length = 64"])
    model = HybridUNet(channels=(8, 16), strides=(4, 4), spec_bins=96, spec_channels=(4, 8))
    x = tf.random.normal([2, length], seed=1)
    with tf.GradientTape() as tape:
        y = model(x, training=True)
        loss = tf.reduce_mean(-si_sdr(x, y))
    assert y.shape == (2, length)
    grads = tape.gradient(loss, model.spec.trainable_variables)
    assert grads and all(bool(tf.reduce_all(tf.math.is_finite(g))) for g in grads)
    assert any(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)  # the spectrogram branch learns
    gin.clear_config()


def test_spec_bins_beyond_the_fft_names_both_bindings():
    from tfaudio import config
    from tfaudio.audio.geometry import GeometryError
    from tfaudio.models.unet import HybridUNet

    config.parse([], ["audio_geometry.n_fft = 512"])
    with pytest.raises(GeometryError, match="HybridUNet.spec_bins=1088.*audio_geometry.n_fft=512"):
        HybridUNet(spec_bins=1088)


@pytest.fixture(scope="module")
def unet_run(tmp_path_factory):
    """A tiny waveform U-Net trained 120 steps on tone + noise mixtures."""
    from tfaudio import compose as training
    from tfaudio import config

    root = tmp_path_factory.mktemp("unet")
    data = audio_files.mixtures(str(root / "mixtures"), n_train=16, n_valid=4)
    config.parse([os.path.join(config.REPO_GIN_DIR, "audio_unet.gin")], [
        f"data_dir = '{data}'", "train_steps = 120", "eval_every = 40", "batch_size = 8",
        "AudioUNet.channels = (8, 16, 32)", "AudioUNet.strides = (4, 4, 4)",
        "SeparationData.segment_seconds = 0.512", "SeparationData.val_seconds = 1.024",
        "Trainer.steps_per_loop = 20"], finalize=False)
    run = str(root / "run")
    trainer, _ = training.train(run, tracker="none")
    return run, data, trainer


def test_tiny_training_run_improves_si_sdr(unet_run):
    val = [r for r in read_metrics(unet_run[0]) if r.get("split") == "val"]
    ema = [r for r in read_metrics(unet_run[0]) if r.get("split") == "val_ema"]
    assert val[-1]["si_sdr_i"] > 1.0 and val[-1]["si_sdr"] > val[0]["si_sdr"]
    assert "si_sdr_i" in ema[-1]


def test_separate_cli_writes_sources_and_checks_the_rate(unet_run, tmp_path):
    run, data, _ = unet_run
    mix = audio_files.write(str(tmp_path / "long.wav"), audio_files.tone(2.345, 8000, 300, 0.3))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "tfaudio.separate", f"--model_dir={run}", f"--input={mix}",
                           f"--output_dir={out}", "--chunk_seconds=0.5"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    speech, rate = sf.read(str(out / "long_speech.wav"))
    music, _ = sf.read(str(out / "long_music.wav"))
    assert rate == 8000 and len(speech) == len(music) == int(2.345 * 8000)
    other = audio_files.write(str(tmp_path / "cd.wav"), audio_files.tone(0.5, 16000), 16000)
    proc = subprocess.run([sys.executable, "-m", "tfaudio.separate", f"--model_dir={run}", f"--input={other}",
                           f"--output_dir={out}"], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "16000 Hz but the model was trained at 8000 Hz" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_separate_from_the_checkpoint_equals_the_trained_model(unet_run, tmp_path):
    run, _, trainer = unet_run
    # louder than full scale, as separated sources can be: the written files must not clip
    mixture = (audio_files.tone(1.5, 8000, 350, 2.0) + 0.5 * np.random.default_rng(1).normal(size=12000)).astype(
        np.float32)
    path = audio_files.write(str(tmp_path / "mix.wav"), mixture, subtype="FLOAT")
    for overlap in ("0", "0.5"):
        proc = subprocess.run([sys.executable, "-m", "tfaudio.separate", f"--model_dir={run}", f"--input={path}",
                               f"--output_dir={tmp_path / overlap}", "--noema", "--chunk_seconds=1.5",
                               f"--overlap={overlap}"], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        written, _ = sf.read(str(tmp_path / overlap / "mix_speech.wav"), dtype="float32")
        in_process = trainer.task.separate(trainer.model, mixture, 1.5, float(overlap))
        assert np.abs(in_process).max() > 1.0
        np.testing.assert_allclose(written, in_process, atol=1e-5)
    one_pass = trainer.model(tf.constant(mixture[None]), training=False).numpy()[0]
    np.testing.assert_allclose(trainer.task.separate(trainer.model, mixture, 1.5, 0.0), one_pass, atol=1e-6)


def test_axis_study_names_each_run_by_its_value():
    from launch.axis_study import variants

    assert variants("OpenUnmix.hidden_size", ["128", "512"]) == {
        "hidden_size-128": ["OpenUnmix.hidden_size = 128"], "hidden_size-512": ["OpenUnmix.hidden_size = 512"]}
    assert list(variants("batch_size", ["8"], name="batch")) == ["batch-8"]
    assert variants("backbone", ["'cnn'"]) == {"backbone-cnn": ["backbone = 'cnn'"]}


def test_separate_pads_chunks_with_the_mixture_not_silence():
    seen = []

    def recorder(frames, training):
        seen.append(frames.numpy())
        return frames

    task = SeparationTask()
    mixture = np.random.default_rng(0).uniform(0.1, 1.0, size=11000).astype(np.float32)
    for overlap in (0.0, 0.5):
        out = task.separate(recorder, mixture, chunk_seconds=1.0, overlap=overlap)
        np.testing.assert_allclose(out, mixture, atol=1e-6)
    assert all(np.abs(chunk).min() >= 0.1 for chunk in seen)


def test_stereo_si_sdr_is_the_mean_over_channels_per_example():
    from tfaudio.tasks.separation import channel_si_sdr

    rng = np.random.default_rng(0)
    reference = rng.normal(size=(2, 800, 2)).astype(np.float32)
    estimate = reference + rng.normal(size=(2, 800, 2)).astype(np.float32) * np.array([0.1, 0.5], np.float32)
    per_channel = [si_sdr(reference[..., c], estimate[..., c]).numpy() for c in range(2)]
    np.testing.assert_allclose(channel_si_sdr(reference, estimate).numpy(), np.mean(per_channel, axis=0), rtol=1e-5)
