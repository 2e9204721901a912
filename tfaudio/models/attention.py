"""The attention mechanisms of the Tacotron decoder: location-sensitive additive attention
(Chorowski et al.; NVIDIA's Tacotron 2 features) and dynamic convolution attention
(Battenberg et al. 2020), and the beta-binomial alignment prior (Badlani et al. 2021)."""

from __future__ import annotations

import tensorflow as tf
from keras import layers

from tfaudio.models.building import BuiltByCall


def _per_position(dense, x):
    """`dense` applied to x [B, N, C] as one matrix product over B x N rows: Keras' 3-D
    tensordot has a transpose whose gradient XLA cannot compile inside the decoder loop."""
    shape = tf.shape(x)
    y = dense(tf.reshape(x, [-1, x.shape[-1]]))
    return tf.reshape(y, tf.concat([shape[:2], tf.shape(y)[-1:]], 0))


def _attend(energies, mask, memory, log_prior=None):
    """(context [B, D], weights [B, N]): the softmax of energies [B, N] (plus log_prior)
    over the unmasked symbols, and the memory [B, N, D] they weight."""
    if log_prior is not None:  # in the compute dtype (float16 under mixed precision); energies are float32
        energies += tf.cast(log_prior, energies.dtype)
    weights = tf.nn.softmax(tf.where(mask, energies, -1e9), axis=-1)
    return tf.einsum("bn,bnd->bd", tf.cast(weights, memory.dtype), memory), weights


def _log_beta_binomial(k, n, alpha, beta):
    """log P(k) of BetaBinomial(n, alpha, beta), elementwise on float tensors."""
    def lbeta(x, y):  # log B(x, y); tf.math.lbeta would need x and y broadcast and stacked
        return tf.math.lgamma(x) + tf.math.lgamma(y) - tf.math.lgamma(x + y)
    return (tf.math.lgamma(n + 1.0) - tf.math.lgamma(k + 1.0) - tf.math.lgamma(n - k + 1.0)
            + lbeta(k + alpha, n - k + beta) - lbeta(alpha, beta))


def diagonal_prior(frames, symbols, steps, width):
    """log P(symbol n | frame t) [B, T, N] of the beta-binomial alignment prior (Badlani et
    al. 2021): frame t of T is expected near symbol t/T * N. Zero outside each example's
    frames and symbols."""
    t = tf.cast(tf.range(1, steps + 1), tf.float32)[None, :, None]
    n = tf.cast(tf.range(width), tf.float32)[None, None, :]
    total = tf.cast(frames, tf.float32)[:, None, None]
    count = tf.cast(symbols, tf.float32)[:, None, None] - 1.0
    # k held to the last symbol: finite where `valid` drops the value.
    log_pmf = _log_beta_binomial(tf.minimum(n, tf.maximum(count, 0.0)), count, t, total - t + 1.0)
    valid = (t <= total) & (n <= count)
    return tf.where(valid, log_pmf, 0.0)


class Attention(BuiltByCall, layers.Layer):
    """Additive attention; with `location_filters` it is location-sensitive: the
    cumulative attention weights (and, when given, the previous step's: NVIDIA's
    Tacotron 2), convolved, enter the energies (Chorowski et al.)."""

    def __init__(self, units: int = 128, location_filters: int = 32, location_kernel: int = 31, **kwargs):
        super().__init__(**kwargs)
        self.query = layers.Dense(units, use_bias=False, name="query")
        self.keys = layers.Dense(units, use_bias=False, name="keys")
        self.energy = layers.Dense(1, name="energy")
        self.location = bool(location_filters)
        if self.location:
            self.location_conv = layers.Conv1D(location_filters, location_kernel, padding="same",
                                               use_bias=False, name="location_conv")
            self.location_dense = layers.Dense(units, use_bias=False, name="location_dense")

    def call(self, query, keys, memory, cumulative, mask, log_prior=None, previous=None):
        """(context [B, D], weights [B, N]) for query [B, Q], precomputed keys [B, N, units];
        log_prior [B, N] is added to the energies (weights times the prior, renormalised);
        previous [B, N]: the last step's weights, a second location channel."""
        hidden = keys + self.query(query)[:, None, :]
        if self.location:
            where = cumulative[..., None] if previous is None else tf.stack([previous, cumulative], -1)
            hidden += _per_position(self.location_dense, self.location_conv(where))
        energies = tf.cast(tf.squeeze(_per_position(self.energy, tf.tanh(hidden)), -1), tf.float32)
        return _attend(energies, mask, memory, log_prior)


def beta_binomial_filter(length: int = 11, alpha: float = 0.1, beta: float = 0.9) -> list[float]:
    """The pmf of BetaBinomial(length - 1, alpha, beta) at 0 .. length - 1: dynamic
    convolution attention's prior that attention stays or moves a few symbols forward."""
    # Once, eagerly at construction: float64 on the host.
    k, n, a, b = (tf.constant(v, tf.float64) for v in (list(range(length)), length - 1, alpha, beta))
    return tf.exp(_log_beta_binomial(k, n, a, b)).numpy().tolist()


def _windows(weights, before: int, after: int):
    """[B, N, before + 1 + after]: each position's neighbourhood of weights [B, N], from
    `before` positions back to `after` ahead (zeros beyond the ends)."""
    n = tf.shape(weights)[1]
    padded = tf.pad(weights, [[0, 0], [before, after]])
    return tf.stack([padded[:, k:k + n] for k in range(before + after + 1)], -1)


class DynamicConvolutionAttention(BuiltByCall, layers.Layer):
    """Location-relative attention (Battenberg et al. 2020, "dynamic convolution
    attention"): no content term; energies from the previous step's weights through
    static filters and filters the query predicts, plus the log of a causal
    beta-binomial prior, so attention can only stay or move a few symbols forward."""

    def __init__(self, units: int = 128, filters: int = 8, kernel: int = 21, prior_length: int = 11, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel = filters, kernel
        self.static = layers.Dense(filters, use_bias=False, name="static_filters")  # over a window of weights
        self.filter_net = layers.Dense(units, activation="tanh", name="filter_net")
        self.dynamic = layers.Dense(filters * kernel, use_bias=False, name="dynamic_filters")
        self.static_dense = layers.Dense(units, use_bias=True, name="static_dense")
        self.dynamic_dense = layers.Dense(units, use_bias=False, name="dynamic_dense")
        self.energy = layers.Dense(1, use_bias=False, name="energy")
        self.prior = tf.constant(beta_binomial_filter(prior_length)[::-1], tf.float32)  # oldest position first

    def keys(self, memory):
        """Nothing to precompute: the energies do not read the memory."""
        return memory

    def call(self, query, keys, memory, cumulative, mask, log_prior=None, previous=None):
        """(context [B, D], weights [B, N]) from the previous step's weights `previous` [B, N]
        (the decoder starts them on the first symbol); as `Attention.call` otherwise."""
        half = self.kernel // 2
        window = _windows(previous, half, half)  # [B, N, K]
        static = _per_position(self.static, window)
        dynamic_filters = tf.reshape(self.dynamic(self.filter_net(query)), [-1, self.filters, self.kernel])
        dynamic = tf.einsum("bnk,bfk->bnf", window, tf.cast(dynamic_filters, window.dtype))
        hidden = _per_position(self.static_dense, static) + _per_position(self.dynamic_dense, dynamic)
        energies = tf.cast(tf.squeeze(_per_position(self.energy, tf.tanh(hidden)), -1), tf.float32)
        prior = tf.reduce_sum(_windows(previous, self.prior.shape[0] - 1, 0) * self.prior, -1)
        energies += tf.math.log(tf.maximum(prior, 1e-6))
        return _attend(energies, mask, memory, log_prior)
