"""Source separation: SI-SDR, waveform and multi-resolution STFT losses, evaluation.

SI-SDR conventions (documented values):
- computed in float32 whatever the model's precision;
- a silent reference (all zeros) gives SILENT_REFERENCE_DB, not NaN;
- values are clamped to [-MAX_SI_SDR_DB, MAX_SI_SDR_DB].
"""

from __future__ import annotations

import os

import gin
import numpy as np
import tensorflow as tf
from absl import logging

from tfaudio.audio import features
from tfaudio.audio.geometry import audio_geometry
from tfaudio.audio.normalization import FeatureNormalization, save_stats
from tfaudio.limits import POSITIVE_INT, Rule, limits
from tfaudio.run_dir import FEATURE_STATS
from tfaudio.tasks.base import Task, inference, training_statistics

MAX_SI_SDR_DB = 100.0
SILENT_REFERENCE_DB = 0.0
_EPS = 1e-8


def si_sdr(reference, estimate, zero_mean: bool = False):
    """Scale-invariant SDR in dB per example; inputs [..., samples]."""
    ref = tf.cast(reference, tf.float32)
    est = tf.cast(estimate, tf.float32)
    if zero_mean:
        ref = ref - tf.reduce_mean(ref, axis=-1, keepdims=True)
        est = est - tf.reduce_mean(est, axis=-1, keepdims=True)
    ref_energy = tf.reduce_sum(ref * ref, axis=-1)
    alpha = tf.reduce_sum(est * ref, axis=-1) / tf.maximum(ref_energy, _EPS)
    target = alpha[..., None] * ref
    noise = est - target
    ratio = tf.reduce_sum(target * target, axis=-1) / tf.maximum(tf.reduce_sum(noise * noise, axis=-1), _EPS)
    db = 10.0 * tf.math.log(tf.maximum(ratio, _EPS)) / tf.math.log(10.0)
    db = tf.clip_by_value(db, -MAX_SI_SDR_DB, MAX_SI_SDR_DB)
    return tf.where(ref_energy > _EPS, db, SILENT_REFERENCE_DB)


def channel_si_sdr(reference, estimate, zero_mean: bool = False):
    """SI-SDR [B] of [B, samples] signals, or the mean over channels of [B, samples, channels]."""
    if len(reference.shape) == 3:
        reference, estimate = tf.transpose(reference, [0, 2, 1]), tf.transpose(estimate, [0, 2, 1])
        return tf.reduce_mean(si_sdr(reference, estimate, zero_mean), axis=-1)
    return si_sdr(reference, estimate, zero_mean)


def multi_resolution_stft_loss(reference, estimate, fft_sizes=(512, 256, 128)):
    """Spectral convergence + log-magnitude L1, averaged over STFT resolutions; per example."""
    total = 0.0
    for n_fft in fft_sizes:
        spec = lambda x: tf.abs(tf.signal.stft(x, n_fft, n_fft // 4, pad_end=True))  # noqa: E731
        ref, est = spec(tf.cast(reference, tf.float32)), spec(tf.cast(estimate, tf.float32))
        convergence = (tf.norm(ref - est, axis=[-2, -1])
                       / tf.maximum(tf.norm(ref, axis=[-2, -1]), _EPS))
        log_mag = tf.reduce_mean(tf.abs(tf.math.log(ref + 1e-5) - tf.math.log(est + 1e-5)), axis=[-2, -1])
        total += convergence + log_mag
    return total / len(fft_sizes)


LOSSES = {
    "l1": lambda ref, est: tf.reduce_mean(tf.abs(ref - est), axis=-1),
    "l2": lambda ref, est: tf.reduce_mean(tf.square(ref - est), axis=-1),
    "si_sdr": lambda ref, est: -si_sdr(ref, est, zero_mean=True),
    "mrstft": multi_resolution_stft_loss,
}


def _weighted_losses(losses) -> bool:
    return set(losses) <= set(LOSSES) and all(w >= 0 for w in losses.values())


@gin.configurable
@limits(losses=Rule(_weighted_losses, f"{{loss: weight >= 0}} with losses from {', '.join(sorted(LOSSES))}",
                    [{"sisdr": 1.0}, {"l1": -1.0}], none=True))
class SeparationTask(Task):
    """Estimates batch["target"] from batch["mixture"].

    Args:
      losses: {name: weight} over l1, l2, si_sdr (negative SI-SDR) and mrstft;
        the training loss is their weighted sum.
      zero_mean: SI-SDR metric with zero-mean signals.
    """

    def __init__(self, losses=None, zero_mean: bool = True):
        self.losses = dict(losses or {"l1": 1.0})
        self.zero_mean = zero_mean
        self.sample_rate = audio_geometry().sample_rate

    def loss(self, model, batch, training):
        estimate = tf.cast(model(batch["mixture"], training=training), tf.float32)
        terms = {name: LOSSES[name](batch["target"], estimate) for name in self.losses}
        total = tf.add_n([self.losses[n] * terms[n] for n in terms])
        return total, terms

    def metrics(self, model, batch):
        estimate = tf.cast(model(batch["mixture"], training=False), tf.float32)
        total, terms = 0.0, {}
        for name, weight in self.losses.items():
            terms[name] = LOSSES[name](batch["target"], estimate)
            total += weight * terms[name]
        score = channel_si_sdr(batch["target"], estimate, self.zero_mean)
        baseline = channel_si_sdr(batch["target"], batch["mixture"], self.zero_mean)
        return {"loss": total, "si_sdr": score, "si_sdr_i": score - baseline}

    def summaries(self, model, batch, trackers, step):
        estimate = model(batch["mixture"][:1], training=False)[0].numpy()
        trackers.audio(step, "separation/estimate", estimate, self.sample_rate)
        trackers.audio(step, "separation/mixture", batch["mixture"][0].numpy(), self.sample_rate)

    def build_for_inference(self, model):
        model(tf.zeros([1, self.sample_rate]))

    def export_endpoints(self, model) -> dict:
        channels = getattr(model, "channels", 1)
        shape = [None, None] if channels == 1 else [None, None, channels]

        def separate(audio):
            target = model(audio, training=False)
            return {"target": target, "residual": audio - target}
        return {"separate": (separate, [tf.TensorSpec(shape, tf.float32, name="audio")])}

    def separate(self, model, mixture: np.ndarray, chunk_seconds: float = 4.0, overlap: float = 0.5):
        """Target estimate for a mixture ([samples] or [samples, channels]) of any length
        by chunked overlap-add (Hann).
        The mixture is padded by chunk - hop on both sides, so every sample, the first and
        last included, gets the full weight of the overlapping windows; with overlap 0 a
        mixture of one chunk is one forward pass, as in evaluation. The padding reflects
        the mixture: a recurrent separator that never saw digital silence in training
        separates worse with seconds of it beside the audio (Open-Unmix at 8 kHz:
        +7.4 dB SI-SDRi with zeros, +10.4 dB with the reflection, +10.3 dB in one pass)."""
        chunk = int(chunk_seconds * self.sample_rate)
        hop = max(1, int(chunk * (1 - overlap)))
        n = len(mixture)
        lead = chunk - hop
        total = max(n + 2 * lead, chunk)
        total += (-(total - chunk)) % hop
        channels = [(0, 0)] * (mixture.ndim - 1)
        padded = np.pad(mixture, [(lead, total - n - lead)] + channels, mode="reflect")
        window = np.hanning(chunk + 2)[1:-1].astype(np.float32) if overlap > 0 else np.ones(chunk, np.float32)
        window = window.reshape((chunk,) + (1,) * (mixture.ndim - 1))
        out = np.zeros_like(padded)
        weight = np.zeros_like(padded)
        starts = list(range(0, len(padded) - chunk + 1, hop))
        frames = np.stack([padded[s:s + chunk] for s in starts])
        estimates = inference(model)(tf.constant(frames)).numpy()
        for s, est in zip(starts, estimates):
            out[s:s + chunk] += est * window
            weight[s:s + chunk] += window
        return (out / np.maximum(weight, 1e-6))[lead:lead + n]


@gin.configurable
@limits(stats_examples=POSITIVE_INT)
class MaskSeparationTask(SeparationTask):
    """Separation by a model that masks the mixture's magnitude spectrogram (OpenUnmix):
    trained with the mean squared error of the target magnitude; evaluated, like every
    separator, by SI-SDR of the time-domain estimate. The model's input normalisation
    starts from the per-bin mean and standard deviation of the training mixtures'
    magnitudes (task state: kept in every checkpoint and in feature_stats.json).

    Args:
      stats_examples: training excerpts the statistics are computed over.
      zero_mean: SI-SDR metric with zero-mean signals.
    """

    def __init__(self, stats_examples: int = 256, zero_mean: bool = True):
        super().__init__(losses={}, zero_mean=zero_mean)
        self.geometry = audio_geometry()
        self.stats_examples = stats_examples
        self.state = FeatureNormalization(self.geometry.n_fft // 2 + 1, name="magnitude")

    def initialize(self, data, model_dir: str):
        def magnitudes(batch):  # every channel's frames
            mag = tf.abs(features.channel_stft(batch["mixture"], self.geometry)).numpy()
            mag = mag.reshape(-1, mag.shape[-2], mag.shape[-1])
            return {"magnitude": (mag, np.ones(mag.shape[:2], bool))}
        self.state.assign(*training_statistics(data, self.stats_examples, magnitudes)["magnitude"])
        save_stats(os.path.join(model_dir, FEATURE_STATS), {"magnitude": self.state})
        logging.info("magnitude statistics written to %s/feature_stats.json", model_dir)

    def build_for_inference(self, model):
        model(tf.zeros([1, self.sample_rate] + ([model.channels] if model.channels > 1 else [])))

    def export_endpoints(self, model) -> dict:
        """separate, and for a unidirectional model the streaming pair: stream_state() -> the
        zero state; stream_step(audio [hop, channels], *state) -> audio (one hop, delayed by
        n_fft - hop samples) and the new state (OpenUnmix.stream_step)."""
        endpoints = super().export_endpoints(model)
        if not model.unidirectional:
            return endpoints
        state = model.stream_state()
        names = list(state)

        def stream_state():
            return model.stream_state()

        def stream_step(audio, *values):
            out, new = model.stream_step(audio, dict(zip(names, values)))
            return {"audio": out, **new}
        specs = [tf.TensorSpec([model.geometry.hop_length, model.channels], tf.float32, name="audio")]
        specs += [tf.TensorSpec(v.shape, v.dtype, name=k) for k, v in state.items()]
        return {**endpoints, "stream_state": (stream_state, []), "stream_step": (stream_step, specs)}

    def initialize_model(self, model):
        model.set_input_statistics(self.state.mean.numpy(), self.state.std.numpy())

    def loss(self, model, batch, training):
        estimate = model.target_magnitude(batch["mixture"], training=training)
        reference = tf.abs(features.channel_stft(batch["target"], self.geometry))
        mse = tf.reduce_mean(tf.square(estimate - reference), axis=[1, 2, 3])
        return mse, {"magnitude_mse": mse}

    def metrics(self, model, batch):
        out = super().metrics(model, batch)
        out["loss"] = self.loss(model, batch, training=False)[0]
        return out
