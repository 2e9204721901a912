"""Audio classification: batch["audio"] [B, samples] (or [B, crops, samples] whose
predictions are averaged) with batch["label"] [B] int32, or for multi-label corpora
batch["label_set"] [B, classes] (multi-hot).

Single-label: softmax cross-entropy with label smoothing; metrics per split: accuracy,
top-k accuracy, macro F1 and the confusion matrix (rows: true class, columns:
predicted; written to metrics.jsonl, drawn as an image in TensorBoard).
Multi-label: sigmoid cross-entropy per class; metrics: accuracy (the predicted set,
probabilities over 0.5, equals the true one), label accuracy (per class), macro F1
over classes and per-class true/false positives and false negatives.
"""

from __future__ import annotations

import json
import math
import os

import gin
import numpy as np
import tensorflow as tf
from absl import logging

from tfaudio.audio.geometry import audio_geometry
from tfaudio.audio.normalization import FeatureNormalization, save_stats
from tfaudio.errors import ConfigError
from tfaudio.limits import POSITIVE_INT, RATE, limits
from tfaudio.run_dir import FEATURE_STATS
from tfaudio.tasks.base import Task, inference, training_statistics

LABELS_FILE = "labels.json"  # the class names of a run, in label order


def macro_f1(confusion: np.ndarray) -> float:
    """Mean over classes of F1 from a confusion matrix (rows true, columns predicted);
    a class never true nor predicted is left out."""
    confusion = np.asarray(confusion, np.float64)
    true_positive = np.diag(confusion)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    present = (predicted + actual) > 0
    f1 = 2 * true_positive[present] / (predicted[present] + actual[present])
    return float(f1.mean()) if f1.size else 0.0


def confusion_image(confusion: np.ndarray, labels: list[str], title: str) -> np.ndarray:
    """An RGB picture of the row-normalised confusion matrix with counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = np.asarray(confusion)
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1e-9)
    size = max(4.0, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (i, j), count in np.ndenumerate(confusion):
        if count:
            ax.text(j, i, f"{count:.0f}", ha="center", va="center", color="white" if rates[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


@gin.configurable
@limits(label_smoothing=RATE, top_k=POSITIVE_INT, stats_examples=POSITIVE_INT)
class ClassificationTask(Task):
    """Args:
      label_smoothing: of the cross-entropy targets.
      top_k: the k of the top-k accuracy metric (single-label).
      stats_examples: training crops the feature statistics are computed over.
      multi_label: sigmoid outputs, one decision per class (batch["label_set"]).
    """

    def __init__(self, label_smoothing: float = 0.0, top_k: int = 3, stats_examples: int = 256,
                 multi_label: bool = False):
        self.multi_label = multi_label
        self.label_smoothing, self.top_k, self.stats_examples = label_smoothing, top_k, stats_examples
        self.sample_rate = audio_geometry().sample_rate
        self.state = FeatureNormalization(2, name="feature_stats")
        self.labels: list[str] = []

    def initialize(self, data, model_dir: str):
        """Writes the class names; keeps the data for the feature statistics."""
        self.labels = list(data.labels)
        with open(os.path.join(model_dir, LABELS_FILE), "w") as f:
            json.dump(self.labels, f)
        self._data, self._model_dir = data, model_dir

    def initialize_model(self, model):
        """Checks the class count; sets the model's feature normalisation from the
        statistics of training crops (per channel, or over both for 'joint')."""
        if model.num_classes != len(self.labels):
            raise ConfigError(f"Classifier.num_classes={model.num_classes} but the data has {len(self.labels)} "
                              f"classes ({', '.join(self.labels[:10])}); set Classifier.num_classes = "
                              f"{len(self.labels)}")
        front_end = model.features
        joint = front_end.normalization == "joint"

        def raw(batch):  # every crop's values, per channel (or all as one, for 'joint')
            audio = tf.reshape(batch["audio"], [-1, tf.shape(batch["audio"])[-1]])
            values = front_end.raw(audio).numpy().reshape(1, -1, 1 if joint else front_end.channels)
            return {"features": (values, np.ones(values.shape[:2], bool))}
        mean, std = training_statistics(self._data, self.stats_examples, raw)["features"]
        if joint:
            mean, std = np.full(2, mean[0]), np.full(2, std[0])
        else:
            mean = np.pad(mean, (0, 2 - front_end.channels))
            std = np.pad(std, (0, 2 - front_end.channels), constant_values=1.0)
        self.state.assign(mean, std)
        save_stats(os.path.join(self._model_dir, FEATURE_STATS), {"features": self.state})
        front_end.set_statistics(mean[:front_end.channels], std[:front_end.channels])
        logging.info("%s feature statistics (%s normalisation): mean %s, std %s", front_end.kind,
                     front_end.normalization, np.round(mean, 2), np.round(std, 2))

    def probabilities(self, model, audio, training=False):
        """Class probabilities [B, classes] (softmax, or sigmoid per class when multi_label);
        crops [B, crops, samples] averaged. At inference outside a trace, the model runs traced."""
        eager = not training and tf.executing_eagerly()
        logits = tf.cast(inference(model)(audio) if eager else model(audio, training=training), tf.float32)
        probs = tf.sigmoid(logits) if self.multi_label else tf.nn.softmax(logits)
        return tf.reduce_mean(probs, axis=1) if len(logits.shape) == 3 else probs

    def _targets(self, batch, classes):
        if not self.multi_label:
            return tf.one_hot(batch["label"], classes)
        if "label_set" not in batch:
            raise ConfigError("ClassificationTask.multi_label = True needs a multi-label corpus: a manifest whose "
                              "label column names several classes as 'a;b'")
        return tf.cast(batch["label_set"], tf.float32)

    def loss(self, model, batch, training):
        return self._cross_entropy(self.probabilities(model, batch["audio"], training), batch)

    def _cross_entropy(self, probs, batch):
        """(per-example loss, terms) of class probabilities against the batch's labels."""
        classes = probs.shape[-1]
        smooth = self.label_smoothing
        target = self._targets(batch, classes)
        if self.multi_label:
            target = target * (1 - smooth) + smooth / 2
            p = tf.clip_by_value(probs, 1e-7, 1 - 1e-7)
            loss = -tf.reduce_sum(target * tf.math.log(p) + (1 - target) * tf.math.log(1 - p), axis=-1)
        else:
            target = target * (1 - smooth) + smooth / classes
            loss = -tf.reduce_sum(target * tf.math.log(tf.maximum(probs, 1e-7)), axis=-1)
        return loss, {"cross_entropy": loss}

    def metrics(self, model, batch):
        if self.multi_label:
            return self._multi_label_metrics(model, batch)
        probs = self.probabilities(model, batch["audio"])
        loss, _ = self._cross_entropy(probs, batch)  # the one forward pass serves loss and predictions
        labels = tf.cast(batch["label"], tf.int32)
        classes = probs.shape[-1]
        predicted = tf.argmax(probs, -1, output_type=tf.int32)
        top_k = tf.math.in_top_k(labels, probs, min(self.top_k, classes))
        return {"loss": loss, "accuracy": tf.cast(predicted == labels, tf.float32),
                f"top{self.top_k}_accuracy": tf.cast(top_k, tf.float32),
                "confusion": tf.one_hot(labels * classes + predicted, classes * classes)}

    def _multi_label_metrics(self, model, batch):
        probs = self.probabilities(model, batch["audio"])
        loss, _ = self._cross_entropy(probs, batch)
        truth = self._targets(batch, probs.shape[-1]) > 0.5
        predicted = probs > 0.5
        counts = tf.concat([tf.cast(truth & predicted, tf.float32), tf.cast(~truth & predicted, tf.float32),
                            tf.cast(truth & ~predicted, tf.float32)], axis=-1)
        return {"loss": loss, "accuracy": tf.cast(tf.reduce_all(truth == predicted, axis=-1), tf.float32),
                "label_accuracy": tf.reduce_mean(tf.cast(truth == predicted, tf.float32), axis=-1),
                "label_counts": counts}

    def corpus_metrics(self, means: dict) -> dict:
        out = dict(means)
        if "label_counts" in means:  # multi-label: per-class TP, FP, FN -> macro F1
            tp, fp, fn = np.split(np.asarray(means["label_counts"]) * means["examples"], 3)
            present = (tp + fp + fn) > 0
            out["macro_f1"] = float(np.mean(2 * tp[present] / (2 * tp[present] + fp[present] + fn[present]))) \
                if present.any() else 0.0
            out["label_counts"] = {"true_positive": tp.round().astype(int).tolist(),
                                   "false_positive": fp.round().astype(int).tolist(),
                                   "false_negative": fn.round().astype(int).tolist()}
            return out
        classes = int(round(math.sqrt(np.size(means["confusion"]))))
        confusion = np.asarray(means["confusion"]).reshape(classes, classes) * means["examples"]
        out["confusion"] = np.round(confusion).astype(int).tolist()
        out["macro_f1"] = macro_f1(confusion)
        return out

    def split_summaries(self, split: str, metrics: dict, trackers, step: int):
        if "confusion" not in metrics:
            return
        labels = self.labels or [str(i) for i in range(len(metrics["confusion"]))]
        trackers.image(step, f"{split}/confusion", confusion_image(metrics["confusion"], labels,
                                                                    f"{split}, step {step}"))

    def classify(self, model, wave: np.ndarray, crop_seconds: float, pad_method: str = "zeros") -> np.ndarray:
        """Class probabilities of one mono waveform of any length: a short file is padded
        to one crop; a long one is cut into consecutive crops whose predictions are averaged."""
        from tfaudio.audio.padding import pad_to

        n = int(round(crop_seconds * self.sample_rate))
        count = max(1, math.ceil(len(wave) / n))
        wave = pad_to(tf.constant(wave, tf.float32), count * n, pad_method)[:count * n]
        crops = tf.reshape(wave, [1, count, n])
        return self.probabilities(model, crops).numpy()[0]

    def export_endpoints(self, model) -> dict:
        def classify(audio):
            return {"probabilities": self.probabilities(model, audio)}
        return {"classify": (classify, [tf.TensorSpec([None, None], tf.float32, name="audio")])}

    def export_assets(self, model, run_dir: str, out_dir: str) -> list[str]:
        """labels.txt: the class names, one per line in output order (the run's labels.json)."""
        with open(os.path.join(run_dir, LABELS_FILE)) as f:
            labels = json.load(f)
        with open(os.path.join(out_dir, "labels.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(labels) + "\n")
        return ["labels.txt"]

    def build_for_inference(self, model):
        model(tf.zeros([1, self.sample_rate]))

