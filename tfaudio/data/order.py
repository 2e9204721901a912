"""The order in which training examples are visited, resumable at any example.

Each epoch is a stateless shuffle of example indices seeded by (seed, epoch), so
the stream is a pure function of the seed: a resumed run skips indices (cheap,
before any decoding) to the exact position where it stopped. Each element also
carries a per-example random seed for crops and augmentation.

`bucketed_stream` does the same for variable-length batches: each epoch's order
groups examples of similar duration into consecutive chunks of one batch, so
batching it in order gives bucketed batches, and a resume skips to the exact batch.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def index_stream(num_examples: int, seed: int, start: int = 0,
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
        idx = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([seed, epoch]))
        position = epoch * n + tf.range(n, dtype=tf.int64)
        return tf.data.Dataset.from_tensor_slices({
            "index": idx, "epoch": tf.fill([n], epoch),
            "seed": tf.stack([tf.fill([n], seed), position], axis=1)})

    ds = tf.data.Dataset.counter(start // num_examples).flat_map(epoch_elements)
    ds = ds.skip(start % num_examples)
    if input_context is not None and input_context.num_input_pipelines > 1:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return ds


def bucketed_order(durations: np.ndarray, boundaries, chunk: int, seed: int, epoch: int) -> np.ndarray:
    """One epoch's example indices, `epoch_length(len(durations), chunk)` of them, in which
    every consecutive `chunk` falls in one duration bucket where possible: a shuffled walk
    appends each example to its bucket and emits the bucket when it holds `chunk`; what
    is left at the end is emitted by duration, so neighbours stay similar. A corpus
    smaller than one chunk is visited several times per epoch."""
    n = len(durations)
    rng = np.random.default_rng([seed, epoch])
    order = np.concatenate([rng.permutation(n) for _ in range(-(-chunk // n))])
    buckets = np.searchsorted(np.asarray(boundaries, np.float64), durations[order], side="right")
    queues: dict[int, list] = {}
    out: list = []
    for index, bucket in zip(order, buckets):
        queue = queues.setdefault(int(bucket), [])
        queue.append(int(index))
        if len(queue) == chunk:
            out.extend(queue)
            queue.clear()
    rest = sorted((i for q in queues.values() for i in q), key=lambda i: durations[i])
    out.extend(rest)
    return np.asarray(out[:epoch_length(n, chunk)], np.int64)


def epoch_length(num_examples: int, chunk: int) -> int:
    """Examples per epoch of `bucketed_order`: whole chunks, at least one."""
    return max(num_examples // chunk, 1) * chunk


def bucketed_stream(durations, boundaries, batch_size: int, seed: int, start: int = 0,
                    input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """Infinite dataset of {"index", "epoch", "seed"} like `index_stream`, ordered by
    `bucketed_order` so that batching it by `batch_size` (per input pipeline) yields
    bucketed batches; starts at global example `start`."""
    durations = np.asarray(durations, np.float64)
    pipelines = input_context.num_input_pipelines if input_context is not None else 1
    chunk = batch_size * pipelines
    if len(durations) == 0:
        raise ValueError("bucketed_stream: the dataset has no examples")
    per_epoch = epoch_length(len(durations), chunk)

    def epoch_elements(epoch):
        idx = tf.numpy_function(lambda e: bucketed_order(durations, boundaries, chunk, seed, int(e)),
                                [epoch], tf.int64, stateful=False)
        idx.set_shape([per_epoch])
        position = epoch * per_epoch + tf.range(per_epoch, dtype=tf.int64)
        return tf.data.Dataset.from_tensor_slices({
            "index": idx, "epoch": tf.fill([per_epoch], epoch),
            "seed": tf.stack([tf.fill([per_epoch], tf.constant(seed, tf.int64)), position], axis=1)})

    ds = tf.data.Dataset.counter(start // per_epoch).flat_map(epoch_elements).skip(start % per_epoch)
    if pipelines > 1:
        ds = ds.shard(pipelines, input_context.input_pipeline_id)
    return ds
