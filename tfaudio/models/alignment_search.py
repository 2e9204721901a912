"""Monotonic alignment search (Glow-TTS): the most likely monotonic frame -> symbol path.

`search` is the one the durations model trains with: a dynamic programme in TensorFlow
(a forward `tf.while_loop` over frames, then backtracking), vectorised over the batch,
with no host callback, so it runs inside an XLA-compiled step on a TPU or a GPU.
`search_numpy` is the reference it is tested and benchmarked against.

Both take log_likelihood [B, T, N] (frame t, symbol n), frames [B] and symbols [B], and
return the path [B, T, N] (float32 0/1) that maximises the summed log_likelihood over
assignments which start at symbol 0, end at each example's last symbol on its last
frame, move by 0 or 1 symbol per frame and give every symbol at least one frame. Frames
past `frames` stay unassigned. Ties keep the current symbol.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def search(log_likelihood, frames, symbols):
    """The best monotonic path [B, T, N] float32 (see the module docstring); no gradient."""
    log_likelihood = tf.stop_gradient(tf.cast(log_likelihood, tf.float32))
    batch, steps, width = tf.shape(log_likelihood)[0], tf.shape(log_likelihood)[1], tf.shape(log_likelihood)[2]
    per_frame = tf.transpose(log_likelihood, [1, 0, 2])  # [T, B, N]
    never = tf.fill([batch, 1], -np.inf)
    first = tf.concat([per_frame[0, :, :1], tf.fill([batch, width - 1], -np.inf)], 1)

    def forward(t, best, table):
        advance = tf.concat([never, best[:, :-1]], 1)
        best = per_frame[t] + tf.maximum(best, advance)
        return t + 1, best, table.write(t, best)

    table = tf.TensorArray(tf.float32, size=steps, element_shape=first.shape).write(0, first)
    _, _, table = tf.while_loop(lambda t, *_: t < steps, forward, (tf.constant(1), first, table))
    best = table.stack()  # [T, B, N]: the best score of a path ending at (t, n)

    frames, symbol = tf.cast(frames, tf.int32), tf.cast(symbols, tf.int32) - 1

    def backward(t, symbol, rows):
        active = t < frames
        rows = rows.write(t, tf.one_hot(symbol, width) * tf.cast(active, tf.float32)[:, None])
        before = best[tf.maximum(t - 1, 0)]
        previous = tf.gather(before, tf.maximum(symbol - 1, 0), batch_dims=1)
        move = active & (symbol > 0) & ((symbol == t) | (previous > tf.gather(before, symbol, batch_dims=1)))
        return t - 1, symbol - tf.cast(move, tf.int32), rows

    rows = tf.TensorArray(tf.float32, size=steps, element_shape=first.shape)
    _, _, rows = tf.while_loop(lambda t, *_: t >= 0, backward, (steps - 1, symbol, rows))
    return tf.transpose(rows.stack(), [1, 0, 2])


def search_numpy(log_likelihood: np.ndarray, frames: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """The same path computed in numpy (float64), on the host: the reference for `search`."""
    batch, steps, width = log_likelihood.shape
    best = np.full((batch, steps, width), -np.inf)
    best[:, 0, 0] = log_likelihood[:, 0, 0]
    for t in range(1, steps):
        stay = best[:, t - 1]
        advance = np.concatenate([np.full((batch, 1), -np.inf), best[:, t - 1, :-1]], axis=1)
        best[:, t] = log_likelihood[:, t] + np.maximum(stay, advance)
    path = np.zeros((batch, steps, width), np.float32)
    rows = np.arange(batch)
    symbol = symbols.astype(np.int64) - 1
    for t in range(steps - 1, -1, -1):
        active = t < frames
        path[rows[active], t, symbol[active]] = 1.0
        if t == 0:
            break
        previous = best[rows, t - 1, np.maximum(symbol - 1, 0)]
        move = active & (symbol > 0) & ((symbol == t) | (previous > best[rows, t - 1, symbol]))
        symbol = symbol - move
    return path
