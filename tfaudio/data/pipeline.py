"""What every tf.data pipeline over a corpus shares: decode failures skipped, counted and
reported with their path (the run stops loudly past `max_bad_fraction` of the corpus),
completed evaluation batches, deterministic subsets and the hash-based validation split.
The pipelines: tfaudio.data.separation_data (mixtures and stems) and
tfaudio.data.audio_data (single audio with text or label)."""

from __future__ import annotations

import re
import threading
import zlib

import tensorflow as tf
from absl import logging

from tfaudio.data import readers

AUTOTUNE = tf.data.AUTOTUNE


class DecodeFailures:
    """Thread-safe count of files that failed to decode during a run."""

    def __init__(self, corpus_size: int, max_bad_fraction: float):
        self.paths: set[str] = set()
        self.limit = max(1, int(corpus_size * max_bad_fraction))
        self._lock = threading.Lock()

    def add(self, path: str, reason: str):
        with self._lock:
            if path not in self.paths:
                self.paths.add(path)
                logging.warning("skipping unreadable file (%d so far): %s", len(self.paths), reason)
            if len(self.paths) > self.limit:
                raise readers.CorpusError(f"{len(self.paths)} files failed to decode (limit {self.limit});"
                                          f" last: {reason}")


def _decoded(element) -> tf.Tensor:
    return element["ok"]


def _without_flag(element) -> dict:
    return {k: v for k, v in element.items() if k != "ok"}


def drop_failed(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Removes examples whose file failed to decode (already counted and reported)."""
    return ds.filter(_decoded).map(_without_flag)


def full_batch(batch: dict, size: int) -> dict:
    """An evaluation batch of exactly `size` rows: a smaller last one is completed by
    repeating its first row, and "valid" [size] (float32, 1 on real rows) tells the
    trainer which rows its metrics count."""
    real = tf.shape(next(iter(batch.values())))[0]
    out = {k: tf.concat([v, tf.repeat(v[:1], size - real, axis=0)], 0) for k, v in batch.items()}
    out["valid"] = tf.cast(tf.range(size) < real, tf.float32)
    for v in out.values():
        v.set_shape([size] + v.shape[1:])
    return out


def select(corpus: readers.Corpus, data_percentage: float) -> list:
    """A deterministic `data_percentage` subset (by hash of the example id)."""
    if data_percentage == 1:
        return corpus.examples
    return [e for e in corpus.examples if hash_fraction(e["id"]) < data_percentage]


def hash_fraction(key: str) -> float:
    """A number in [0, 1) fixed by `key` (subsets and splits that never change between runs)."""
    return (zlib.crc32(key.encode("utf-8")) % 10000) / 10000.0


def _split_key(example: dict) -> str:
    """What decides an example's split: its transcript with case, spacing and punctuation
    folded (so prompts that share a text land on one side), else its id."""
    text = " ".join(re.findall(r"\w+", example.get("text", "").lower()))
    return "val:" + (text or example["id"])


def split_examples(examples: list, val_fraction: float):
    """Train/validation split by a hash of each transcript (of each id when there is no
    text): stable across runs, and no text is both trained on and validated."""
    val = [e for e in examples if hash_fraction(_split_key(e)) < val_fraction]
    train = [e for e in examples if hash_fraction(_split_key(e)) >= val_fraction]
    return train, val
