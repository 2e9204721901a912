"""The DataSource contract: what the trainer asks of a corpus.

SeparationData and AudioData implement it; a new family's data does too, and the
trainer needs nothing else. Batches are dicts of float32 and int32 tensors only (the
device contract: they enter a step that XLA compiles on TPUs); transcripts, paths and
ids stay in the corpus on the host. The task that reads a batch documents its keys (e.g.
{"audio" [B, samples] float32, "length" [B] int32, "text_ids" [B, N] int32,
"text_length" [B] int32} for TTS, {"mixture", "target"} [B, samples] float32 for
separation, "label" [B] int32 for classification).
"""

from __future__ import annotations

from typing import Protocol

import tensorflow as tf


class DataSource(Protocol):
    def train(self, batch_size: int, seed: int, start: int = 0,
              input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
        """An infinite stream of batches of `batch_size` examples (drop_remainder), a pure
        function of `seed` that begins at global example `start` (a resumed run passes
        step x effective batch; see tfaudio.data.order). With an input_context, this
        pipeline's share of the global stream."""

    def validation(self, batch_size: int) -> tf.data.Dataset | None:
        """The finite validation split in batches (the last may be smaller), or None."""

    def train_subset(self, batch_size: int) -> tf.data.Dataset | None:
        """A held subset of the training files, evaluated like the validation split as
        "train_subset" (AudioData.validate_train_pct), or None."""
