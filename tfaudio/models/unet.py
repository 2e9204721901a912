"""`AudioUNet`: a 1-D convolutional encoder/decoder with skip connections on the waveform.

Input [batch, samples] (the mixture); output [batch, samples] (the target source).
Any input length works: the signal is padded to a multiple of the total stride
inside the model and the output is cut back to the input length.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf


def _norm(kind: str):
    if kind == "batch":
        return keras.layers.BatchNormalization()
    if kind == "layer":
        return keras.layers.LayerNormalization()
    if kind == "none":
        return None
    raise ValueError(f"AudioUNet.norm={kind!r}: use batch, layer or none")


class DownBlock(keras.layers.Layer):
    def __init__(self, channels, kernel, stride, norm, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv1D(channels, kernel, strides=stride, padding="same")
        self.norm = _norm(norm)

    def call(self, x, training=False):
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x, training=training)
        return keras.activations.gelu(x)


class UpBlock(keras.layers.Layer):
    """Upsamples by `stride` (transposed or sub-pixel convolution), adds the skip, refines."""

    def __init__(self, channels, kernel, stride, norm, upsample, **kwargs):
        super().__init__(**kwargs)
        if upsample not in ("transposed", "subpixel"):
            raise ValueError(f"AudioUNet.upsample={upsample!r}: use transposed or subpixel")
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


class AudioUNet(keras.Model):
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
            raise ValueError(f"AudioUNet.channels has {len(channels)} levels but AudioUNet.strides "
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
