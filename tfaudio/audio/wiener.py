"""Multichannel Wiener post-filter for spectrogram separators (the expectation-maximisation
of Nugraha, Liutkus and Vincent, 2016, as Open-Unmix applies it at inference).

Each source j is modelled, per frame t and bin f, as a zero-mean complex Gaussian with
covariance v_j(t, f) R_j(f): a power spectral density times a spatial covariance matrix
over the channels. Starting from magnitude estimates with the mixture's phase, each
iteration re-estimates v_j and R_j from the current source spectrograms and filters the
mixture with  v_j R_j (sum_k v_k R_k)^-1.  The filtered sources add up to the mixture.
"""

from __future__ import annotations

import tensorflow as tf


def wiener(magnitudes: tf.Tensor, mixture: tf.Tensor, iterations: int = 1, eps: float = 1e-10) -> tf.Tensor:
    """Source spectrograms [B, S, C, T, F] (complex) from magnitude estimates
    [B, S, C, T, F] of S sources and the mixture STFT [B, C, T, F]. With 0 iterations,
    the magnitudes with the mixture's phase."""
    mixture = tf.convert_to_tensor(mixture, tf.complex64)
    magnitude = tf.abs(mixture)
    phase = tf.math.divide_no_nan(mixture, tf.cast(magnitude, tf.complex64))
    sources = tf.cast(magnitudes, tf.complex64) * phase[:, None]
    if iterations == 0:
        return sources
    # Work at unit peak so the covariances stay in float32 range.
    scale = tf.maximum(1.0, tf.reduce_max(magnitude))
    x = tf.transpose(mixture, [0, 2, 3, 1]) / tf.cast(scale, tf.complex64)  # [B, T, F, C]
    y = tf.transpose(sources, [0, 1, 3, 4, 2]) / tf.cast(scale, tf.complex64)  # [B, S, T, F, C]
    channels = tf.shape(x)[-1]
    identity = tf.cast(eps * tf.eye(channels), tf.complex64)
    for _ in range(iterations):
        power = tf.reduce_mean(tf.abs(y) ** 2, axis=-1)  # v_j [B, S, T, F]
        outer = y[..., :, None] * tf.math.conj(y[..., None, :])  # [B, S, T, F, C, C]
        spatial = tf.reduce_sum(outer, axis=2) / tf.cast(
            eps + tf.reduce_sum(power, axis=2)[..., None, None], tf.complex64)  # R_j [B, S, F, C, C]
        covariances = tf.cast(power[..., None, None], tf.complex64) * spatial[:, :, None]  # [B, S, T, F, C, C]
        inverse = tf.linalg.inv(tf.reduce_sum(covariances, axis=1) + identity)  # [B, T, F, C, C]
        gains = covariances @ inverse[:, None]
        y = tf.squeeze(gains @ x[:, None, ..., None], -1)
    return tf.transpose(y * tf.cast(scale, tf.complex64), [0, 1, 4, 2, 3])
