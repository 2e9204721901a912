"""Speech recognition with CTC: batch["audio"] samples with batch["length"], the
transcript's ids (vocabulary(kind='transcript'), id 0 the blank) in batch["text_ids"]
with batch["text_length"].

The loss is `tf.nn.ctc_loss` with blank 0 and sparse labels (about 13x faster than
dense labels on CPU), or dense labels when the step is XLA-compiled (the sparse op has
no XLA kernel). An example whose label needs more frames than it has (its length plus
its repeated neighbours) gets loss 0 and is counted in the `label_too_long` term:
TensorFlow would return a large finite loss for it, not an error. Metrics are corpus
level: the character and word error rates are the validation split's summed edit
distances over its summed reference lengths, not means of per-example ratios; the
decoding and edit distances run on the host after the device step.
"""

from __future__ import annotations

import os

import gin
import numpy as np
import tensorflow as tf
from absl import logging

from tfaudio.audio.geometry import audio_geometry
from tfaudio.data.text import vocabulary
from tfaudio.errors import ConfigError
from tfaudio.limits import COUNT, POSITIVE_INT, limits
from tfaudio.tasks.alignment import ctc_loss, sparse_labels
from tfaudio.tasks.base import Task, inference


def decode(logits, frames, beam_width: int = 1):
    """Best label sequences (a SparseTensor [B, labels] of ids, blank 0 excluded) of
    batch-major logits [B, T, classes]: greedy with beam_width 1, else beam search."""
    # TensorFlow's decoders take the last class as the blank: move blank 0 there.
    shifted = tf.concat([logits[..., 1:], logits[..., :1]], -1)
    time_major = tf.transpose(shifted, [1, 0, 2])
    frames = tf.cast(frames, tf.int32)
    if beam_width == 1:
        (paths,), _ = tf.nn.ctc_greedy_decoder(time_major, frames)
    else:
        (paths,), _ = tf.nn.ctc_beam_search_decoder(time_major, frames, beam_width=beam_width, top_paths=1)
    return tf.SparseTensor(paths.indices, paths.values + 1, paths.dense_shape)


def labels_needed_frames(ids, lengths):
    """Frames CTC needs for each label: its length plus one blank between equal neighbours."""
    valid = tf.sequence_mask(lengths - 1, tf.shape(ids)[1] - 1)
    repeats = tf.reduce_sum(tf.cast((ids[:, 1:] == ids[:, :-1]) & valid, tf.int32), axis=1)
    return tf.cast(lengths, tf.int32) + repeats


@gin.configurable
@limits(beam_width=POSITIVE_INT, shown_examples=COUNT)
class CTCTask(Task):
    """Args:
      normalize_by_label_length: divide each example's loss by its label length.
      beam_width: 1: greedy decoding; more: beam search (validation and transcription).
      padding: True: a batch is padded to its longest example (masked in the model);
        False: each example passes through the network alone, at its own length, so no
        padding exists (BatchNorm then normalises each example by itself).
      shown_examples: decoded validation examples logged beside their references.
    """

    def __init__(self, normalize_by_label_length: bool = False, beam_width: int = 1, padding: bool = True,
                 shown_examples: int = 3):
        self.vocab = vocabulary()
        if self.vocab.symbols[:3] != ["_", " ", "'"]:
            raise ConfigError("CTCTask needs vocabulary.kind = 'transcript' (blank 0, space, apostrophe, letters)")
        self.normalize_by_label_length, self.beam_width = normalize_by_label_length, beam_width
        self.padding, self.shown_examples = padding, shown_examples
        self.sample_rate = audio_geometry().sample_rate
        self.symbols = tf.constant(self.vocab.symbols)

    def initialize(self, data, model_dir: str):
        hop = audio_geometry().hop_length
        short = [e["path"] for e in data.train_corpus.examples
                 if len(e["text_ids"]) > int(e["duration"] * self.sample_rate) // hop]
        if short:
            logging.warning("%d training clips have transcripts longer than their frames; CTC will skip them "
                            "(first: %s)", len(short), short[0])

    def _logits(self, model, batch, training):
        if self.padding or not training:
            return model(batch["audio"], batch["length"], training=training)
        # Each example alone (the batch size is static in training), at its own length; under
        # XLA at the batch's static length, its padding masked as the model masks it.
        rows = []
        for i in range(batch["audio"].shape[0]):
            n = None if self.xla else batch["length"][i]
            rows.append(model(batch["audio"][i:i + 1, :n], batch["length"][i:i + 1], training=True))
        longest = tf.reduce_max([tf.shape(r)[1] for r in rows])
        return tf.concat([tf.pad(r, [[0, 0], [0, longest - tf.shape(r)[1]], [0, 0]]) for r in rows], 0)

    def loss(self, model, batch, training):
        logits = tf.cast(self._logits(model, batch, training), tf.float32)
        return self._ctc(logits, model.frames(batch["length"]), batch)

    def _ctc(self, logits, frames, batch):
        """(per-example CTC loss, terms) of logits with `frames` valid frames each."""
        ids, lengths = batch["text_ids"], batch["text_length"]
        too_long = labels_needed_frames(ids, lengths) > tf.cast(frames, tf.int32)
        nll = ctc_loss(ids, lengths, logits, frames, dense=self.xla)
        if self.normalize_by_label_length:
            nll /= tf.cast(tf.maximum(lengths, 1), tf.float32)
        nll = tf.where(too_long, 0.0, nll)
        return nll, {"ctc": nll, "label_too_long": tf.cast(too_long, tf.float32)}

    def metrics(self, model, batch):
        logits = tf.cast(model(batch["audio"], batch["length"], training=False), tf.float32)
        frames = model.frames(batch["length"])
        loss, terms = self._ctc(logits, frames, batch)  # the one forward pass serves loss and decoding
        return {"loss": loss, "label_too_long": terms["label_too_long"],
                "chars": tf.cast(batch["text_length"], tf.float32), "host/logits": logits, "host/frames": frames,
                "host/text_ids": batch["text_ids"], "host/text_length": batch["text_length"]}

    def host_metrics(self, values):
        """Character and word edits of the decoded transcripts, and the reference words."""
        hypotheses = decode(values["logits"], values["frames"], self.beam_width)
        truth = sparse_labels(values["text_ids"], values["text_length"])
        chars = tf.edit_distance(tf.cast(hypotheses, tf.int64), tf.cast(truth, tf.int64), normalize=False)
        truth_words = tf.strings.split(self._strings(truth))
        words = tf.edit_distance(tf.strings.split(self._strings(hypotheses)).to_sparse(), truth_words.to_sparse(),
                                 normalize=False)
        return {"char_edits": chars.numpy(), "word_edits": words.numpy(),
                "words": truth_words.row_lengths().numpy().astype(np.float32)}

    def corpus_metrics(self, means: dict) -> dict:
        out = dict(means)
        out["cer"] = means["char_edits"] / max(means["chars"], 1e-9)
        out["wer"] = means["word_edits"] / max(means["words"], 1e-9)
        return out

    def _strings(self, sparse_ids):
        """The text of each row of a SparseTensor of ids."""
        chars = tf.sparse.map_values(lambda v: tf.gather(self.symbols, v), sparse_ids)
        return tf.strings.reduce_join(tf.sparse.to_dense(chars, default_value=""), axis=1)

    def transcribe(self, model, wave: np.ndarray) -> str:
        """The transcript of one mono waveform at the task's sample rate."""
        length = tf.constant([len(wave)])
        logits = inference(model)(tf.constant(wave[None], tf.float32), length)
        paths = decode(logits, model.frames(length), self.beam_width)
        return self.vocab.decode(tf.sparse.to_dense(paths)[0].numpy())

    def export_endpoints(self, model) -> dict:
        def transcribe(audio, length):
            logits = model(audio, length, training=False)
            frames = model.frames(length)
            return {"logits": logits, "frames": frames, "text": self._strings(decode(logits, frames))}
        return {"transcribe": (transcribe, [tf.TensorSpec([None, None], tf.float32, name="audio"),
                                            tf.TensorSpec([None], tf.int32, name="length")])}

    def export_assets(self, model, run_dir: str, out_dir: str) -> list[str]:
        with open(os.path.join(out_dir, "vocabulary.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(self.vocab.symbols) + "\n")
        return ["vocabulary.txt"]

    def summaries(self, model, batch, trackers, step):
        n = self.shown_examples
        logits = model(batch["audio"][:n], batch["length"][:n], training=False)
        hypotheses = self._strings(decode(logits, model.frames(batch["length"][:n]), self.beam_width)).numpy()
        lines = []
        for hyp, ids, length in zip(hypotheses, batch["text_ids"][:n].numpy(), batch["text_length"][:n].numpy()):
            lines.append(f"reference:  {self.vocab.decode(ids[:length])}\nrecognised: {hyp.decode()}")
        text = "\n\n".join(lines)
        logging.info("validation transcripts at step %d:\n%s", step, text)
        trackers.text(step, "transcripts", text)

    def build_for_inference(self, model):
        model(tf.zeros([1, self.sample_rate]), tf.constant([self.sample_rate]))
