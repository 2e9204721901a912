"""Tacotron 1 and 2: characters to (normalised log) mel frames, with attention.

Read top to bottom: location-sensitive (or content) attention, then the model: the
encoder (a conv stack + BiLSTM as in Tacotron 2, or a CBHG as in Tacotron 1), the
autoregressive decoder whose loop is a `tf.while_loop` (traced with the train
step, never a Python loop), and the post-nets (a residual conv net on the mel,
a CBHG to the linear spectrogram). The encoders, the prenet and the post-nets are
in tfaudio.models.tts_layers.

Shapes: text ids [B, N] with lengths [B]; frames [B, T, n_mels] where T is a
multiple of the reduction factor r (the decoder emits r frames per step, so it
runs T / r steps); alignments [B, T / r, N].
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from tfaudio.audio.geometry import audio_geometry
from tfaudio.limits import COUNT, POSITIVE_INT, RATE, UNIT, Choice, Each, limits, phases
from tfaudio.models import tracing
from tfaudio.models.attention import Attention, DynamicConvolutionAttention, diagonal_prior
from tfaudio.models.building import BuiltByCall
from tfaudio.models.tts_layers import CBHG, CBHGEncoder, ConvEncoder, Prenet, apply_postnet, conv_postnet

# What ended free-running decoding, by index (Tacotron.infer's "ended_by").
ENDED_BY = ("max-steps bound", "stop token", "end of text")
# The end-of-text fallback needs the attention to have peaked on this share of the characters.
END_COVERAGE = 0.8


class CoarseDecoder(BuiltByCall, layers.Layer):
    """Double decoder consistency's second decoder (Coqui's DDC): the decoder's layers
    again at a coarser reduction factor, run by `Tacotron._decode` beside the main one."""

    def __init__(self, reduction: int, n_mels: int, attention: layers.Layer, prenet_units, prenet_dropout: float,
                 attention_rnn_units: int, decoder_rnn_units: int, **kwargs):
        super().__init__(**kwargs)
        self.reduction = self.max_reduction = reduction
        self.attention = attention
        self.prenet = Prenet(prenet_units, prenet_dropout, name="prenet")
        self.attention_rnn = layers.LSTMCell(attention_rnn_units, name="attention_rnn")
        self.decoder_rnn = layers.LSTMCell(decoder_rnn_units, name="decoder_rnn")
        self.frame_projection = layers.Dense(n_mels * reduction, name="frame_projection")
        self.stop_projection = layers.Dense(1, name="stop_projection")
        self.built = True  # never called itself: its layers are built as the decoder loop calls them


@limits(vocab_size=POSITIVE_INT, n_mels=POSITIVE_INT.or_none(), n_linear=POSITIVE_INT.or_none(),
        embedding_dim=POSITIVE_INT, encoder=Choice("conv", "cbhg"), conv_layers=POSITIVE_INT,
        conv_channels=POSITIVE_INT, conv_kernel=POSITIVE_INT, encoder_units=POSITIVE_INT,
        encoder_bank_size=POSITIVE_INT, linear_bank_size=POSITIVE_INT, attention_units=POSITIVE_INT,
        location_filters=COUNT, location_features=Choice("cumulative", "both"),
        location_kernel=POSITIVE_INT, prenet_units=Each(POSITIVE_INT), prenet_dropout=RATE,
        attention_rnn_units=POSITIVE_INT, decoder_rnn_units=POSITIVE_INT, reduction=POSITIVE_INT,
        postnet=Choice("conv", "none"), postnet_layers=POSITIVE_INT, postnet_channels=POSITIVE_INT,
        linear_postnet=Choice("cbhg", "none"), scheduled_sampling=UNIT, decoder_dropout=RATE,
        reduction_schedule=phases("reduction"), attention_kind=Choice("location", "dynamic"),
        coarse_reduction=POSITIVE_INT.or_none())
class Tacotron(BuiltByCall, keras.Model):
    """Text to mel frames (and optionally linear spectrogram frames).

    Args:
      vocab_size: symbols in the text vocabulary (gin: @vocabulary_size()).
      n_mels, n_linear: mel channels and linear bins predicted (default: audio_geometry's).
      embedding_dim: character embedding size.
      encoder: "conv" (conv_layers x conv_channels + BiLSTM of encoder_units per
        direction, Tacotron 2) or "cbhg" (Tacotron 1).
      encoder_bank_size, linear_bank_size: convolution widths 1..K in the bank of the
        CBHG encoder and of the linear post-net's CBHG (Tacotron 1: 16 and 8; seed 001's
        "med bank" runs varied it).
      attention_units, location_filters, location_kernel: attention size; 0
        location filters gives content-only attention.
      coarse_reduction: double decoder consistency (Coqui's DDC): a second decoder of the
        same sizes at this coarser r, teacher-forced beside the main one in training and
        evaluation (TacotronTask adds its mel loss and the L1 distance between the two
        decoders' alignments); synthesis uses the main decoder alone. None: no second decoder.
      attention_kind: "location" (the location-sensitive attention above) or "dynamic":
        dynamic convolution attention (Battenberg et al. 2020), location-relative, no
        content term, with a prior that lets it only stay or move forward (8 static and 8
        dynamic filters of width 21, a prior of width 11); the location_* bindings are then unused.
      location_features: what the location filters read: "cumulative" attention
        weights, or "both" the previous step's and the cumulative ones (NVIDIA's).
      prenet_units, prenet_dropout: decoder prenet (dropout on at inference).
      attention_rnn_units, decoder_rnn_units: the two decoder LSTMs.
      decoder_dropout: in training, dropout on both decoder LSTMs' outputs, which the next
        step also carries as their state (NVIDIA's Tacotron 2 uses 0.1); 0: none.
      reduction: frames per decoder step (r).
      reduction_schedule: ((update step, r), ...): from each step on, decode r frames per
        step (`reduction` before the first), e.g. ((0, 6), (2000, 4), (6000, 2)): Coqui's
        gradual training, a coarse decoder that aligns early, then finer ones. The frame
        projection is sized for the largest r (a smaller r reads its first groups); the
        trainer saves at each change and rebuilds the step at the new r, as a resume does.
      postnet: "conv" (residual, postnet_layers x postnet_channels) or "none".
      linear_postnet: "cbhg" (to n_linear bins, Tacotron 1) or "none".
      scheduled_sampling: probability of feeding the model's own previous frame
        instead of the ground truth during training (0: pure teacher forcing).
      attention_prior: teacher-forced decoding (training and the teacher-forced
        evaluation) multiplies the attention weights by the beta-binomial diagonal prior
        (Badlani et al. 2021: decoder step t of T expected near character t/T * N) and
        renormalises; free-running decoding, which does not know T, attends without it.
    """

    def __init__(self, vocab_size: int, n_mels: int | None = None, n_linear: int | None = None,
                 embedding_dim: int = 512, encoder: str = "conv", conv_layers: int = 3,
                 conv_channels: int = 512, conv_kernel: int = 5, encoder_units: int = 256,
                 encoder_bank_size: int = 16, linear_bank_size: int = 8,
                 attention_units: int = 128, location_filters: int = 32, location_kernel: int = 31,
                 location_features: str = "cumulative",
                 prenet_units=(256, 256), prenet_dropout: float = 0.5,
                 attention_rnn_units: int = 1024, decoder_rnn_units: int = 1024, decoder_dropout: float = 0.0,
                 reduction: int = 1,
                 postnet: str = "conv", postnet_layers: int = 5, postnet_channels: int = 512,
                 linear_postnet: str = "none", scheduled_sampling: float = 0.0, attention_prior: bool = False,
                 reduction_schedule=(), attention_kind: str = "location", coarse_reduction: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        geometry = audio_geometry()
        n_mels, n_linear = n_mels or geometry.n_mels, n_linear or geometry.n_bins
        self.n_mels, self.n_linear, self.reduction = n_mels, n_linear, reduction
        self.first_reduction = reduction
        self.reduction_schedule = sorted((int(s), int(r)) for s, r in reduction_schedule)
        # Frames for the largest r: a smaller r reads the first r groups (Coqui's gradual training).
        self.max_reduction = max([reduction] + [r for _, r in self.reduction_schedule])
        self.scheduled_sampling, self.attention_prior = scheduled_sampling, attention_prior
        self.sampling_seed = keras.random.SeedGenerator(name="sampling_seed")
        self.embedding = layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.encoder = (ConvEncoder(conv_layers, conv_channels, conv_kernel, encoder_units, name="encoder")
                        if encoder == "conv" else
                        CBHGEncoder((embedding_dim, encoder_units), encoder_bank_size, encoder_units, encoder_units,
                                    name="encoder"))
        self.dynamic_attention = attention_kind == "dynamic"

        def attention(name):
            return (DynamicConvolutionAttention(attention_units, name=name) if self.dynamic_attention
                    else Attention(attention_units, location_filters, location_kernel, name=name))
        self.attention = attention("attention")
        self.location_features = location_features
        self.prenet = Prenet(prenet_units, prenet_dropout, name="prenet")
        self.attention_rnn = layers.LSTMCell(attention_rnn_units, name="attention_rnn")
        self.decoder_dropout = decoder_dropout
        # Only when used: a checkpoint without it (every earlier run's) still restores whole.
        self.dropout_seed = keras.random.SeedGenerator(name="decoder_dropout_seed") if decoder_dropout else None
        self.decoder_rnn = layers.LSTMCell(decoder_rnn_units, name="decoder_rnn")
        self.frame_projection = layers.Dense(n_mels * self.max_reduction, name="frame_projection")
        self.stop_projection = layers.Dense(1, name="stop_projection")
        self.coarse = (CoarseDecoder(coarse_reduction, n_mels, attention("attention"), prenet_units, prenet_dropout,
                                     attention_rnn_units, decoder_rnn_units, name="coarse_decoder")
                       if coarse_reduction else None)
        self.postnet = conv_postnet(postnet_layers, postnet_channels, n_mels) if postnet == "conv" else []
        self.linear_cbhg = (CBHG(linear_bank_size, 128, (256, n_mels), 4, 128, name="linear_cbhg")
                            if linear_postnet == "cbhg" else None)
        self.linear_projection = layers.Dense(n_linear, name="linear_projection") if self.linear_cbhg else None

    autoregressive = True  # infer decodes from a go frame until the stop token (TacotronTask's protocol)

    def phase(self, step: int) -> int | None:
        """Sets `reduction` to reduction_schedule's r at update `step`; returns the update at
        which the schedule next changes it (the trainer rebuilds the step there), or None."""
        before, self.reduction = self.reduction, self.first_reduction
        for start, r in self.reduction_schedule:
            if start <= step:
                self.reduction = r
        if self.reduction != before:
            tracing.forget(self)  # inference traced at the old r
        later = [start for start, _ in self.reduction_schedule if start > step]
        return later[0] if later else None

    @property
    def predicts_linear(self) -> bool:
        """Whether outputs carry "linear" (Tacotron 1's CBHG post-net) beside the mels."""
        return self.linear_cbhg is not None

    # -------------------------------------------------------------- encoder

    def encode(self, text_ids, text_length, training=False):
        """(memory [B, N, D], mask [B, N])."""
        mask = tf.sequence_mask(text_length, tf.shape(text_ids)[1])
        memory = self.encoder(self.embedding(text_ids), valid=mask, training=training)
        return memory, mask

    # -------------------------------------------------------------- decoder

    def _initial_state(self, memory, decoder):
        batch = tf.shape(memory)[0]
        zeros = lambda n: tf.zeros([batch, n], memory.dtype)  # noqa: E731
        state = dict(att=[zeros(decoder.attention_rnn.units)] * 2, dec=[zeros(decoder.decoder_rnn.units)] * 2,
                     context=zeros(memory.shape[-1]), cumulative=tf.zeros(tf.shape(memory)[:2], tf.float32))
        if self.dynamic_attention:  # the previous step's weights, starting on the first symbol
            state["previous"] = tf.one_hot(tf.zeros([batch], tf.int32), tf.shape(memory)[1])
        elif self.location_features == "both":  # the previous step's weights: carried only when read
            state["previous"] = tf.zeros(tf.shape(memory)[:2], tf.float32)
        return state

    def _step(self, x, state, keys, memory, mask, training, log_prior=None, decoder=None):
        """One step of `decoder` (default: the main one) from the prenet's output for the
        previous frame, x [B, P]: (output [B, H + D], which the frame and stop projections
        read; attention weights [B, N]; new state)."""
        decoder = decoder or self
        x = tf.concat([x, state["context"]], axis=-1)
        h_att, att_state = self._dropped(*decoder.attention_rnn(x, state["att"], training=training), training)
        context, weights = decoder.attention(h_att, keys, memory, state["cumulative"], mask, log_prior,
                                             state.get("previous"))
        h_dec, dec_state = self._dropped(*decoder.decoder_rnn(tf.concat([h_att, context], -1), state["dec"],
                                                              training=training), training)
        new_state = dict(att=list(att_state), dec=list(dec_state), context=context,
                         cumulative=state["cumulative"] + weights)
        if "previous" in state:
            new_state["previous"] = weights
        return tf.concat([h_dec, context], -1), weights, new_state

    def _project(self, out, decoder):
        """(frames [..., r*n_mels], stop logits [...]) of `decoder`'s outputs [..., H + D]."""
        frames = decoder.frame_projection(out)
        if decoder.reduction < decoder.max_reduction:
            frames = frames[..., :decoder.reduction * self.n_mels]
        return frames, tf.squeeze(decoder.stop_projection(out), -1)

    def _dropped(self, h, lstm_state, training):
        """An LSTM cell's output and state with decoder_dropout on the output (the state's h)."""
        if not (training and self.decoder_dropout):
            return h, lstm_state
        h = keras.random.dropout(h, self.decoder_dropout, seed=self.dropout_seed)
        return h, [h, lstm_state[1]]

    def _decode(self, memory, mask, go_frame, steps, targets=None, sampling=0.0, stop_threshold=None,
                end_margin=None, window=None, log_prior=None, training=False, decoder=None):
        """The autoregressive loop as a tf.while_loop. With targets it is teacher-forced
        (with probability `sampling` an example is fed its own prediction); without,
        it runs free for at most `steps` steps and, with stop_threshold, ends when
        every example's stop probability has crossed it; with end_margin, an example also
        ends `end_margin` steps after its attention reached the last character having
        peaked on at least END_COVERAGE of the characters on the way (a fallback for a stop
        token that does not fire); with window, attention may only look from one character
        behind its previous peak to `window` characters ahead of it (monotonic decoding:
        it can neither jump back nor skip ahead); log_prior [B, steps, N] is added to the
        attention energies of each step; decoder: the CoarseDecoder instead of the main
        one. Returns (frames, stop logits, alignments, steps [B], ended_by [B]: ENDED_BY
        index of the rule that ended each example)."""
        decoder = decoder or self
        batch = tf.shape(memory)[0]
        keys = decoder.attention.keys(memory)
        r, n = decoder.reduction, self.n_mels
        go = tf.broadcast_to(tf.cast(go_frame, memory.dtype), [batch, n])
        if targets is not None:
            # The input of step t is the last frame of the group emitted at step t - 1.
            teacher = tf.transpose(tf.reshape(targets, [batch, -1, r, n])[:, :, -1, :], [1, 0, 2])
        # Teacher-forced, every step's input is known before the loop: the prenet runs on all
        # of them at once.
        hoisted = targets is not None and not sampling
        if hoisted:
            inputs = decoder.prenet(tf.concat([go[None], tf.cast(teacher[:-1], memory.dtype)], 0))
        # Fixed-size arrays (XLA needs a static size): steps not run stay zero.
        arrays = [tf.TensorArray(tf.float32, size=steps, element_shape=shape)
                  for shape in ([None, r * n], [None], [None, None])]
        stopped_at = tf.fill([batch], steps)
        ended_by = tf.zeros([batch], tf.int32)
        end_at = tf.fill([batch], steps)  # first step at the last character with the text covered
        chars = tf.reduce_sum(tf.cast(mask, tf.int32), -1)
        positions = tf.range(tf.shape(mask)[1])[None, :]
        visited = tf.zeros(tf.shape(mask), tf.bool)

        def body(t, frame, state, stopped_at, ended_by, end_at, visited, peak, frames_ta, stop_ta, align_ta):
            allowed = mask
            if window is not None:
                allowed = mask & (positions >= peak[:, None] - 1) & (positions <= peak[:, None] + window)
            prior = None if log_prior is None else tf.gather(log_prior, t, axis=1)
            x = inputs[t] if hoisted else decoder.prenet(frame)
            out, weights, state = self._step(x, state, keys, memory, allowed, training, prior, decoder)
            peak = tf.argmax(weights, -1, output_type=tf.int32)
            frames, stop = self._project(out, decoder)
            frames_ta = frames_ta.write(t, tf.cast(frames, tf.float32))
            stop_ta = stop_ta.write(t, tf.cast(stop, tf.float32))
            align_ta = align_ta.write(t, weights)
            predicted = frames[:, -n:]
            nxt = predicted
            if targets is not None:
                nxt = teacher[t]
                if sampling > 0:
                    own = keras.random.uniform([batch], seed=self.sampling_seed) < sampling
                    nxt = tf.where(own[:, None], tf.stop_gradient(predicted), nxt)
            if stop_threshold is not None:
                newly = (tf.sigmoid(tf.cast(stop, tf.float32)) > stop_threshold) & (stopped_at == steps)
                stopped_at = tf.where(newly, t + 1, stopped_at)
                ended_by = tf.where(newly, ENDED_BY.index("stop token"), ended_by)
            if end_margin is not None:
                visited = visited | (positions == peak[:, None])
                covered = tf.reduce_sum(tf.cast(visited & mask, tf.float32), -1) >= END_COVERAGE * tf.cast(chars,
                                                                                                          tf.float32)
                end_at = tf.where((peak >= chars - 1) & covered & (end_at == steps), t, end_at)
                newly = (t >= end_at + end_margin) & (stopped_at == steps)
                stopped_at = tf.where(newly, t + 1, stopped_at)
                ended_by = tf.where(newly, ENDED_BY.index("end of text"), ended_by)
            return t + 1, nxt, state, stopped_at, ended_by, end_at, visited, peak, frames_ta, stop_ta, align_ta

        def cond(t, frame, state, stopped_at, *_):
            return (t < steps) & tf.reduce_any(stopped_at == steps)

        initial = (tf.constant(0), go, self._initial_state(memory, decoder), stopped_at, ended_by, end_at, visited,
                   tf.zeros([batch], tf.int32), *arrays)
        _, _, _, stopped_at, ended_by, _, _, _, frames_ta, stop_ta, align_ta = tf.while_loop(
            cond, body, initial, maximum_iterations=steps)
        frames = tf.reshape(tf.transpose(frames_ta.stack(), [1, 0, 2]), [batch, -1, n])
        stop = tf.transpose(stop_ta.stack(), [1, 0])
        alignments = tf.transpose(align_ta.stack(), [1, 0, 2])
        return frames, stop, alignments, stopped_at, ended_by

    # -------------------------------------------------------------- post-nets

    def _postnets(self, mel, training):
        out = {"mel": mel, "mel_post": apply_postnet(self.postnet, mel, training=training)}
        if self.linear_cbhg is not None:
            out["linear"] = self.linear_projection(self.linear_cbhg(out["mel_post"], training=training))
        return out

    # -------------------------------------------------------------- entry points

    def call(self, inputs, training=False):
        """Teacher-forced outputs for inputs {text_ids, text_length, go_frame, targets}:
        {mel, mel_post, [linear], stop_logits, alignments}."""
        memory, mask = self.encode(inputs["text_ids"], inputs["text_length"], training)
        targets = inputs["targets"]
        steps = tf.shape(targets)[1] // self.reduction
        log_prior = None
        if self.attention_prior:
            decoder_steps = (inputs["frames"] + self.reduction - 1) // self.reduction
            log_prior = diagonal_prior(decoder_steps, inputs["text_length"], steps, tf.shape(mask)[1])
        mel, stop, alignments, _, _ = self._decode(memory, mask, inputs["go_frame"], steps, targets,
                                                   self.scheduled_sampling if training else 0.0,
                                                   log_prior=log_prior, training=training)
        out = self._postnets(mel, training)
        out.update(stop_logits=stop, alignments=alignments)
        if self.coarse is not None:  # its targets padded with the go frame (silence) to its r
            r, frames = self.coarse.reduction, tf.shape(targets)[1]
            padding = (frames + r - 1) // r * r - frames
            go = tf.broadcast_to(tf.cast(inputs["go_frame"], targets.dtype), [tf.shape(targets)[0], padding,
                                                                               self.n_mels])
            coarse, _, coarse_alignments, _, _ = self._decode(
                memory, mask, inputs["go_frame"], (frames + padding) // r, tf.concat([targets, go], 1),
                training=training, decoder=self.coarse)
            out.update(coarse_mel=coarse[:, :frames], coarse_alignments=coarse_alignments)
        return out

    def infer(self, text_ids, text_length, go_frame, max_steps, stop_threshold: float = 0.5,
              end_margin: int | None = None, window: int | None = None):
        """Free-running decoding from the go frame: outputs as `call`, plus "steps" [B]
        (decoder steps made) and "ended_by" [B] (index into ENDED_BY: the max-steps bound,
        the stop token or, with end_margin, the end-of-text fallback)."""
        memory, mask = self.encode(text_ids, text_length)
        mel, stop, alignments, stopped_at, ended_by = self._decode(
            memory, mask, go_frame, max_steps, stop_threshold=stop_threshold, end_margin=end_margin, window=window)
        out = self._postnets(mel, False)
        out.update(stop_logits=stop, alignments=alignments, steps=stopped_at, ended_by=ended_by)
        return out
