"""Feature-extractor backbones for spectrogram classifiers: each maps a spectrogram
[B, frames, bins, channels] to one feature vector [B, features] per example.

- "cnn": four blocks of 3x3 convolution + BatchNorm + ReLU + 2x2 max-pool (32..256).
- "rnn": a two-layer bidirectional GRU over frames (bins x channels per frame), mean-pooled.
- "resnet18": He et al.'s basic-block ResNet-18 (not in keras.applications).
- "resnet50", "efficientnetv2s": keras.applications (weights=None, any channel count).
- "regnety800mf": RegNetY-800MF (Radosavovic et al., 2020) from its design-space
  parameters; its grouped 3x3 convolutions are run as one convolution per group,
  concatenated (on CPU that trains about 80x faster than Keras' grouped Conv2D).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfaudio.errors import ConfigError
from tfaudio.models.building import BuiltByCall


class ConvBN(BuiltByCall, keras.layers.Layer):
    """Convolution without bias, then BatchNorm."""

    def __init__(self, filters: int, kernel: int, stride: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False)
        self.norm = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9)

    def call(self, x, training=False):
        return self.norm(self.conv(x), training=training)



class SmallCNN(BuiltByCall, keras.layers.Layer):
    def __init__(self, widths=(32, 64, 128, 256), **kwargs):
        super().__init__(**kwargs)
        self.blocks = [ConvBN(w, 3) for w in widths]
        self.pool = keras.layers.MaxPooling2D(2, padding="same")

    def call(self, x, training=False):
        for block in self.blocks:
            x = self.pool(tf.nn.relu(block(x, training=training)))
        return tf.reduce_mean(x, axis=[1, 2])


class RecurrentBackbone(BuiltByCall, keras.layers.Layer):
    def __init__(self, units: int = 128, layers: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.rnns = [keras.layers.Bidirectional(keras.layers.GRU(units, return_sequences=True))
                     for _ in range(layers)]

    def call(self, x, training=False):
        shape = tf.shape(x)
        x = tf.reshape(x, [shape[0], shape[1], x.shape[2] * x.shape[3]])
        for rnn in self.rnns:
            x = rnn(x, training=training)
        return tf.reduce_mean(x, axis=1)


class BasicBlock(keras.layers.Layer):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    def __init__(self, filters: int, stride: int, **kwargs):
        super().__init__(**kwargs)
        self.conv1, self.conv2 = ConvBN(filters, 3, stride), ConvBN(filters, 3)
        self.filters, self.stride = filters, stride
        self.shortcut = None

    def build(self, input_shape):
        if self.stride != 1 or input_shape[-1] != self.filters:
            self.shortcut = ConvBN(self.filters, 1, self.stride)

    def call(self, x, training=False):
        h = self.conv2(tf.nn.relu(self.conv1(x, training=training)), training=training)
        shortcut = x if self.shortcut is None else self.shortcut(x, training=training)
        return tf.nn.relu(h + shortcut)


class ResNet18(BuiltByCall, keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stem = ConvBN(64, 7, 2)
        self.pool = keras.layers.MaxPooling2D(3, 2, padding="same")
        self.blocks = [BasicBlock(w, 2 if i == 1 and w > 64 else 1)
                       for w in (64, 128, 256, 512) for i in (1, 2)]

    def call(self, x, training=False):
        x = self.pool(tf.nn.relu(self.stem(x, training=training)))
        for block in self.blocks:
            x = block(x, training=training)
        return tf.reduce_mean(x, axis=[1, 2])


def regnet_stages(w0: float, wa: float, wm: float, depth: int, group_width: int, quantum: int = 8):
    """(widths, depths, group widths) per stage from RegNet's design-space parameters:
    block widths w0 + wa * j quantised to w0 * wm^k and to multiples of `quantum`, then
    rounded half up to multiples of the group width (never below 90% of the width)."""
    continuous = np.arange(depth) * wa + w0
    k = np.round(np.log(continuous / w0) / np.log(wm))
    widths = (np.round(w0 * np.power(wm, k) / quantum) * quantum).astype(int)
    stage_widths, depths = np.unique(widths, return_counts=True)
    groups = [min(group_width, int(w)) for w in stage_widths]
    divisible = [int(w + g / 2) // g * g for w, g in zip(stage_widths, groups)]
    stage_widths = [d + g if d < 0.9 * w else d for d, w, g in zip(divisible, stage_widths, groups)]
    return stage_widths, [int(d) for d in depths], groups


class SplitGroupConv(BuiltByCall, keras.layers.Layer):
    """A grouped 3x3 convolution as one Conv2D per group, concatenated."""

    def __init__(self, filters: int, group_width: int, stride: int, **kwargs):
        super().__init__(**kwargs)
        self.groups = filters // group_width
        self.convs = [keras.layers.Conv2D(group_width, 3, stride, padding="same", use_bias=False)
                      for _ in range(self.groups)]

    def call(self, x):
        parts = tf.split(x, self.groups, axis=-1)
        return tf.concat([conv(p) for conv, p in zip(self.convs, parts)], axis=-1)


class YBlock(keras.layers.Layer):
    """RegNet's Y block: 1x1, grouped 3x3 (stride), squeeze-excitation, 1x1, shortcut."""

    def __init__(self, width: int, stride: int, group_width: int, se_width: int, **kwargs):
        super().__init__(**kwargs)
        self.a = ConvBN(width, 1)
        self.b = SplitGroupConv(width, group_width, stride)
        self.b_norm = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9)
        self.se_reduce = keras.layers.Conv2D(se_width, 1)
        self.se_expand = keras.layers.Conv2D(width, 1)
        self.c = ConvBN(width, 1)
        self.width, self.stride = width, stride
        self.shortcut = None

    def build(self, input_shape):
        if self.stride != 1 or input_shape[-1] != self.width:
            self.shortcut = ConvBN(self.width, 1, self.stride)

    def call(self, x, training=False):
        h = tf.nn.relu(self.a(x, training=training))
        h = tf.nn.relu(self.b_norm(self.b(h), training=training))
        squeeze = tf.reduce_mean(h, axis=[1, 2], keepdims=True)
        h = h * tf.sigmoid(self.se_expand(tf.nn.relu(self.se_reduce(squeeze))))
        h = self.c(h, training=training)
        shortcut = x if self.shortcut is None else self.shortcut(x, training=training)
        return tf.nn.relu(h + shortcut)


class RegNetY(BuiltByCall, keras.layers.Layer):
    """RegNetY; the defaults are RegNetY-800MF (pycls: depth 14, w0 56, wa 38.84, wm 2.4,
    group width 16, SE ratio 0.25 of each block's input width, stem 32)."""

    def __init__(self, w0: float = 56, wa: float = 38.84, wm: float = 2.4, depth: int = 14, group_width: int = 16,
                 se_ratio: float = 0.25, stem_width: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.stem = ConvBN(stem_width, 3, 2)
        widths, depths, groups = regnet_stages(w0, wa, wm, depth, group_width)
        self.stage_widths, self.stage_depths = widths, depths
        self.blocks, width_in = [], stem_width
        for width, count, group in zip(widths, depths, groups):
            for i in range(count):
                self.blocks.append(YBlock(width, 2 if i == 0 else 1, group, int(round(se_ratio * width_in))))
                width_in = width

    def call(self, x, training=False):
        x = tf.nn.relu(self.stem(x, training=training))
        for block in self.blocks:
            x = block(x, training=training)
        return tf.reduce_mean(x, axis=[1, 2])


class Application(BuiltByCall, keras.layers.Layer):
    """A keras.applications network without its top, pooled to one vector."""

    def __init__(self, name: str, channels: int, **kwargs):
        super().__init__(**kwargs)
        builder = {"resnet50": keras.applications.ResNet50,
                   "efficientnetv2s": keras.applications.EfficientNetV2S}[name]
        options = {"include_preprocessing": False} if name.startswith("efficientnet") else {}
        self.network = builder(weights=None, include_top=False, input_shape=(None, None, channels), pooling="avg",
                               **options)

    def call(self, x, training=False):
        return self.network(x, training=training)


BACKBONES = ("cnn", "rnn", "resnet18", "resnet50", "efficientnetv2s", "regnety800mf")


def make_backbone(name: str, channels: int) -> keras.layers.Layer:
    """The backbone `name` (one of BACKBONES) for spectrograms of `channels` channels."""
    if name == "cnn":
        return SmallCNN()
    if name == "rnn":
        return RecurrentBackbone()
    if name == "resnet18":
        return ResNet18()
    if name == "regnety800mf":
        return RegNetY()
    if name in ("resnet50", "efficientnetv2s"):
        return Application(name, channels)
    raise ConfigError(f"Classifier.backbone={name!r}: choose one of {', '.join(BACKBONES)}")

