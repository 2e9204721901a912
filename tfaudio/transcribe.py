"""`python -m tfaudio.transcribe --model_dir=runs/x --input a.wav [more.wav | folder | manifest ...]`

Restores a CTC recogniser run (operative config and checkpoint, EMA weights when the
run kept them) and prints one line per audio file: its path, a tab, its transcript.
An --input may be a file, a folder (its audio files, sorted) or a manifest (.csv with
a `path` column, or .jsonl). A file at another sample rate is rejected with one line
unless --resample is given; an unreadable file is named and skipped; the command
goes on with the rest and exits 1 when it skipped any.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from tfaudio import cli

cli.define_restore_flags("recogniser")
cli.define_audio_input_flags()
flags.DEFINE_integer("beam_width", None, "1: greedy decoding; more: beam search (default: the run's).")
flags.adopt_module_key_flags(cli)
FLAGS = flags.FLAGS


def main(argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli.need(FLAGS.beam_width is None or FLAGS.beam_width >= 1,
             f"--beam_width={FLAGS.beam_width} must be at least 1 (1: greedy)")
    inputs = cli.audio_inputs(argv)
    from tfaudio import config
    from tfaudio.experiment import restore_for_inference

    params = [] if FLAGS.beam_width is None else [f"CTCTask.beam_width = {FLAGS.beam_width}"]
    try:
        model, task = restore_for_inference(FLAGS.model_dir, FLAGS.checkpoint, FLAGS.ema, require="transcribe",
                                            gin_params=params)
    except config.ConfigError as exc:
        cli.fail(f"error: {exc}")
    for path, wave in inputs.read(task.sample_rate):
        print(f"{path}\t{task.transcribe(model, wave)}", flush=True)
    sys.exit(inputs.report())


def run():
    """Console-script entry point `tfaudio-transcribe`."""
    app.run(main)


if __name__ == "__main__":
    run()
