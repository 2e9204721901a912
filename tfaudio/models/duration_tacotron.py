"""A Tacotron whose durations replace attention: text to mel frames in one parallel pass.

The Tacotron 2 encoder (conv stack + BiLSTM) reads the text. During training the
monotonic alignment search of Glow-TTS / Grad-TTS picks, for every recording, the
monotonic frame -> symbol alignment under which the recording is most likely given a
mel template per symbol (a projection of its embedding alone: templates with context
can settle on alignments shifted by a symbol), under a beta-binomial diagonal prior; a
forward-sum loss over all monotonic alignments (tfaudio.tasks.alignment) teaches the
templates. The search itself has no gradient; it only chooses the alignment. The
symbols' encodings and contextual mean mels ("prior") are repeated by the durations
found and a residual conv decoder turns them into frames; a duration predictor learns
those durations, and synthesis repeats each symbol by its predicted duration. No
attention and no autoregression: free-running synthesis is the network trained.

Shapes: text ids [B, N] with lengths [B]; frames [B, T, n_mels]; alignments [B, T, N]
(one-hot rows); durations [B, N] frames per symbol.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from tfaudio.audio.geometry import audio_geometry
from tfaudio.limits import COUNT, POSITIVE_INT, RATE, limits
from tfaudio.models.alignment_search import search
from tfaudio.models.attention import diagonal_prior
from tfaudio.models.building import BuiltByCall
from tfaudio.models.tacotron import ENDED_BY
from tfaudio.models.tts_layers import ConvEncoder, ConvNorm, apply_postnet, conv_postnet


def expand(durations, steps):
    """One-hot alignment [B, steps, N] that gives symbol n `durations[b, n]` consecutive
    frames (`steps` is at least the largest total: a static bound under XLA)."""
    ends = tf.cumsum(durations, axis=1)
    starts = ends - durations
    t = tf.range(steps)[None, :, None]
    return tf.cast((t >= starts[:, None, :]) & (t < ends[:, None, :]), tf.float32)


@limits(vocab_size=POSITIVE_INT, n_mels=POSITIVE_INT.or_none(), embedding_dim=POSITIVE_INT, conv_layers=POSITIVE_INT,
        conv_channels=POSITIVE_INT, conv_kernel=POSITIVE_INT, encoder_units=POSITIVE_INT,
        duration_channels=POSITIVE_INT, duration_layers=POSITIVE_INT, decoder_channels=POSITIVE_INT,
        decoder_layers=POSITIVE_INT, decoder_kernel=POSITIVE_INT, decoder_dropout=RATE, postnet_layers=COUNT,
        postnet_channels=POSITIVE_INT)
class DurationTacotron(BuiltByCall, keras.Model):
    """Text to mel frames through predicted durations (see the module docstring).

    Args:
      vocab_size: symbols in the text vocabulary (gin: @vocabulary_size()).
      n_mels: mel channels predicted (default: audio_geometry's).
      embedding_dim, conv_layers, conv_channels, conv_kernel, encoder_units: the Tacotron 2
        encoder (embedding, conv stack, BiLSTM with encoder_units per direction).
      duration_channels, duration_layers: the duration predictor's conv stack.
      decoder_channels, decoder_layers, decoder_kernel, decoder_dropout: the residual
        conv decoder over frames.
      postnet_layers, postnet_channels: the Tacotron 2 residual post-net (0 layers: none).
    """

    reduction = 1  # frames per output step (TacotronTask's model protocol)
    predicts_linear = False
    autoregressive = False  # infer takes no decoding options

    def __init__(self, vocab_size: int, n_mels: int | None = None, embedding_dim: int = 256,
                 conv_layers: int = 3, conv_channels: int = 256, conv_kernel: int = 5, encoder_units: int = 128,
                 duration_channels: int = 256, duration_layers: int = 2, decoder_channels: int = 256,
                 decoder_layers: int = 6, decoder_kernel: int = 5, decoder_dropout: float = 0.1,
                 postnet_layers: int = 5, postnet_channels: int = 256, **kwargs):
        super().__init__(**kwargs)
        self.n_mels = n_mels or audio_geometry().n_mels
        self.embedding = layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.encoder = ConvEncoder(conv_layers, conv_channels, conv_kernel, encoder_units, name="encoder")
        self.prior = layers.Dense(self.n_mels, name="prior")
        self.templates = [layers.Dense(embedding_dim, activation="relu", name="template_hidden"),
                          layers.Dense(self.n_mels, name="template")]
        self.duration_convs = [ConvNorm(duration_channels, 3, "relu", 0.5, name=f"duration_{i}")
                               for i in range(duration_layers)]
        self.duration_out = layers.Dense(1, name="duration_out")
        self.decoder_in = layers.Dense(decoder_channels, name="decoder_in")
        self.decoder = [ConvNorm(decoder_channels, decoder_kernel, "relu", decoder_dropout, name=f"decoder_{i}")
                        for i in range(decoder_layers)]
        self.decoder_out = layers.Dense(self.n_mels, name="decoder_out")
        self.postnet = conv_postnet(postnet_layers, postnet_channels, self.n_mels)

    def encode(self, text_ids, text_length, training=False):
        """(memory [B, N, D], prior means [B, N, n_mels], log(1 + duration) predictions [B, N], mask [B, N])."""
        mask = tf.sequence_mask(text_length, tf.shape(text_ids)[1])
        memory = self.encoder(self.embedding(text_ids), valid=mask, training=training)
        x = tf.stop_gradient(memory)
        for conv in self.duration_convs:
            x = conv(x, valid=mask, training=training)
        log_durations = tf.squeeze(self.duration_out(x), -1) * tf.cast(mask, x.dtype)
        return memory, self.prior(memory), log_durations, mask

    def decode(self, memory, prior, path, valid, training=False):
        """(prior, mel, mel_post) [B, T, n_mels] from the symbols' encodings and means repeated
        by `path` [B, T, N]."""
        path = tf.cast(path, memory.dtype)
        frames_prior = tf.einsum("btn,bnc->btc", path, prior)
        x = self.decoder_in(tf.concat([tf.einsum("btn,bnd->btd", path, memory), frames_prior], -1))
        for conv in self.decoder:
            x = x + conv(x, valid=valid, training=training)
        mel = frames_prior + self.decoder_out(x)
        mel_post = apply_postnet(self.postnet, mel, valid, training)
        valid_f = tf.cast(valid, tf.float32)[..., None]  # outputs in float32, also under mixed precision
        return tuple(tf.cast(x, tf.float32) * valid_f for x in (frames_prior, mel, mel_post))

    def call(self, inputs, training=False):
        """Outputs for inputs {text_ids, text_length, targets [B, T, n_mels], frames [B]}
        aligned by the monotonic alignment search: {mel, mel_post, prior (the symbols'
        means on the searched frames), log_durations (predicted), durations (searched),
        alignments}."""
        memory, prior, log_durations, mask = self.encode(inputs["text_ids"], inputs["text_length"], training)
        targets = tf.cast(inputs["targets"], tf.float32)
        template = self.embedding(inputs["text_ids"])
        for dense in self.templates:
            template = dense(template)
        template = tf.cast(template, tf.float32)
        # log N(x_t; template_n, I) up to a constant, for every frame and symbol: [B, T, N].
        log_likelihood = -0.5 * (tf.reduce_sum(tf.square(targets), -1)[:, :, None]
                                 - 2.0 * tf.einsum("btc,bnc->btn", targets, template)
                                 + tf.reduce_sum(tf.square(template), -1)[:, None, :])
        # Each frame's attention over the text: the symbols' likelihoods under a diagonal prior, normalised.
        log_likelihood += diagonal_prior(inputs["frames"], inputs["text_length"], tf.shape(targets)[1],
                                         tf.shape(prior)[1])
        log_attention = tf.nn.log_softmax(tf.where(mask[:, None, :], log_likelihood, -1e9), axis=-1)
        path = search(log_attention, inputs["frames"], inputs["text_length"])
        valid = tf.sequence_mask(inputs["frames"], tf.shape(targets)[1])
        frames_prior, mel, mel_post = self.decode(memory, prior, path, valid, training)
        return {"mel": mel, "mel_post": mel_post, "prior": frames_prior, "log_durations": log_durations,
                "durations": tf.cast(tf.reduce_sum(path, 1), tf.int32), "alignments": path,
                "log_attention": log_attention}

    def infer(self, text_ids, text_length, max_steps=None):
        """Synthesis: outputs as `call` plus "steps" [B] (frames) and "ended_by" [B] (always
        the end of text). Predicted durations are rounded up, as in Glow-TTS: the log-domain
        loss predicts about the geometric mean, short of the mean (rounded to nearest, the
        demo's synthesis was 15% short of the recordings and recognised 11/20 times instead
        of 13/20). `max_steps` bounds the total."""
        memory, prior, log_durations, mask = self.encode(text_ids, text_length)
        durations = tf.maximum(tf.math.ceil(tf.exp(tf.cast(log_durations, tf.float32)) - 1.0), 1.0)
        durations = tf.cast(durations, tf.int32) * tf.cast(mask, tf.int32)
        if max_steps is None:
            length = tf.reduce_max(tf.reduce_sum(durations, 1))
        else:  # keep the first max_steps frames of each example; outputs have max_steps frames
            ends = tf.minimum(tf.cumsum(durations, axis=1), max_steps)
            durations = ends - tf.pad(ends[:, :-1], [[0, 0], [1, 0]])
            length = max_steps
        path = expand(durations, length)
        steps = tf.reduce_sum(durations, 1)
        valid = tf.sequence_mask(steps, tf.shape(path)[1])
        frames_prior, mel, mel_post = self.decode(memory, prior, path, valid)
        return {"mel": mel, "mel_post": mel_post, "prior": frames_prior, "log_durations": log_durations,
                "durations": durations, "alignments": path, "steps": steps,
                "ended_by": tf.fill(tf.shape(steps), ENDED_BY.index("end of text"))}
