"""The spectrogram side of text-to-speech, both ways: log mel and linear targets from
waves (the guarded LogCompression, per-channel normalisation by statistics computed once
over the training set, padding with the normalised floor, which is also the go frame),
and waves from predicted spectra (Griffin-Lim, brought back to the predicted level)."""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow as tf
from absl import logging

from tfaudio.audio import features
from tfaudio.audio.normalization import FeatureNormalization, save_stats
from tfaudio.run_dir import FEATURE_STATS
from tfaudio.tasks.base import training_statistics


def _level(wave, mag, power: float, peak: float = 0.95):
    """Griffin-Lim inverts mag ** power; scale its output back to the level of `mag` (the
    least-squares gain between mag ** power and mag), and down to `peak` if it would clip."""
    sharpened = tf.pow(mag, power)
    gain = tf.reduce_sum(sharpened * mag) / tf.maximum(tf.reduce_sum(sharpened * sharpened), 1e-12)
    wave = wave * gain
    top = tf.reduce_max(tf.abs(wave)) if wave.shape[0] != 0 else tf.constant(0.0)
    return wave * tf.where(top > peak, peak / tf.maximum(top, 1e-12), 1.0)


class _State(tf.Module):
    """What the task keeps in checkpoints: the feature normalisation statistics."""

    def __init__(self, n_mels: int, n_bins: int):
        super().__init__(name="tts_state")
        self.mel = FeatureNormalization(n_mels, name="mel_stats")
        self.linear = FeatureNormalization(n_bins, name="linear_stats")


class Spectra:
    """Targets from waves and waves from predictions, for one audio geometry.

    Args:
      geometry: the run's audio_geometry().
      compression: the LogCompression of the targets.
      normalize: normalise targets by per-channel training-set mean and std.
      gl_iterations, gl_power: Griffin-Lim's iterations and the power it inverts.
    """

    def __init__(self, geometry, compression, normalize: bool, gl_iterations: int, gl_power: float):
        self.geometry, self.compression, self.normalize = geometry, compression, normalize
        self.gl_iterations, self.gl_power = gl_iterations, gl_power
        self.state = _State(geometry.n_mels, geometry.n_bins)

    def log_spectra(self, wave):
        """(log mel, log linear) [B, T, C] of waves [B, samples], not normalised."""
        mag = features.magnitude(wave, self.geometry)
        return self.compression(features.mel_from_spectrum(mag, self.geometry)), self.compression(mag)

    def _valid_frames(self, length):
        """STFT frames [B] of each example's valid samples (centred framing)."""
        return tf.cast(length, tf.int32) // self.geometry.hop_length + 1

    def targets(self, batch, reduction: int):
        """Normalised log mel and linear targets [B, T, C] with T a multiple of
        `reduction`, the valid frame counts [B] and the frame mask [B, T]."""
        mel, linear = self.log_spectra(batch["audio"])
        frames = self._valid_frames(batch["length"])
        total = tf.shape(mel)[1]
        padded = (total + reduction - 1) // reduction * reduction
        mask = tf.sequence_mask(frames, padded)
        floor = self.compression.floor_value

        def finish(x, norm):
            x = tf.pad(x, [[0, 0], [0, padded - total], [0, 0]], constant_values=floor)
            x = tf.where(mask[..., None], x, floor)
            return norm(x) if self.normalize else x
        return finish(mel, self.state.mel), finish(linear, self.state.linear), frames, mask

    @property
    def go_frame(self):
        """The normalised floor value: silence, the first decoder input."""
        floor = tf.fill([self.geometry.n_mels], self.compression.floor_value)
        return self.state.mel(floor) if self.normalize else floor

    def compute_statistics(self, data, examples: int, model_dir: str):
        """The normalisation statistics over `examples` training examples (once per run;
        a resumed run restores them from its checkpoint), also written to feature_stats.json."""
        if not self.normalize:
            return

        def spectra(batch):
            mel, linear = self.log_spectra(batch["audio"])
            mask = tf.sequence_mask(self._valid_frames(batch["length"]), tf.shape(mel)[1])
            return {"mel": (mel, mask), "linear": (linear, mask)}
        stats = training_statistics(data, examples, spectra)
        self.state.mel.assign(*stats["mel"])
        self.state.linear.assign(*stats["linear"])
        save_stats(os.path.join(model_dir, FEATURE_STATS),
                   {"mel": self.state.mel, "linear": self.state.linear})
        logging.info("feature statistics written to %s/feature_stats.json", model_dir)

    def log_mel(self, mel):
        """Natural-log mel from the model's (normalised) mel."""
        return self.state.mel.inverse(mel) if self.normalize else mel

    def to_audio(self, spectrum, linear: bool):
        """Griffin-Lim waveform of one predicted spectrum [frames, bins or mels] (model
        units), brought back to the predicted level and kept below clipping."""
        if linear:
            mag = self.compression.inverse(self.state.linear.inverse(spectrum) if self.normalize else spectrum)
        else:
            mag = tf.nn.relu(tf.matmul(self.compression.inverse(self.log_mel(spectrum)), self._mel_inverse))
        wave = features.griffin_lim(mag, self.geometry, self.gl_iterations, self.gl_power)
        return _level(wave, mag, self.gl_power)

    @functools.cached_property
    def _mel_inverse(self):
        """Least-squares inverse [n_mels, bins] of the mel filterbank, computed once, as a
        constant (also when first needed while tracing an export)."""
        with tf.init_scope():
            return tf.constant(np.linalg.pinv(features.mel_matrix(self.geometry)))
