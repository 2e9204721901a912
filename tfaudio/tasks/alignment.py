"""Attention alignments of sequence-to-sequence models: the guided-attention prior, the
forward-sum alignment loss and the alignment metrics (definitions in tfaudio.tasks.tts's
docstring)."""

from __future__ import annotations

import tensorflow as tf


def guided_attention_weights(dec_len, enc_len, dec_steps, enc_steps, sigma: float):
    """W[b, t, n] = 1 - exp(-(n/N - t/T)^2 / (2 sigma^2)) (Tachibana et al.), zero outside
    each example's valid region."""
    t = tf.cast(tf.range(dec_steps), tf.float32)[None, :, None] / tf.cast(dec_len, tf.float32)[:, None, None]
    n = tf.cast(tf.range(enc_steps), tf.float32)[None, None, :] / tf.cast(enc_len, tf.float32)[:, None, None]
    w = 1.0 - tf.exp(-tf.square(n - t) / (2.0 * sigma ** 2))
    mask = (tf.sequence_mask(dec_len, dec_steps)[:, :, None] & tf.sequence_mask(enc_len, enc_steps)[:, None, :])
    return w * tf.cast(mask, tf.float32)


def alignment_metrics(alignments, dec_len, enc_len, band: float = 0.2, max_jump: int = 3) -> dict:
    """Per-example focus_rate, diagonal_mass, monotone and coverage of alignments [B, T, N]."""
    alignments = tf.cast(alignments, tf.float32)
    steps, chars = tf.shape(alignments)[1], tf.shape(alignments)[2]
    dec_mask = tf.sequence_mask(dec_len, steps)
    dec_f = tf.cast(dec_mask, tf.float32)
    count = tf.maximum(tf.reduce_sum(dec_f, 1), 1.0)
    focus = tf.reduce_sum(tf.reduce_max(alignments, -1) * dec_f, 1) / count
    t = (tf.cast(tf.range(steps), tf.float32)[None, :, None] + 0.5) / tf.cast(dec_len, tf.float32)[:, None, None]
    n = (tf.cast(tf.range(chars), tf.float32)[None, None, :] + 0.5) / tf.cast(enc_len, tf.float32)[:, None, None]
    in_band = tf.cast(tf.abs(n - t) <= band, tf.float32)
    diagonal = tf.reduce_sum(tf.reduce_sum(alignments * in_band, -1) * dec_f, 1) / count
    argmax = tf.argmax(alignments, -1, output_type=tf.int32)
    moves = argmax[:, 1:] - argmax[:, :-1]
    move_mask = tf.cast(dec_mask[:, 1:], tf.float32)
    good = tf.cast((moves >= 0) & (moves <= max_jump), tf.float32)
    monotone = tf.reduce_sum(good * move_mask, 1) / tf.maximum(tf.reduce_sum(move_mask, 1), 1.0)
    last = tf.gather(argmax, tf.maximum(dec_len - 1, 0), batch_dims=1)
    coverage = tf.cast(last + 1, tf.float32) / tf.cast(enc_len, tf.float32)
    return {"focus_rate": focus, "diagonal_mass": diagonal, "monotone": monotone, "coverage": coverage}


def sparse_labels(ids, lengths):
    """The labels of padded ids [B, N] with `lengths`, as a SparseTensor (padding dropped)."""
    return tf.sparse.from_dense(tf.where(tf.sequence_mask(lengths, tf.shape(ids)[1]), ids, 0))


def ctc_loss(ids, lengths, logits, frames, dense: bool = False):
    """Per-example CTC loss [B] of batch-major logits [B, T, classes] (blank 0) against
    padded label ids [B, N] with `lengths`. Sparse labels by default (on CPU, an order of
    magnitude faster); dense ones for an XLA-compiled step (the sparse op has no XLA kernel)."""
    ids, lengths = tf.cast(ids, tf.int32), tf.cast(lengths, tf.int32)
    if dense:
        return tf.nn.ctc_loss(ids, logits, lengths, frames, logits_time_major=False, blank_index=0)
    return tf.nn.ctc_loss(sparse_labels(ids, lengths), logits, None, frames, logits_time_major=False, blank_index=0)


def forward_sum_loss(log_attention, frames, symbols, blank_logit: float = -1.0, dense: bool = False):
    """-log of the summed probability of every monotonic alignment that visits each symbol
    in order, per frame [B] (Badlani et al. 2021, "One TTS alignment to rule them all"):
    CTC over log_attention [B, T, N] (frame t's log-probabilities over the text) with the
    symbol positions 1..N as labels and a constant blank (`dense`: see ctc_loss)."""
    batch, steps = tf.shape(log_attention)[0], tf.shape(log_attention)[1]
    logits = tf.concat([tf.fill([batch, steps, 1], blank_logit), log_attention], axis=-1)
    width = tf.shape(log_attention)[2]
    positions = tf.broadcast_to(tf.range(1, width + 1)[None, :], [batch, width])
    return ctc_loss(positions, symbols, logits, frames, dense) / tf.cast(frames, tf.float32)


def decoder_consistency(fine, coarse, steps):
    """Double decoder consistency's alignment term [B]: the L1 distance between the main
    decoder's attention weights fine [B, T, N] and the coarse decoder's coarse [B, Tc, N]
    stretched to T steps (each step takes the coarse step at the same share of the way, as
    Coqui's nearest interpolation does), summed over symbols and averaged over each
    example's `steps` valid decoder steps."""
    length, coarse_length = tf.shape(fine)[1], tf.shape(coarse)[1]
    stretched = tf.gather(tf.cast(coarse, tf.float32), tf.range(length) * coarse_length // length, axis=1)
    distance = tf.reduce_sum(tf.abs(tf.cast(fine, tf.float32) - stretched), -1)
    valid = tf.cast(tf.sequence_mask(steps, length), tf.float32)
    return tf.reduce_sum(distance * valid, 1) / tf.cast(tf.maximum(steps, 1), tf.float32)
