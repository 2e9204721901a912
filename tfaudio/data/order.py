"""The order in which training examples are visited, resumable at any example.

Each epoch is a stateless shuffle of example indices seeded by (seed, epoch), so
the stream is a pure function of the seed: a resumed run skips indices (cheap,
before any decoding) to the exact position where it stopped. Each element also
carries a per-example random seed for crops and augmentation.
"""

from __future__ import annotations

import tensorflow as tf


def index_stream(num_examples: int, seed: int, start: int = 0, shuffle: bool = True,
                 input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """Infinite dataset of {"index", "epoch", "seed"} starting at global example `start`.

    With several input pipelines (multi-worker), each takes every k-th element of
    the same global stream.
    """
    if num_examples <= 0:
        raise ValueError("index_stream: the dataset has no examples")
    n = tf.constant(num_examples, tf.int64)
    seed = tf.constant(seed, tf.int64)

    def epoch_elements(epoch):
        idx = tf.range(n, dtype=tf.int64)
        if shuffle:
            idx = tf.random.experimental.stateless_shuffle(idx, seed=tf.stack([seed, epoch]))
        position = epoch * n + tf.range(n, dtype=tf.int64)
        return tf.data.Dataset.from_tensor_slices({
            "index": idx, "epoch": tf.fill([n], epoch),
            "seed": tf.stack([tf.fill([n], seed), position], axis=1)})

    ds = tf.data.Dataset.counter(start // num_examples).flat_map(epoch_elements)
    ds = ds.skip(start % num_examples)
    if input_context is not None and input_context.num_input_pipelines > 1:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return ds
