"""Waveform and hybrid U-Net separators.

`AudioUNet`: a 1-D convolutional encoder/decoder with skip connections on the
waveform. `HybridUNet`: that waveform U-Net plus a 2-D U-Net that masks the top
`spec_bins` bins of the mixture's STFT; the two branches are summed after the
inverse STFT, so a waveform loss trains both through the inverse STFT.

Input [batch, samples] (the mixture); output [batch, samples] (the target source).
Any input length works: signals are padded to a multiple of the total stride
inside the model and outputs are cut back to the input length.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tfaudio.audio import features
from tfaudio.audio.geometry import GeometryError, audio_geometry
from tfaudio.errors import ConfigError
from tfaudio.limits import POSITIVE_INT, Choice, Each, limits
from tfaudio.models.building import BuiltByCall

UNET_LIMITS = dict(channels=Each(POSITIVE_INT), kernel_size=POSITIVE_INT, strides=Each(POSITIVE_INT),
                   upsample=Choice("transposed", "subpixel"), norm=Choice("batch", "layer", "none"))


def _norm(kind: str):
    if kind == "batch":
        return keras.layers.BatchNormalization()
    if kind == "layer":
        return keras.layers.LayerNormalization()
    if kind == "none":
        return None
    raise ConfigError(f"AudioUNet.norm={kind!r}: use batch, layer or none")


class DownBlock(BuiltByCall, keras.layers.Layer):
    def __init__(self, channels, kernel, stride, norm, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv1D(channels, kernel, strides=stride, padding="same")
        self.norm = _norm(norm)

    def call(self, x, training=False):
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x, training=training)
        return keras.activations.gelu(x)


class UpBlock(BuiltByCall, keras.layers.Layer):
    """Upsamples by `stride` (transposed or sub-pixel convolution), adds the skip, refines."""

    def __init__(self, channels, kernel, stride, norm, upsample, **kwargs):
        super().__init__(**kwargs)
        if upsample not in ("transposed", "subpixel"):
            raise ConfigError(f"AudioUNet.upsample={upsample!r}: use transposed or subpixel")
        self.stride, self.upsample = stride, upsample
        self.up = (keras.layers.Conv1DTranspose(channels, kernel, strides=stride, padding="same")
                   if upsample == "transposed"
                   else keras.layers.Conv1D(channels * stride, kernel, padding="same"))
        self.merge = keras.layers.Conv1D(channels, kernel, padding="same")
        self.norm = _norm(norm)

    def call(self, x, skip, training=False):
        x = self.up(x)
        if self.upsample == "subpixel":
            b, t = tf.shape(x)[0], tf.shape(x)[1]
            x = tf.reshape(x, [b, t * self.stride, x.shape[-1] // self.stride])
        x = self.merge(tf.concat([keras.activations.gelu(x), skip], axis=-1))
        if self.norm is not None:
            x = self.norm(x, training=training)
        return keras.activations.gelu(x)


@limits(**UNET_LIMITS)
class AudioUNet(BuiltByCall, keras.Model):
    """Waveform U-Net separator.

    Args:
      channels: channels per encoder level, e.g. (16, 32, 64, 128).
      kernel_size: convolution width at every level.
      strides: downsampling factor per level (one per channel entry).
      upsample: "transposed" or "subpixel" convolution in the decoder.
      norm: "batch", "layer" or "none".
      residual_output: estimate the target as mixture x mask-like correction
        (False: the network's output is the estimate directly).
    """

    def __init__(self, channels=(16, 32, 64, 128), kernel_size: int = 9, strides=(4, 4, 4, 4),
                 upsample: str = "transposed", norm: str = "none", residual_output: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        if len(channels) != len(strides):
            raise ConfigError(f"AudioUNet.channels has {len(channels)} levels but AudioUNet.strides "
                             f"has {len(strides)}; give one stride per level")
        self.total_stride = int(math.prod(strides))
        self.residual_output = residual_output
        self.stem = keras.layers.Conv1D(channels[0], kernel_size, padding="same")
        self.downs = [DownBlock(c, kernel_size, s, norm) for c, s in zip(channels, strides)]
        self.bottleneck = keras.layers.Conv1D(channels[-1], kernel_size, padding="same")
        skip_channels = [channels[0]] + list(channels[:-1])
        self.ups = [UpBlock(c, kernel_size, s, norm, upsample)
                    for c, s in reversed(list(zip(skip_channels, strides)))]
        self.head = keras.layers.Conv1D(1, 1)

    def call(self, mixture, training=False):
        n = tf.shape(mixture)[1]
        padded = tf.pad(mixture, [[0, 0], [0, (-n) % self.total_stride]])
        x = keras.activations.gelu(self.stem(padded[..., None]))
        skips = []
        for down in self.downs:
            skips.append(x)
            x = down(x, training=training)
        x = keras.activations.gelu(self.bottleneck(x))
        for up, skip in zip(self.ups, reversed(skips)):
            x = up(x, skip, training=training)
        out = self.head(x)[..., 0]
        if self.residual_output:
            out = padded + out
        return out[:, :n]


class SpecUNet(BuiltByCall, keras.layers.Layer):
    """2-D U-Net over [batch, frames, bins, 1] log magnitudes giving a [0, 1] mask.
    Each level halves frames and bins; inputs are padded to a multiple of 2**levels."""

    def __init__(self, channels=(16, 32, 64), kernel_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.factor = 2 ** len(channels)
        self.downs = [keras.layers.Conv2D(c, kernel_size, strides=2, padding="same", activation="gelu")
                      for c in channels]
        self.ups = [keras.layers.Conv2DTranspose(c, kernel_size, strides=2, padding="same", activation="gelu")
                    for c in reversed((channels[0],) + tuple(channels[:-1]))]
        self.merges = [keras.layers.Conv2D(c, kernel_size, padding="same", activation="gelu")
                       for c in reversed((channels[0],) + tuple(channels[:-1]))]
        self.stem = keras.layers.Conv2D(channels[0], kernel_size, padding="same", activation="gelu")
        self.head = keras.layers.Conv2D(1, 1, activation="sigmoid")

    def call(self, x):
        t, f = tf.shape(x)[1], tf.shape(x)[2]
        x = tf.pad(x, [[0, 0], [0, (-t) % self.factor], [0, (-f) % self.factor], [0, 0]])
        x = self.stem(x)
        skips = []
        for down in self.downs:
            skips.append(x)
            x = down(x)
        for up, merge, skip in zip(self.ups, self.merges, reversed(skips)):
            x = merge(tf.concat([up(x), skip], axis=-1))
        return self.head(x)[:, :t, :f, 0]


@limits(**UNET_LIMITS, spec_bins=POSITIVE_INT, spec_channels=Each(POSITIVE_INT))
class HybridUNet(BuiltByCall, keras.Model):
    """AudioUNet on the waveform + SpecUNet masking the top `spec_bins` STFT bins.

    Args:
      channels, kernel_size, strides, upsample, norm, residual_output: the waveform
        branch (see AudioUNet).
      spec_bins: how many of the highest STFT bins (of audio_geometry's n_fft) the
        spectrogram branch sees and masks.
      spec_channels: channels per level of the 2-D U-Net.
    """

    def __init__(self, channels=(16, 32, 64, 128), kernel_size: int = 9, strides=(4, 4, 4, 4),
                 upsample: str = "transposed", norm: str = "none", residual_output: bool = False,
                 spec_bins: int = 1088, spec_channels=(16, 32, 64), **kwargs):
        super().__init__(**kwargs)
        self.geometry = audio_geometry()
        if not 0 < spec_bins <= self.geometry.n_bins:
            raise GeometryError(f"HybridUNet.spec_bins={spec_bins} must lie in 1..{self.geometry.n_bins}, the "
                                f"bins of audio_geometry.n_fft={self.geometry.n_fft}; lower spec_bins or "
                                "raise n_fft")
        self.spec_bins = spec_bins
        self.wave = AudioUNet(channels, kernel_size, strides, upsample, norm, residual_output, name="wave")
        self.spec = SpecUNet(spec_channels, name="spec")

    def call(self, mixture, training=False):
        n = tf.shape(mixture)[1]
        wave = self.wave(mixture, training=training)
        spec = features.stft(tf.cast(mixture, tf.float32), self.geometry)
        low, top = spec[..., :-self.spec_bins], spec[..., -self.spec_bins:]
        mask = self.spec(tf.math.log1p(tf.abs(top))[..., None])
        masked = tf.concat([tf.zeros_like(low), top * tf.complex(tf.cast(mask, tf.float32), 0.0)], axis=-1)
        return tf.cast(wave, tf.float32) + features.istft(masked, self.geometry, n)
