"""A whole-sequence LSTM layer for the CPU: the input projection of every frame is one
matrix product before the time loop, and a bidirectional layer runs both directions in
the same loop (a batched product per step), so the loop holds only the recurrent
product. Keras's LSTM projects the input inside its loop, one small product per frame
and direction; at Open-Unmix's reference shapes this layer trains its LSTM stack about
twice as fast (benchmarks/openunmix_speed.py).

Gates in the order input, forget, cell, output. Each direction has an input bias and a
recurrent bias, as the reference Open-Unmix (PyTorch) has, so parameter counts match it.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class SequenceLSTM(keras.layers.Layer):
    """[B, T, features] -> [B, T, units x directions] (forward then backward halves).

    Args:
      units: hidden units per direction.
      bidirectional: also run the sequence backwards and concatenate.
    `call(x, initial_state=(h, c))` continues from states [directions, B, units] and
    `return_state=True` also returns the final (h, c), for streaming. `training` only
    chooses the faster form of the recurrent product for the case.
    """

    def __init__(self, units: int, bidirectional: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.units, self.bidirectional = units, bidirectional
        self.directions = 2 if bidirectional else 1

    def build(self, input_shape):
        d, u, features = self.directions, self.units, int(input_shape[-1])
        glorot = keras.initializers.GlorotUniform()
        orthogonal = keras.initializers.Orthogonal()
        self.kernel = self.add_weight(
            shape=(d, features, 4 * u), name="kernel",
            initializer=lambda shape, dtype=None: tf.stack([glorot((features, 4 * u), dtype) for _ in range(d)]))
        self.recurrent_kernel = self.add_weight(
            shape=(d, u, 4 * u), name="recurrent_kernel",
            initializer=lambda shape, dtype=None: tf.stack([orthogonal((u, 4 * u), dtype) for _ in range(d)]))
        forget_open = [0.0] * u + [1.0] * u + [0.0] * (2 * u)  # the forget gate starts open
        self.bias = self.add_weight(shape=(d, 4 * u), name="bias",
                                    initializer=lambda shape, dtype=None: tf.constant([forget_open] * d, dtype))
        self.recurrent_bias = self.add_weight(shape=(d, 4 * u), name="recurrent_bias", initializer="zeros")

    def zero_state(self, batch: int) -> tuple:
        zeros = tf.zeros([self.directions, batch, self.units], self.compute_dtype)
        return zeros, zeros

    def call(self, x, initial_state=None, return_state=False, training=False):
        dtype = x.dtype
        kernel, recurrent = tf.cast(self.kernel, dtype), tf.cast(self.recurrent_kernel, dtype)
        bias = tf.cast(self.bias + self.recurrent_bias, dtype)
        xs = tf.stack([x, tf.reverse(x, [1])]) if self.bidirectional else x[None]  # [D, B, T, F]
        projected = tf.einsum("dbtf,dfg->tdbg", xs, kernel) + bias[:, None]  # [T, D, B, 4U]
        if initial_state is None:
            initial_state = self.zero_state(tf.shape(x)[0])
        h0, c0 = (tf.cast(s, dtype) for s in initial_state)

        def recurrent_product(h):
            """Training: one batched product (its gradient is the fastest); inference: one
            product per direction (about twice as fast for a single example)."""
            if training:
                return tf.matmul(h, recurrent)
            return tf.stack([tf.matmul(h[d], recurrent[d]) for d in range(self.directions)])

        def step(carry, z):
            h, c = carry
            i, f, g, o = tf.split(z + recurrent_product(h), 4, axis=-1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            return tf.sigmoid(o) * tf.tanh(c), c

        hs, cs = tf.scan(step, projected, initializer=(h0, c0))  # [T, D, B, U]
        out = tf.transpose(hs, [1, 2, 0, 3])  # [D, B, T, U]
        if self.bidirectional:
            out = tf.concat([out[0], tf.reverse(out[1], [1])], -1)
        else:
            out = out[0]
        return (out, (hs[-1], cs[-1])) if return_state else out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units * self.directions,)
