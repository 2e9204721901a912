"""The run directory: the names of what a run writes, its latest checkpoint and its
metrics rows, for every part that writes or reads one (trainer, checkpoints, trackers,
tasks, inference, reports, studies). A leaf: it imports no other tfaudio module.

    <run_dir>/checkpoints/ckpt-<step>   checkpoints/best/   metrics.jsonl   progress.log
    operative_config.gin   feature_stats.json   (tfaudio.training.run_record: the rest)
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

CHECKPOINTS = "checkpoints"
BEST = "best"  # inside CHECKPOINTS: the best checkpoint by CheckpointConfig.best_metric
METRICS = "metrics.jsonl"
PROGRESS = "progress.log"
OPERATIVE_CONFIG = "operative_config.gin"
FEATURE_STATS = "feature_stats.json"


def latest_checkpoint(run_dir: str) -> str | None:
    """The newest complete checkpoint of a run directory, or None."""
    return tf.train.latest_checkpoint(os.path.join(run_dir, CHECKPOINTS))


def checkpoint_step(path: str | None) -> int:
    """The step of a checkpoint path (".../ckpt-600"), 0 for None."""
    return int(path.rsplit("-", 1)[1]) if path else 0


def has_metrics(run_dir: str) -> bool:
    """True once the run has written its first metrics row."""
    return os.path.exists(os.path.join(run_dir, METRICS))


def read_metrics(path: str) -> list[dict]:
    """All rows of a metrics.jsonl file (a run directory or the file itself)."""
    if os.path.isdir(path):
        path = os.path.join(path, METRICS)
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
