"""The layers of Tacotron 1 and 2 around attention and decoder: the prenet (dropout on
at inference), convolution + BatchNorm, the residual conv post-net, the CBHG, and the
two encoders (conv stack + BiLSTM, prenet + CBHG). The durations model uses the conv
encoder and post-net too."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from tfaudio.models.building import BuiltByCall


class Prenet(BuiltByCall, layers.Layer):
    """Dense + ReLU layers with dropout that stays on at inference (the Tacotron 2 trick
    that keeps free-running decoding from locking onto its own errors). Its random state
    is a variable, so a resumed run draws the masks an uninterrupted one would."""

    def __init__(self, units=(256, 256), dropout: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.dense = [layers.Dense(u, activation="relu", name=f"dense_{i}") for i, u in enumerate(units)]
        self.dropout = dropout
        self.seed = keras.random.SeedGenerator(name="prenet_seed")

    def call(self, x):
        for dense in self.dense:
            x = dense(x)
            if self.dropout:
                x = keras.random.dropout(x, self.dropout, seed=self.seed)
        return x


class ConvNorm(BuiltByCall, layers.Layer):
    """Conv1D + BatchNorm + activation + dropout over [B, T, C], zeroed at padded steps."""

    def __init__(self, channels: int, kernel_size: int, activation=None, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.conv = layers.Conv1D(channels, kernel_size, padding="same", use_bias=False)
        self.norm = layers.BatchNormalization()
        self.activation = keras.activations.get(activation)
        self.dropout = layers.Dropout(dropout) if dropout else None

    def call(self, x, valid=None, training=False):
        x = self.activation(self.norm(self.conv(x), training=training))
        if self.dropout is not None:
            x = self.dropout(x, training=training)
        return x if valid is None else x * tf.cast(valid[..., None], x.dtype)


def conv_postnet(postnet_layers: int, channels: int, n_mels: int) -> list:
    """The Tacotron 2 post-net's layers: tanh convs of `channels`, the last one to n_mels."""
    return [ConvNorm(channels if i < postnet_layers - 1 else n_mels, 5, "tanh" if i < postnet_layers - 1 else None,
                     0.5, name=f"postnet_{i}") for i in range(postnet_layers)]


def apply_postnet(postnet: list, mel, valid=None, training=False):
    """mel plus the post-net's residual (mel itself when the post-net has no layers)."""
    if not postnet:
        return mel
    x = mel
    for conv in postnet:
        x = conv(x, valid=valid, training=training)
    return mel + tf.cast(x, mel.dtype)


class CBHG(BuiltByCall, layers.Layer):
    """Conv bank (widths 1..K), max-pool, conv projections with a residual, highway
    layers and a bidirectional GRU (Tacotron 1)."""

    def __init__(self, bank_size: int = 16, channels: int = 128, projections=(128, 128),
                 highway_layers: int = 4, gru_units: int = 128, **kwargs):
        super().__init__(**kwargs)
        self.bank = [ConvNorm(channels, k, "relu", name=f"bank_{k}") for k in range(1, bank_size + 1)]
        self.pool = layers.MaxPooling1D(2, strides=1, padding="same")
        self.projections = [ConvNorm(c, 3, "relu" if i < len(projections) - 1 else None, name=f"proj_{i}")
                            for i, c in enumerate(projections)]
        self.match = layers.Dense(projections[-1], use_bias=False, name="residual_match")
        self.highway = [(layers.Dense(projections[-1], activation="relu", name=f"highway_h{i}"),
                         layers.Dense(projections[-1], activation="sigmoid", name=f"highway_t{i}",
                                      bias_initializer=keras.initializers.Constant(-1.0)))
                        for i in range(highway_layers)]
        self.gru = layers.Bidirectional(layers.GRU(gru_units, return_sequences=True))

    def call(self, x, valid=None, training=False):
        y = tf.concat([conv(x, valid=valid, training=training) for conv in self.bank], axis=-1)
        y = self.pool(y)
        for proj in self.projections:
            y = proj(y, valid=valid, training=training)
        y = y + self.match(x)
        for h, t in self.highway:
            gate = t(y)
            y = h(y) * gate + y * (1.0 - gate)
        return self.gru(y, mask=valid, training=training)


class ConvEncoder(BuiltByCall, layers.Layer):
    """Tacotron 2 encoder: conv layers then a BiLSTM."""

    def __init__(self, conv_layers: int = 3, channels: int = 512, kernel_size: int = 5,
                 lstm_units: int = 256, dropout: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.convs = [ConvNorm(channels, kernel_size, "relu", dropout, name=f"conv_{i}")
                      for i in range(conv_layers)]
        self.lstm = layers.Bidirectional(layers.LSTM(lstm_units, return_sequences=True))

    def call(self, x, valid=None, training=False):
        for conv in self.convs:
            x = conv(x, valid=valid, training=training)
        return self.lstm(x, mask=valid, training=training)


class CBHGEncoder(BuiltByCall, layers.Layer):
    """Tacotron 1 encoder: a prenet then a CBHG."""

    def __init__(self, prenet_units=(256, 128), bank_size: int = 16, channels: int = 128,
                 gru_units: int = 128, **kwargs):
        super().__init__(**kwargs)
        self.prenet = [layers.Dense(u, activation="relu") for u in prenet_units]
        self.dropout = layers.Dropout(0.5)
        self.cbhg = CBHG(bank_size, channels, (channels, prenet_units[-1]), 4, gru_units)

    def call(self, x, valid=None, training=False):
        for dense in self.prenet:
            x = self.dropout(dense(x), training=training)
        return self.cbhg(x, valid=valid, training=training)
