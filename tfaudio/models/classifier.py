"""Spectrogram classifiers: audio in, class logits out, the features inside the graph.

wave [B, samples]  (or [B, crops, samples]: logits per crop, [B, crops, classes])
  -> SpectrogramFeatures: log-mel in dB (LogCompression), MFCC (its DCT), or both as
     two channels -> [B, frames, n_mels, channels], normalised (see below)
  -> a backbone (tfaudio.models.backbones) -> [B, features]
  -> head: 0-2 hidden dense layers (dense + BatchNorm + PReLU + dropout), then dense
     to the classes.

Normalisation: "separate" (each channel by its own mean and standard deviation over the
training set, computed once by ClassificationTask and kept in the checkpoint), "joint"
(one mean and deviation over both channels), "per_clip" (min-max to [0, 1] per clip and
channel, log-mel floored 80 dB below the clip's peak first) or "none".
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfaudio.audio import features as spectral
from tfaudio.audio.compression import LogCompression
from tfaudio.audio.geometry import audio_geometry
from tfaudio.errors import ConfigError
from tfaudio.limits import POSITIVE_INT, RATE, Choice, Range, limits
from tfaudio.models.backbones import BACKBONES, make_backbone
from tfaudio.models.building import BuiltByCall
from tfaudio.models.weights import parameter_count

FEATURES = ("log_mel", "mfcc", "both")
NORMALIZATIONS = ("separate", "joint", "per_clip", "none")


class SpectrogramFeatures(BuiltByCall, keras.layers.Layer):
    """[B, samples] -> [B, frames, n_mels, channels]; `raw` gives them before normalisation."""

    def __init__(self, kind: str = "log_mel", normalization: str = "separate", **kwargs):
        super().__init__(**kwargs)
        self.kind, self.normalization = kind, normalization
        self.geometry = audio_geometry()
        self.channels = 2 if kind == "both" else 1
        self.log_compression = LogCompression(scale="db")
        self.mean = self.add_weight(shape=(self.channels,), initializer="zeros", trainable=False, name="mean")
        self.std = self.add_weight(shape=(self.channels,), initializer="ones", trainable=False, name="std")

    def raw(self, wave):
        log_mel = self.log_compression(spectral.mel_spectrogram(wave, self.geometry))
        channels = {"log_mel": [log_mel], "mfcc": [spectral.mfcc(log_mel)],
                    "both": [log_mel, spectral.mfcc(log_mel)]}[self.kind]
        return tf.stack(channels, axis=-1)

    def set_statistics(self, mean, std):
        """Per-channel statistics of `raw` features over the training set."""
        self.mean.assign(np.asarray(mean, np.float32))
        self.std.assign(np.maximum(np.asarray(std, np.float32), 1e-3))

    def call(self, wave):
        x = self.raw(wave)
        if self.normalization in ("separate", "joint"):
            return (x - self.mean) / self.std
        if self.normalization == "per_clip":
            if self.kind != "mfcc":  # the log-mel channel is floored 80 dB below its peak
                log_mel = x[..., :1]
                peak = tf.reduce_max(log_mel, axis=[1, 2], keepdims=True)
                x = tf.concat([tf.maximum(log_mel, peak - 80.0), x[..., 1:]], -1)
            low = tf.reduce_min(x, axis=[1, 2], keepdims=True)
            high = tf.reduce_max(x, axis=[1, 2], keepdims=True)
            return (x - low) / tf.maximum(high - low, 1e-6)
        return x


@limits(num_classes=Range(2, integer=True), backbone=Choice(*BACKBONES), features=Choice(*FEATURES),
        normalization=Choice(*NORMALIZATIONS), head_layers=Choice(1, 2, 3), head_units=POSITIVE_INT, dropout=RATE,
        max_params=POSITIVE_INT.or_none())
class Classifier(keras.Model):
    """Args:
      num_classes: output classes (the data's label count).
      backbone: one of tfaudio.models.backbones.BACKBONES.
      features, normalization: see SpectrogramFeatures.
      head_layers: dense layers of the head, the output layer included (1-3).
      head_units: width of the hidden head layers.
      dropout: before each head layer.
      max_params: a budget on trainable parameters; exceeding it is a ConfigError.
    """

    def __init__(self, num_classes: int, backbone: str = "cnn", features: str = "log_mel",
                 normalization: str = "separate", head_layers: int = 2, head_units: int = 256,
                 dropout: float = 0.3, max_params: int | None = 50_000_000, **kwargs):
        super().__init__(**kwargs)
        self.backbone_name, self.max_params, self.num_classes = backbone, max_params, num_classes
        self.features = SpectrogramFeatures(features, normalization)
        self.backbone = make_backbone(backbone, self.features.channels)
        self.hidden = [(keras.layers.Dropout(dropout), keras.layers.Dense(head_units, use_bias=False),
                        keras.layers.BatchNormalization(), keras.layers.PReLU()) for _ in range(head_layers - 1)]
        self.out_dropout = keras.layers.Dropout(dropout)
        self.out = keras.layers.Dense(num_classes)

    def build(self, input_shape):
        """Builds every layer on a one-second input, then holds the parameter budget."""
        rate = audio_geometry().sample_rate
        self._logits(tf.zeros([1, rate]), training=False)
        count = parameter_count(self)
        if self.max_params is not None and count > self.max_params:
            raise ConfigError(f"Classifier.backbone={self.backbone_name!r} has {count:,} trainable parameters, "
                              f"over Classifier.max_params={self.max_params:,}; pick a smaller backbone or "
                              "raise the budget")
        self.built = True

    def describe(self) -> dict:
        """The backbone's trainable parameters, for the run record."""
        return {"backbone_parameters": parameter_count(self.backbone)}

    def _logits(self, wave, training):
        x = self.backbone(self.features(wave), training=training)
        for dropout, dense, norm, act in self.hidden:
            x = act(norm(dense(dropout(x, training=training)), training=training))
        return self.out(self.out_dropout(x, training=training))

    def call(self, wave, training=False):
        if len(wave.shape) == 3:  # [B, crops, samples]: each crop classified, kept per example
            batch, crops = tf.shape(wave)[0], tf.shape(wave)[1]
            logits = self._logits(tf.reshape(wave, [batch * crops, tf.shape(wave)[2]]), training)
            return tf.reshape(logits, [batch, crops, self.num_classes])
        return self._logits(wave, training)
