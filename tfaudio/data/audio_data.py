"""Single-audio examples (speech with text, clips with a class) from any reader's layout
as tf.data pipelines: decode with soundfile, crop or pad, bucket by duration, batch,
prefetch. Training streams follow `order.index_stream` / `order.bucketed_stream`
(seeded, resumable at any example)."""

from __future__ import annotations

import gin
import numpy as np
import tensorflow as tf
from absl import logging

from tfaudio.audio import features
from tfaudio.audio.geometry import audio_geometry
from tfaudio.audio.io import AudioReadError, read_audio
from tfaudio.audio.padding import PAD_METHODS, pad_to, random_crop
from tfaudio.data import readers
from tfaudio.data.order import bucketed_stream, index_stream
from tfaudio.data.pipeline import (
    AUTOTUNE,
    DecodeFailures,
    drop_failed,
    full_batch,
    hash_fraction,
    select,
    split_examples,
)
from tfaudio.errors import ConfigError
from tfaudio.limits import NON_NEGATIVE, POSITIVE, POSITIVE_INT, PROPORTION, RATE, UNIT, Choice, Rule, limits


def _increasing(values) -> bool:
    return all(isinstance(v, (int, float)) and v > 0 for v in values) and list(values) == sorted(set(values))



@gin.configurable
@limits(layout=Choice("ljspeech", "class_folders", "manifest"), feature=Choice("wave", "mel", "log_mel"),
        fixed_seconds=POSITIVE.or_none(), pad_method=Choice(*PAD_METHODS), max_seconds=POSITIVE.or_none(),
        val_fraction=RATE, bucket_boundaries=Rule(_increasing, "increasing positive seconds", [(2.0, 1.0), (0.0,)]),
        data_percentage=PROPORTION, max_bad_fraction=UNIT, min_seconds_per_token=NON_NEGATIVE,
        crops_per_file=POSITIVE_INT, crop_mode=Choice("examples", "average"), validate_train_pct=RATE)
class AudioData:
    """Single-audio examples (speech, classes) with text or label, for any reader.

    Args:
      data_dir: corpus root (the `data_dir` macro), or a manifest file; a list of them
        (one layout) reads their union, e.g. espeak and asterisk speech together.
      layout: "ljspeech", "class_folders" or "manifest".
      feature: "wave" (samples), "mel" or "log_mel" (LogCompression of the mel).
      fixed_seconds: crop (random in training) or pad every example to this length;
        None keeps whole files in padded batches with a "length" entry (the mask).
      pad_method: zeros, wrap, reflect or mirror (see tfaudio.audio.padding).
      max_seconds: drop longer files (counted and logged).
      val_fraction: hash-based validation share when the layout has no split;
        val_split: a split folder for class_folders layouts instead.
      bucket_boundaries: bucket variable-length batches by duration (seconds).
      data_percentage: fraction of training examples used.
      cache_dir: cache decoded validation features on disk.
      text_encoder: a vocabulary (tfaudio.data.text.CharVocabulary) that turns each
        transcript into "text_ids" with "text_length"; transcripts are encoded once,
        at start-up, so the pipeline only gathers ids.
      min_seconds_per_token: with a text_encoder, a clip shorter than this per token of
        its transcript cannot say it (a truncated file, a wrong transcript) and is
        skipped and counted like an unreadable one; the default allows 50 tokens/s.
      crops_per_file: with fixed_seconds, crops taken from each file (random offsets in
        training, evenly spaced in evaluation).
      crop_mode: "examples": each crop is an example of its own, carrying its file's
        label; "average": one example holds the file's crops [crops, samples] and the
        model averages its predictions over them.
      validate_train_pct: a fraction of the training files (by hash) also evaluated as
        the "train_subset" split, to watch the gap between training and validation.
      static_shapes: pad each variable-length batch to its duration bucket's bound (the
        corpus' longest clip bounds the last bucket) and transcripts to the corpus'
        longest, and complete the last evaluation batch (see full_batch), so an
        XLA-compiled step compiles at most once per bucket; None: on under a TPUStrategy
        (a TPU compiles every new shape), off elsewhere.
    """

    def __init__(self, data_dir: str | list = gin.REQUIRED, layout: str = "ljspeech", feature: str = "wave",
                 fixed_seconds: float | None = None, pad_method: str = "zeros",
                 max_seconds: float | None = None, val_fraction: float = 0.05,
                 train_split: str | None = None, val_split: str | None = None,
                 bucket_boundaries=(), data_percentage: float = 1.0, max_bad_fraction: float = 0.1,
                 cache_dir: str | None = None, log_compression=None, text_encoder=None,
                 min_seconds_per_token: float = 0.02, crops_per_file: int = 1, crop_mode: str = "examples",
                 validate_train_pct: float = 0.0, static_shapes: bool | None = None):
        self.geometry = audio_geometry()
        self.feature, self.fixed_seconds, self.pad_method = feature, fixed_seconds, pad_method
        self.bucket_boundaries, self.cache_dir = list(bucket_boundaries), cache_dir
        self.log_compression, self.text_encoder = log_compression, text_encoder
        if crops_per_file > 1 and fixed_seconds is None:
            raise ConfigError(f"AudioData.crops_per_file={crops_per_file} must be 1, or more with "
                              "AudioData.fixed_seconds set")
        self.crops_per_file, self.crop_mode = crops_per_file, crop_mode
        if not isinstance(data_dir, str) and layout == "class_folders":
            raise ConfigError("AudioData.data_dir: a list of folders needs layout 'ljspeech' or 'manifest' "
                              "(class folders name their labels per folder)")
        if layout == "class_folders" and (train_split or val_split):
            train = readers.read_class_folders(data_dir, train_split)
            val = readers.read_class_folders(data_dir, val_split) if val_split else None
        else:
            reader = {"ljspeech": readers.read_ljspeech, "class_folders": readers.read_class_folders,
                      "manifest": readers.read_manifest}[layout]
            folders = [data_dir] if isinstance(data_dir, str) else data_dir
            train, val = readers.union([reader(d) for d in folders]), None
        self.labels = train.labels
        if layout == "class_folders" and len(self.labels) < 2:
            raise ConfigError(f"AudioData.layout = 'class_folders': {train.root} has {len(self.labels)} class "
                              f"folder(s) {self.labels}; a class layout needs two or more (is it another layout?)")
        if val is None:
            train_ex, val_ex = split_examples(train.examples, val_fraction)
            val = readers.Corpus(train.root, val_ex)
            train.examples = train_ex
        train.examples = select(train, data_percentage)
        self.train_corpus = readers.probe_durations(train, max_seconds=max_seconds)
        self.val_corpus = readers.probe_durations(val, max_seconds=max_seconds)
        if text_encoder is not None:  # once, at start-up: a bad transcript fails here
            for corpus in (self.train_corpus, self.val_corpus):
                self._encode_texts(corpus, text_encoder, min_seconds_per_token)
        self.train_corpus.check(max_bad_fraction)
        self.subset_examples = [e for e in self.train_corpus.examples
                                if hash_fraction("train_subset:" + e["id"]) < validate_train_pct]
        if self.val_corpus.examples or self.val_corpus.skipped:  # a split that exists must be usable
            self.val_corpus.check(max_bad_fraction)
        else:
            logging.warning("%s: no validation examples (val_fraction=%s): the run will not evaluate",
                            data_dir, val_fraction)
        self.failures = DecodeFailures(len(self.train_corpus.examples), max_bad_fraction)
        self.static_shapes = static_shapes
        examples = self.train_corpus.examples + self.val_corpus.examples
        # One hop beyond the longest clip: a resampled file may decode a sample longer than probed.
        longest = self.geometry.samples(max(e["duration"] for e in examples)) + self.geometry.hop_length
        self.bounds = sorted({b for b in (self.geometry.samples(s) for s in self.bucket_boundaries) if b < longest}
                             | {longest})
        self.max_tokens = max((len(e.get("text_ids", ())) for e in examples), default=0)

    @staticmethod
    def _encode_texts(corpus, text_encoder, min_seconds_per_token: float):
        """Sets "text_ids"; skips (counted, by path) clips too short for their transcript."""
        kept = []
        for ex in corpus.examples:
            ex["text_ids"] = text_encoder.encode(ex.get("text", ""), ex["path"])
            need = len(ex["text_ids"]) * min_seconds_per_token
            if ex["duration"] < need:
                corpus.skip(ex["path"], f"{ex['duration']:.3f} s cannot say its {len(ex['text_ids'])} tokens "
                                        f"(AudioData.min_seconds_per_token={min_seconds_per_token})")
            else:
                kept.append(ex)
        corpus.examples = kept

    def _decode(self, examples):
        rate = self.geometry.sample_rate

        def load(i):
            ex = examples[int(i)]
            try:
                return read_audio(ex["path"], rate)[:, 0], True
            except AudioReadError as exc:
                self.failures.add(ex["path"], str(exc))
                return np.zeros(1, np.float32), False

        labels = tf.constant([int(e.get("label", -1)) for e in examples], tf.int32)
        multi_label = any("label_ids" in e for e in examples)
        if multi_label:  # a multi-hot "label_set" [classes] beside the first class
            label_sets = np.zeros([len(examples), len(self.labels)], np.float32)
            for row, e in enumerate(examples):
                label_sets[row, e.get("label_ids", [])] = 1.0
            label_sets = tf.constant(label_sets)
        if self.text_encoder is not None:
            text_ids = tf.ragged.constant([e["text_ids"] for e in examples], tf.int32, row_splits_dtype=tf.int64)

        def fn(i, seed=None):
            wave, ok = tf.numpy_function(load, [i], [tf.float32, tf.bool], stateful=False)
            wave.set_shape([None])
            if self.fixed_seconds is not None and self.crops_per_file > 1:
                wave = self._crops(wave, seed)
            elif self.fixed_seconds is not None:
                n = self.geometry.samples(self.fixed_seconds)
                wave = (random_crop(wave, n, seed, self.pad_method) if seed is not None
                        else pad_to(wave, n, self.pad_method)[:n])
            out = {"audio": self._features(wave), "length": tf.shape(wave)[-1], "label": tf.gather(labels, i),
                   "ok": ok}
            if multi_label:
                out["label_set"] = tf.gather(label_sets, i)
            if self.text_encoder is not None:
                out["text_ids"] = text_ids[i]
                out["text_length"] = tf.shape(out["text_ids"])[0]
            return out
        return fn

    def _crops(self, wave, seed=None):
        """crops_per_file crops [crops, samples] of one padded file: at random offsets
        (stateless `seed`) or, without a seed, evenly spaced from start to end."""
        n, count = self.geometry.samples(self.fixed_seconds), self.crops_per_file
        wave = pad_to(wave, n, self.pad_method)
        last = tf.shape(wave)[0] - n
        if seed is not None:
            offsets = tf.random.stateless_uniform([count], seed, 0, last + 1, dtype=tf.int32)
        else:
            offsets = tf.cast(tf.round(tf.linspace(0.0, tf.cast(last, tf.float32), count)), tf.int32)
        return tf.gather(wave, offsets[:, None] + tf.range(n)[None])

    def _per_crop(self, ds):
        """With crop_mode 'examples', each crop an example of its own (its file's fields)."""
        if self.crops_per_file == 1 or self.crop_mode != "examples":
            return ds
        count = self.crops_per_file

        def split(element):
            return tf.data.Dataset.from_tensor_slices(
                {k: v if k == "audio" else tf.stack([v] * count) for k, v in element.items()})
        return ds.flat_map(split)

    def _features(self, wave):
        if self.feature == "wave":
            return wave
        mel = features.mel_spectrogram(wave, self.geometry)
        if self.feature == "log_mel":
            from tfaudio.audio.compression import LogCompression

            mel = (self.log_compression or LogCompression())(mel)
        return mel

    def _finish(self, ds, batch_size, drop_remainder, bucketed=False):
        ds = drop_failed(ds)
        if self.fixed_seconds is not None:
            ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        elif self.bucket_boundaries and not bucketed:
            bounds = [self.geometry.samples(b) for b in self.bucket_boundaries]
            ds = ds.bucket_by_sequence_length(lambda x: x["length"], bounds, [batch_size] * (len(bounds) + 1),
                                              drop_remainder=drop_remainder)
        else:
            ds = ds.padded_batch(batch_size, drop_remainder=drop_remainder)
        static = (self.static_shapes if self.static_shapes is not None
                  else isinstance(tf.distribute.get_strategy(), tf.distribute.TPUStrategy))
        if static and self.fixed_seconds is None:
            ds = ds.map(self._to_bucket_bound)
        if static and not drop_remainder:
            ds = ds.map(lambda batch: full_batch(batch, batch_size))
        return ds.prefetch(AUTOTUNE)

    def _to_bucket_bound(self, batch):
        """A padded batch padded on to the first bound at or above its longest clip (its
        features to that many frames) and its transcripts to the corpus' longest."""
        index = tf.searchsorted(tf.constant(self.bounds), tf.reduce_max(batch["length"])[None], side="left")[0]
        sizes = self.bounds if self.feature == "wave" else [self.geometry.frames(b) for b in self.bounds]
        audio = batch["audio"]
        out = dict(batch, audio=tf.pad(audio, [[0, 0], [0, tf.gather(sizes, index) - tf.shape(audio)[1]]]
                                       + [[0, 0]] * (audio.shape.rank - 2)))
        if len(sizes) == 1:  # one bucket: fully static
            out["audio"].set_shape([audio.shape[0], sizes[0]] + audio.shape[2:])
        if "text_ids" in batch:
            ids = batch["text_ids"]
            out["text_ids"] = tf.pad(ids, [[0, 0], [0, self.max_tokens - tf.shape(ids)[1]]])
            out["text_ids"].set_shape([ids.shape[0], self.max_tokens])
        return out

    def train(self, batch_size, seed, start=0, input_context=None) -> tf.data.Dataset:
        """Infinite batches from global example `start`; with bucket_boundaries the
        buckets are formed in index order (tfaudio.data.order.bucketed_stream), so a
        resumed run continues with exactly the batches it would have seen."""
        examples = self.train_corpus.examples
        decode = self._decode(examples)
        bucketed = bool(self.bucket_boundaries) and self.fixed_seconds is None
        if bucketed:
            ds = bucketed_stream([e["duration"] for e in examples], self.bucket_boundaries, batch_size, seed,
                                 start, input_context)
        else:  # crops of one file as separate examples: the stream counts files, then crops
            per_file = self.crops_per_file if self.crop_mode == "examples" else 1
            ds = index_stream(len(examples), seed, start // per_file, input_context=input_context)
        ds = ds.map(lambda e: decode(e["index"], tf.cast(e["seed"], tf.int32)),
                    num_parallel_calls=AUTOTUNE, deterministic=True)
        if self.crops_per_file > 1 and self.crop_mode == "examples":
            ds = self._per_crop(ds).skip(start % self.crops_per_file)
        return self._finish(ds, batch_size, drop_remainder=True, bucketed=bucketed)

    def validation(self, batch_size) -> tf.data.Dataset | None:
        return self._evaluation(self.val_corpus.examples, batch_size, "validation")

    def train_subset(self, batch_size) -> tf.data.Dataset | None:
        """The validate_train_pct subset of the training files, cropped as validation is."""
        return self._evaluation(self.subset_examples, batch_size, "train_subset")

    def _evaluation(self, examples, batch_size, name):
        if not examples:
            return None
        ds = tf.data.Dataset.range(len(examples)).map(self._decode(examples), num_parallel_calls=AUTOTUNE)
        ds = self._per_crop(ds)
        if self.cache_dir:
            tf.io.gfile.makedirs(self.cache_dir)
            ds = ds.cache(f"{self.cache_dir}/{name}")
        return self._finish(ds, batch_size, drop_remainder=False)
