"""A recogniser of residual stacks of dilated 1-D convolutions for CTC, in Keras 3.

samples [B, samples]
  -> front end: log-mel (STFT of `audio_geometry`, zero-padded at the ends, mel bank,
     LogCompression) and a 1x1 convolution; or the raw samples through a strided
     convolution (stride hop_length, kernel 2 x hop_length) -> [B, frames, channels]
  -> num_stacks stacks of residual blocks with dilations 1, 2, 4, ..., max_dilation:
       [BatchNorm] -> dilated convolution (causal or centred) -> gated (tanh x sigmoid)
       or ReLU -> dropout; a 1x1 residual added to the block input, a 1x1 skip output
       summed over all blocks
  -> ReLU, 1x1 convolution, ReLU, 1x1 convolution -> logits [B, frames, classes]

Padded frames are zeroed after every block and excluded from BatchNorm's batch
statistics, and every front-end frame sees zeros past its example's end whether the
batch pads it or not, so a padded batch gives each example the logits it gets alone.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfaudio.audio import features
from tfaudio.audio.compression import LogCompression
from tfaudio.audio.geometry import audio_geometry
from tfaudio.errors import ConfigError
from tfaudio.limits import POSITIVE_INT, RATE, Choice, Range, Rule, limits, power_of_two
from tfaudio.models.building import BuiltByCall


class ResidualBlock(BuiltByCall, keras.layers.Layer):
    """One dilated block: (residual output, skip output), both zero on padded frames. The
    last block has no residual output (nothing reads it)."""

    def __init__(self, channels: int, skip_channels: int, kernel_size: int, dilation: int, gated: bool,
                 batch_norm: bool, causal: bool, dropout: float, last: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.gated = gated
        self.norm = keras.layers.BatchNormalization() if batch_norm else None
        self.conv = keras.layers.Conv1D(channels * (2 if gated else 1), kernel_size, dilation_rate=dilation,
                                        padding="causal" if causal else "same")
        self.dropout = keras.layers.Dropout(dropout)
        self.residual = None if last else keras.layers.Conv1D(channels, 1)
        self.skip = keras.layers.Conv1D(skip_channels, 1)

    def call(self, x, valid, training=False):
        """x [B, T, channels]; valid [B, T, 1]: 1 on real frames, 0 on padding."""
        h = x
        if self.norm is not None:
            # Statistics over real frames only, and padding zero again for the convolution
            # (multiplying also drops the Keras mask BatchNorm attaches).
            h = self.norm(x, training=training, mask=valid[..., 0] > 0) * valid
        h = self.conv(h)
        if self.gated:
            a, b = tf.split(h, 2, axis=-1)
            h = tf.tanh(a) * tf.sigmoid(b)
        else:
            h = tf.nn.relu(h)
        h = self.dropout(h, training=training)
        out = x if self.residual is None else (x + self.residual(h)) * valid
        return out, self.skip(h) * valid


@limits(num_classes=Range(2, integer=True), front_end=Choice("log_mel", "wave"), channels=POSITIVE_INT,
        skip_channels=POSITIVE_INT, kernel_size=Range(2, integer=True),
        max_dilation=Rule(power_of_two, "a power of two (1, 2, 4, ...)", [3, 0]), num_stacks=POSITIVE_INT,
        activation=Choice("gated", "relu"), dropout=RATE)
class DilatedCTC(BuiltByCall, keras.Model):
    """Args:
      num_classes: CTC classes, blank included (the vocabulary's size: its padding id 0
        is the blank).
      front_end: "log_mel" or "wave" (raw samples).
      channels, skip_channels: widths of the residual path and of the summed skips.
      kernel_size: of the dilated convolutions (odd when centred).
      max_dilation: the largest dilation of a stack (a power of two).
      num_stacks: stacks of blocks with dilations 1, 2, ..., max_dilation.
      activation: "gated" (tanh x sigmoid) or "relu".
      batch_norm: BatchNorm (masked) before each residual block.
      causal: causal padding (each frame sees only the past); else centred.
      dropout: inside each block.
    """

    def __init__(self, num_classes: int, front_end: str = "log_mel", channels: int = 128,
                 skip_channels: int = 128, kernel_size: int = 3, max_dilation: int = 64, num_stacks: int = 3,
                 activation: str = "gated", batch_norm: bool = True, causal: bool = False, dropout: float = 0.1,
                 **kwargs):
        super().__init__(**kwargs)
        if not causal and kernel_size % 2 == 0:
            raise ConfigError(f"DilatedCTC.kernel_size={kernel_size} must be odd unless DilatedCTC.causal = True "
                              "(a centred kernel needs a middle tap)")
        self.front_end, self.kernel_size, self.causal = front_end, kernel_size, causal
        self.geometry = audio_geometry()
        self.hop = self.geometry.hop_length
        self.dilations = [2 ** i for i in range(max_dilation.bit_length())] * num_stacks
        if front_end == "wave":
            self.input_conv = keras.layers.Conv1D(channels, 2 * self.hop, strides=self.hop, padding="valid")
        else:
            self.log_compression = LogCompression()
            self.input_conv = keras.layers.Conv1D(channels, 1)
        self.blocks = [ResidualBlock(channels, skip_channels, kernel_size, d, activation == "gated", batch_norm,
                                     causal, dropout, last=i == len(self.dilations) - 1)
                       for i, d in enumerate(self.dilations)]
        self.head = keras.layers.Conv1D(skip_channels, 1)
        self.logits = keras.layers.Conv1D(num_classes, 1)

    def frames(self, samples):
        """Output frames of inputs `samples` long: one per hop (the centred STFT's
        samples // hop + 1; the raw front end's ceil(samples / hop))."""
        if self.front_end == "wave":
            return (samples + self.hop - 1) // self.hop
        return samples // self.hop + 1

    def receptive_field(self) -> int:
        """Frames of input one output frame depends on."""
        return 1 + sum((self.kernel_size - 1) * d for d in self.dilations)

    def describe(self) -> dict:
        """Frame rate and receptive field, for the run record."""
        rate = self.geometry.sample_rate / self.hop
        return {"frame_rate_hz": rate, "receptive_field_frames": self.receptive_field(),
                "receptive_field_seconds": self.receptive_field() / rate}

    def call(self, wave, lengths, training=False):
        """Logits [B, frames, classes] of samples [B, samples] with `lengths` valid samples
        each; zero on the frames past each example's `frames(length)`."""
        if self.front_end == "wave":
            # One hop of zeros before, whole hops after: frame t covers samples
            # [(t - 1) hop, (t + 1) hop).
            x = tf.pad(wave, [[0, 0], [self.hop, -tf.shape(wave)[1] % self.hop]])
            x = self.input_conv(x[..., None])
        else:
            spectrum = tf.abs(features.stft(wave, self.geometry, pad_mode="CONSTANT"))
            x = self.input_conv(self.log_compression(features.mel_from_spectrum(spectrum, self.geometry)))
        frames = self.frames(lengths)
        valid = tf.sequence_mask(frames, tf.shape(x)[1], dtype=x.dtype)[..., None]
        x = x * valid
        skips = 0.0
        for block in self.blocks:
            x, skip = block(x, valid, training=training)
            skips += skip
        h = tf.nn.relu(self.head(tf.nn.relu(skips)))
        return self.logits(h) * valid
