"""Open-Unmix: an LSTM separator that masks the mixture's magnitude spectrogram
(Stöter et al., 2019), in Keras 3.

mixture [B, samples] (mono) or [B, samples, channels]
  -> magnitude STFT of each channel, cropped to `max_bin` (the `bandwidth` in Hz)
  -> (x + input_mean) * input_scale            learned, initialised from training data
  -> dense without bias + BatchNorm + tanh     channels x max_bin -> hidden_size
  -> `nb_layers` LSTMs (bidirectional: hidden_size / 2 per direction), dropout between
  -> concatenate the LSTM stack's input and output (skip connection)
  -> dense + BatchNorm + ReLU, dense + BatchNorm back to channels x all bins
  -> x * output_scale + output_mean, ReLU: a mask times the mixture magnitude
  -> inverse STFT with the mixture's phase -> target estimate, shaped like the mixture.

`target_magnitude` gives the masked magnitude the MSE loss compares
(tfaudio.tasks.separation.MaskSeparationTask); the STFT framing is `audio_geometry`.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfaudio.audio import features
from tfaudio.audio.geometry import audio_geometry
from tfaudio.errors import ConfigError


def bandwidth_to_max_bin(sample_rate: int, n_fft: int, bandwidth: float) -> int:
    """Bins kept by the bandwidth crop: every bin whose centre frequency is <= bandwidth."""
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1, endpoint=True)
    return int(np.max(np.where(freqs <= bandwidth)[0])) + 1


class OpenUnmix(keras.Model):
    """Args:
      channels: audio channels (1 mono, 2 stereo); the mixture's last axis when 2-D.
      hidden_size: width of the dense layers and of the LSTM output.
      nb_layers: stacked LSTMs.
      unidirectional: causal LSTMs of hidden_size (real-time); else bidirectional,
        hidden_size / 2 per direction.
      bandwidth: Hz kept at the input (the output always covers every bin).
      dropout: between LSTM layers (when nb_layers > 1).
    """

    def __init__(self, channels: int = 1, hidden_size: int = 512, nb_layers: int = 3,
                 unidirectional: bool = False, bandwidth: float = 16000.0, dropout: float = 0.4, **kwargs):
        super().__init__(**kwargs)
        if hidden_size < 2 or hidden_size % 2:
            raise ConfigError(f"OpenUnmix.hidden_size={hidden_size} must be a positive even number")
        if nb_layers < 1 or channels < 1:
            raise ConfigError(f"OpenUnmix.nb_layers={nb_layers} and channels={channels} must be positive")
        self.geometry = audio_geometry()
        self.channels, self.unidirectional = channels, unidirectional
        self.nb_bins = self.geometry.n_fft // 2 + 1
        self.max_bin = min(self.nb_bins, bandwidth_to_max_bin(self.geometry.sample_rate, self.geometry.n_fft,
                                                              bandwidth))
        self.fc1 = keras.layers.Dense(hidden_size, use_bias=False)
        self.bn1 = keras.layers.BatchNormalization()
        self.lstms = []
        for _ in range(nb_layers):
            if unidirectional:
                self.lstms.append(keras.layers.LSTM(hidden_size, return_sequences=True))
            else:
                self.lstms.append(keras.layers.Bidirectional(
                    keras.layers.LSTM(hidden_size // 2, return_sequences=True)))
        self.dropout = keras.layers.Dropout(dropout if nb_layers > 1 else 0.0)
        self.fc2 = keras.layers.Dense(hidden_size, use_bias=False)
        self.bn2 = keras.layers.BatchNormalization()
        self.fc3 = keras.layers.Dense(self.nb_bins * channels, use_bias=False)
        self.bn3 = keras.layers.BatchNormalization()
        self.input_mean = self.add_weight(shape=(self.max_bin,), initializer="zeros", name="input_mean")
        self.input_scale = self.add_weight(shape=(self.max_bin,), initializer="ones", name="input_scale")
        self.output_scale = self.add_weight(shape=(self.nb_bins,), initializer="ones", name="output_scale")
        self.output_mean = self.add_weight(shape=(self.nb_bins,), initializer="ones", name="output_mean")

    def set_input_statistics(self, mean, std):
        """Initialises the input normalisation from per-bin training statistics."""
        self.input_mean.assign(-np.asarray(mean, np.float32)[:self.max_bin])
        self.input_scale.assign(1.0 / np.maximum(np.asarray(std, np.float32)[:self.max_bin], 1e-2))

    def _channels_last(self, mixture):
        """[B, samples, channels] float32 from a mono [B, samples] or a multichannel input."""
        mixture = tf.cast(mixture, tf.float32)
        return mixture[..., None] if len(mixture.shape) == 2 else mixture

    def spectrogram(self, mixture):
        """Complex STFT [B, channels, frames, bins] of the mixture."""
        return features.stft(tf.transpose(self._channels_last(mixture), [0, 2, 1]), self.geometry)

    def mask(self, magnitude, training=False):
        """Target magnitude [B, channels, frames, bins] for a mixture magnitude of that shape."""
        batch, frames = tf.shape(magnitude)[0], tf.shape(magnitude)[2]
        x = tf.transpose(magnitude, [0, 2, 1, 3])  # [B, T, C, F]
        x = (x[..., :self.max_bin] + self.input_mean) * self.input_scale
        x = tf.reshape(x, [batch, frames, self.channels * self.max_bin])
        x = tf.tanh(self.bn1(self.fc1(x), training=training))
        h = x
        for i, lstm in enumerate(self.lstms):
            if i:
                h = self.dropout(h, training=training)
            h = lstm(h, training=training)
        x = tf.concat([x, h], -1)
        x = tf.nn.relu(self.bn2(self.fc2(x), training=training))
        x = self.bn3(self.fc3(x), training=training)
        x = tf.reshape(x, [batch, frames, self.channels, self.nb_bins]) * self.output_scale + self.output_mean
        return tf.transpose(tf.nn.relu(x), [0, 2, 1, 3]) * magnitude

    def target_magnitude(self, mixture, training=False):
        """(estimated, mixture) magnitudes [B, channels, frames, bins]."""
        magnitude = tf.abs(self.spectrogram(mixture))
        return self.mask(magnitude, training), magnitude

    def call(self, mixture, training=False):
        spec = self.spectrogram(mixture)
        magnitude = tf.abs(spec)
        estimate = self.mask(magnitude, training)
        phase = tf.math.divide_no_nan(spec, tf.cast(magnitude, tf.complex64))
        wave = features.istft(tf.cast(estimate, tf.complex64) * phase, self.geometry, tf.shape(mixture)[1])
        wave = tf.transpose(wave, [0, 2, 1])
        return wave[..., 0] if len(mixture.shape) == 2 else wave
