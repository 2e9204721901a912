"""Audio classification: batch["audio"] [B, samples] (or [B, crops, samples] whose
predictions are averaged) with batch["label"] [B] int64.

Loss: softmax cross-entropy with label smoothing. Metrics per split: accuracy, top-k
accuracy, macro F1 and the confusion matrix (rows: true class, columns: predicted;
written to metrics.jsonl, drawn as an image in TensorBoard).
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
from tfaudio.tasks.base import Task

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
class ClassificationTask(Task):
    """Args:
      label_smoothing: of the cross-entropy targets.
      top_k: the k of the top-k accuracy metric.
      stats_examples: training crops the feature statistics are computed over.
    """

    def __init__(self, label_smoothing: float = 0.0, top_k: int = 3, stats_examples: int = 256):
        if not 0 <= label_smoothing < 1:
            raise ConfigError(f"ClassificationTask.label_smoothing={label_smoothing} must lie in [0, 1)")
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
        values = []
        for batch in self._data.train(16, seed=0).take(max(1, math.ceil(self.stats_examples / 16))):
            audio = tf.reshape(batch["audio"], [-1, tf.shape(batch["audio"])[-1]])
            values.append(front_end.raw(audio).numpy().reshape(-1, front_end.channels))
        values = np.concatenate(values)
        if front_end.normalization == "joint":
            mean, std = np.full(2, values.mean()), np.full(2, values.std())
        else:
            mean = np.pad(values.mean(axis=0), (0, 2 - front_end.channels))
            std = np.pad(values.std(axis=0), (0, 2 - front_end.channels), constant_values=1.0)
        self.state.assign(mean, std)
        save_stats(os.path.join(self._model_dir, "feature_stats.json"), {"features": self.state})
        front_end.set_statistics(mean[:front_end.channels], std[:front_end.channels])
        logging.info("%s feature statistics (%s normalisation): mean %s, std %s", front_end.kind,
                     front_end.normalization, np.round(mean, 2), np.round(std, 2))

    def probabilities(self, model, audio, training=False):
        """Class probabilities [B, classes]; crops [B, crops, samples] averaged."""
        logits = tf.cast(model(audio, training=training), tf.float32)
        probs = tf.nn.softmax(logits)
        return tf.reduce_mean(probs, axis=1) if len(logits.shape) == 3 else probs

    def loss(self, model, batch, training):
        probs = self.probabilities(model, batch["audio"], training)
        classes = probs.shape[-1]
        target = tf.one_hot(batch["label"], classes) * (1 - self.label_smoothing) + self.label_smoothing / classes
        loss = -tf.reduce_sum(target * tf.math.log(tf.maximum(probs, 1e-7)), axis=-1)
        return loss, {"cross_entropy": loss}

    def metrics(self, model, batch):
        probs = self.probabilities(model, batch["audio"])
        loss, _ = self.loss(model, batch, training=False)
        labels = tf.cast(batch["label"], tf.int32)
        classes = probs.shape[-1]
        predicted = tf.argmax(probs, -1, output_type=tf.int32)
        top_k = tf.math.in_top_k(labels, probs, min(self.top_k, classes))
        return {"loss": loss, "accuracy": tf.cast(predicted == labels, tf.float32),
                f"top{self.top_k}_accuracy": tf.cast(top_k, tf.float32),
                "confusion": tf.one_hot(labels * classes + predicted, classes * classes)}

    def corpus_metrics(self, means: dict) -> dict:
        out = dict(means)
        classes = int(round(math.sqrt(np.size(means["confusion"]))))
        confusion = np.asarray(means["confusion"]).reshape(classes, classes) * means["examples"]
        out["confusion"] = np.round(confusion).astype(int).tolist()
        out["macro_f1"] = macro_f1(confusion)
        return out

    def split_summaries(self, split: str, metrics: dict, trackers, step: int):
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
            return {"probabilities": tf.nn.softmax(tf.cast(model(audio, training=False), tf.float32))}
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

