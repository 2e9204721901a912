"""Fixed-length audio: padding methods and random crops along the time axis (axis 0).

Pad methods, for a signal x0 x1 ... x(n-1):
  zeros:   x, then zeros.
  wrap:    x repeated: x0 .. x(n-1) x0 .. x(n-1) ...
  edge:    x, then its last sample repeated: x0 .. x(n-1) x(n-1) x(n-1) ... (what the
           classifier log's later notebooks called "wrap")
  reflect: reflection about the edge samples, which are not repeated
           (numpy "reflect"): x0 x1 x2 x1 x0 x1 x2 ...
  mirror:  x followed by its time reversal, edges repeated (numpy
           "symmetric"; e.g. 10 s -> 20 s with the copy reversed):
           x0 x1 x2 x2 x1 x0 x0 x1 ...
"""

from __future__ import annotations

import tensorflow as tf

PAD_METHODS = ("zeros", "wrap", "edge", "reflect", "mirror")


def pad_to(audio: tf.Tensor, length: int, method: str = "zeros") -> tf.Tensor:
    """Extends `audio` [time, ...] to at least `length` along time; longer input is unchanged."""
    if method not in PAD_METHODS:
        raise ValueError(f"pad method {method!r}: choose one of {', '.join(PAD_METHODS)}")
    n = tf.shape(audio)[0]
    target = tf.maximum(n, length)
    if method == "zeros":
        rank = len(audio.shape)
        return tf.pad(audio, [[0, target - n]] + [[0, 0]] * (rank - 1))
    i = tf.range(target)
    if method == "wrap":
        idx = i % n
    elif method == "edge":
        idx = tf.minimum(i, n - 1)
    elif method == "mirror":
        j = i % (2 * n)
        idx = tf.where(j < n, j, 2 * n - 1 - j)
    else:  # reflect
        period = tf.maximum(2 * n - 2, 1)
        j = i % period
        idx = tf.where(j < n, j, 2 * n - 2 - j)
    return tf.gather(audio, idx)


def random_crop(audio: tf.Tensor, length: int, seed: tf.Tensor, pad_method: str = "zeros") -> tf.Tensor:
    """A `length`-sample excerpt at a uniformly random offset (stateless `seed` [2]),
    padding short input with `pad_method` first."""
    audio = pad_to(audio, length, pad_method)
    max_offset = tf.shape(audio)[0] - length
    offset = tf.random.stateless_uniform([], seed, 0, max_offset + 1, dtype=tf.int32)
    return audio[offset:offset + length]
