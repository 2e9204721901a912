"""Mixture/target waveform pairs from a MUSDB18-HQ-like corpus as tf.data pipelines:
decoded with soundfile, random excerpts mixed at random gains for training, whole middle
excerpts for validation. Training streams follow `order.index_stream` (seeded,
resumable at any example)."""

from __future__ import annotations

import gin
import numpy as np
import tensorflow as tf

from tfaudio.audio.geometry import audio_geometry
from tfaudio.audio.io import AudioReadError, read_audio
from tfaudio.data import readers
from tfaudio.data.order import index_stream
from tfaudio.data.pipeline import AUTOTUNE, DecodeFailures, drop_failed, select
from tfaudio.limits import POSITIVE, POSITIVE_INT, PROPORTION, UNIT, Choice, Rule, limits


def _gain_range(value) -> bool:
    return len(value) == 2 and 0 <= value[0] <= value[1]



@gin.configurable
@limits(segment_seconds=POSITIVE, samples_per_track=POSITIVE_INT, val_seconds=POSITIVE,
        data_percentage=PROPORTION, max_bad_fraction=UNIT, channels=Choice(1, 2),
        augment_gain=Rule(_gain_range, "(low, high) with 0 <= low <= high", [(1.5, 0.5), (-1.0, 1.0)], none=True))
class SeparationData:
    """Mixture/target waveform pairs from a MUSDB18-HQ-like corpus.

    Args:
      data_dir: corpus root with <train_split>/ and <val_split>/ (the `data_dir` macro).
      target: the stem to estimate; others are only in the mixture.
      segment_seconds: training excerpt length (Open-Unmix's `seq_dur`).
      samples_per_track: random excerpts per track per epoch.
      val_seconds: one excerpt from the middle of each validation track.
      data_percentage: fraction of training tracks used.
      max_bad_fraction: fraction of undecodable files tolerated before failing.
      channels: 1 gives [batch, samples] (channels averaged); 2 gives stereo
        [batch, samples, 2] (a mono file duplicated).
      augment_gain: (low, high): training mixes the stems, each at a uniform random gain
        in that range (Open-Unmix's gain augmentation); None reads mixture.wav.
      channel_swap: training swaps each stereo stem's channels with probability 1/2.
      remix: training takes each other stem from a random track at a random time
        (Open-Unmix's random track mix); the target comes from the indexed track.
    """

    def __init__(self, data_dir: str = gin.REQUIRED, target: str = "speech", others=("music",),
                 segment_seconds: float = 1.0, samples_per_track: int = 8, val_seconds: float = 2.0,
                 train_split: str = "train", val_split: str = "valid", data_percentage: float = 1.0,
                 max_bad_fraction: float = 0.1, channels: int = 1, augment_gain: tuple | None = None,
                 channel_swap: bool = False, remix: bool = False):
        self.channels, self.others = channels, tuple(others)
        self.augment_gain, self.channel_swap, self.remix = augment_gain, channel_swap, remix
        self.geometry = audio_geometry()
        self.target, self.samples_per_track = target, samples_per_track
        self.segment_seconds, self.val_seconds = segment_seconds, val_seconds
        stems = (target,) + tuple(others)
        train = readers.read_musdb(data_dir, train_split, stems)
        train.examples = select(train, data_percentage)
        self.train_corpus = readers.probe_durations(train, ("path", target)).check(max_bad_fraction)
        val = readers.read_musdb(data_dir, val_split, stems)
        self.val_corpus = readers.probe_durations(val, ("path", target)).check(max_bad_fraction)
        self.failures = DecodeFailures(len(self.train_corpus.examples), max_bad_fraction)
        self.segment_samples = self.geometry.samples(segment_seconds)

    def _segments(self, examples, seconds):
        """A map function (example index, start time) -> {"mixture", "target", "ok"}."""
        rate = self.geometry.sample_rate
        n = self.geometry.samples(seconds)

        shape = [n] if self.channels == 1 else [n, self.channels]

        def load(i, start):
            i = int(i)
            try:
                mix, tgt = (read_audio(examples[i][key], rate, self.channels, start=float(start), seconds=seconds)
                            for key in ("path", self.target))
                return mix.reshape(shape), tgt.reshape(shape), True
            except AudioReadError as exc:  # a long run never dies on one file
                self.failures.add(examples[i]["path"], str(exc))
                return np.zeros(shape, np.float32), np.zeros(shape, np.float32), False

        def fn(i, start):
            mix, tgt, ok = tf.numpy_function(load, [i, start], [tf.float32, tf.float32, tf.bool],
                                             stateful=False)
            mix.set_shape(shape)
            tgt.set_shape(shape)
            return {"mixture": mix, "target": tgt, "ok": ok}
        return fn

    def _mixed(self, examples):
        """A map function (element) -> {"mixture", "target", "ok"} that mixes the stems of
        one random excerpt with the augmentations; its randomness comes from the element's
        seed, so a resumed stream repeats it."""
        rate, seconds = self.geometry.sample_rate, self.segment_seconds
        shape = [self.segment_samples] if self.channels == 1 else [self.segment_samples, self.channels]

        def load(index, seed):
            rng = np.random.default_rng([int(s) % 2 ** 32 for s in seed])
            track = examples[int(index) // self.samples_per_track]
            start = rng.uniform(0.0, max(track["duration"] - seconds, 0.0))
            sources = []
            try:
                for stem in (self.target,) + self.others:
                    ex, at = track, start
                    if self.remix and stem != self.target:
                        ex = examples[rng.integers(len(examples))]
                        at = rng.uniform(0.0, max(ex["duration"] - seconds, 0.0))
                    audio = read_audio(ex[stem], rate, self.channels, start=at, seconds=seconds)
                    if self.augment_gain is not None:
                        audio = audio * np.float32(rng.uniform(*self.augment_gain))
                    if self.channel_swap and self.channels == 2 and rng.random() < 0.5:
                        audio = audio[:, ::-1]
                    sources.append(audio.reshape(shape))
            except AudioReadError as exc:
                self.failures.add(track["path"], str(exc))
                return np.zeros(shape, np.float32), np.zeros(shape, np.float32), False
            return np.sum(sources, axis=0).astype(np.float32), sources[0], True

        def fn(e):
            mix, tgt, ok = tf.numpy_function(load, [e["index"], e["seed"]], [tf.float32, tf.float32, tf.bool],
                                             stateful=False)
            mix.set_shape(shape)
            tgt.set_shape(shape)
            return {"mixture": mix, "target": tgt, "ok": ok}
        return fn

    def train(self, batch_size, seed, start=0, input_context=None) -> tf.data.Dataset:
        examples = self.train_corpus.examples
        ds = index_stream(len(examples) * self.samples_per_track, seed, start, input_context=input_context)
        if self.augment_gain is not None or self.channel_swap or self.remix:
            ds = ds.map(self._mixed(examples), num_parallel_calls=AUTOTUNE, deterministic=True)
            return drop_failed(ds).batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)
        durations = tf.constant([e["duration"] for e in examples], tf.float32)
        load = self._segments(examples, self.segment_seconds)
        per_track = self.samples_per_track

        def element(e):
            track = e["index"] // per_track
            room = tf.maximum(tf.gather(durations, track) - self.segment_seconds, 0.0)
            offset = tf.random.stateless_uniform([], tf.cast(e["seed"], tf.int32), 0.0, 1.0) * room
            return load(track, offset)

        ds = ds.map(element, num_parallel_calls=AUTOTUNE, deterministic=True)
        return drop_failed(ds).batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)

    def validation(self, batch_size) -> tf.data.Dataset:
        examples = self.val_corpus.examples
        starts = [max(0.0, (e["duration"] - self.val_seconds) / 2) for e in examples]
        load = self._segments(examples, self.val_seconds)
        ds = tf.data.Dataset.from_tensor_slices((tf.range(len(examples)), tf.constant(starts, tf.float32)))
        ds = drop_failed(ds.map(load, num_parallel_calls=AUTOTUNE))
        return ds.batch(batch_size).prefetch(AUTOTUNE)

    def train_subset(self, batch_size) -> None:
        return None
