"""`python -m tfaudio.classify --model_dir=runs/x --input a.wav [more.wav | folder | manifest ...]`

Restores a classifier run (operative config and checkpoint, EMA weights when the run
kept them) and prints one line per audio file: its path, then the --top_k labels with
their probabilities. A file longer than the run's crop is cut into consecutive crops
whose predictions are averaged; a shorter one is padded as in training. A file at
another sample rate is rejected with one line unless --resample is given; an
unreadable file is named and skipped; the command goes on and exits 1 when it skipped any.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from tfaudio import cli

cli.define_restore_flags("classifier")
cli.define_audio_input_flags()
flags.DEFINE_integer("top_k", 1, "Labels printed per file, most probable first.")
flags.adopt_module_key_flags(cli)
FLAGS = flags.FLAGS


def main(argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli.need(FLAGS.top_k >= 1, f"--top_k={FLAGS.top_k} must be at least 1")
    inputs = cli.audio_inputs(argv)
    import numpy as np

    from tfaudio import config
    from tfaudio.experiment import restore_for_inference
    from tfaudio.tasks.classification import LABELS_FILE

    try:
        model, task = restore_for_inference(FLAGS.model_dir, FLAGS.checkpoint, FLAGS.ema, require="classify")
    except config.ConfigError as exc:
        cli.fail(f"error: {exc}")
    with open(os.path.join(FLAGS.model_dir, LABELS_FILE)) as f:
        labels = json.load(f)
    crop_seconds, pad_method = config.query("AudioData.fixed_seconds"), config.query("AudioData.pad_method")
    for path, wave in inputs.read(task.sample_rate):
        probs = task.classify(model, wave, crop_seconds, pad_method)
        best = np.argsort(-probs)[:FLAGS.top_k]
        print(path + "\t" + "\t".join(f"{labels[i]} {probs[i]:.3f}" for i in best), flush=True)
    sys.exit(inputs.report())


def run():
    """Console-script entry point `tfaudio-classify`."""
    app.run(main)


if __name__ == "__main__":
    run()
