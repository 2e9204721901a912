"""The run record: what a run directory holds besides checkpoints and metrics.jsonl:
command.txt, config.gin (as parsed), operative_config.gin (every value used) and
versions.json (Python, TensorFlow, Keras, gin, numpy, tfaudio, git commit)."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys

import gin

from tfaudio.run_dir import OPERATIVE_CONFIG


def write_provenance(run_dir: str, argv) -> None:
    """command.txt, config.gin (as parsed) and versions.json in the run directory."""
    with open(os.path.join(run_dir, "command.txt"), "a", encoding="utf-8") as f:
        f.write(" ".join(_quote(a) for a in [sys.executable, "-m", "tfaudio.train"] + list(argv[1:])) + "\n")
    with open(os.path.join(run_dir, "config.gin"), "w", encoding="utf-8") as f:
        f.write(gin.config_str())
    with open(os.path.join(run_dir, "versions.json"), "w", encoding="utf-8") as f:
        json.dump(versions(), f, indent=2)


def write_operative_config(run_dir: str) -> None:
    with open(os.path.join(run_dir, OPERATIVE_CONFIG), "w", encoding="utf-8") as f:
        f.write(gin.operative_config_str())


def versions() -> dict:
    import keras
    import numpy
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "gin": _dist_version("gin-config"),
            "numpy": numpy.__version__, "tfaudio": _dist_version("tfaudio"),
            "git_commit": _git_commit(), "platform": platform.platform()}


def _dist_version(name):
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git_commit():
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=os.path.dirname(os.path.abspath(__file__)))
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"


def describe_model(model) -> dict:
    """What a run record keeps of a model: its trainable and other parameter counts, plus
    what the model itself reports through an optional `describe()` (e.g. a recogniser's
    frame rate and receptive field, a classifier's backbone size)."""
    from tfaudio.models.weights import parameter_count

    counts = {"parameters": parameter_count(model), "non_trainable_parameters": parameter_count(model, False)}
    describe = getattr(model, "describe", None)
    return {**counts, **(describe() if describe else {})}
