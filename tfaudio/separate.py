"""`python -m tfaudio.separate --model_dir=runs/x --input=mix.wav --output_dir=out`

Restores a separation run (operative config and checkpoint, EMA weights when the
run kept them) and writes, for each input file of any length, the estimated
target source and the residual (mixture minus estimate) as WAVs, computed by
chunked overlap-add, or with --stream block by block as a live input would arrive
(a unidirectional OpenUnmix: running STFT, LSTM state carried, overlap-add), printing
the real-time factor; Open-Unmix runs optionally through the Wiener post-filter
(--wiener_iterations). Every file after --input is separated (`--input *.wav`); one at
another sample rate is rejected unless --resample is given, an unreadable one named and
skipped, and the command exits 1 when it skipped any.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from tfaudio import cli

cli.define_restore_flags("separator")
cli.define_audio_input_flags("Mixture file(s) to separate; repeat --input or list several after it.")
flags.DEFINE_string("output_dir", "separated", "Folder for <input stem>_<source>.wav files.")
flags.DEFINE_float("chunk_seconds", 4.0, "Length of the overlap-added chunks.")
flags.DEFINE_float("overlap", 0.5, "Overlap of consecutive chunks (Hann windows); 0: rectangular chunks.")
flags.DEFINE_bool("stream", False, "Separate block by block (unidirectional OpenUnmix runs).")
flags.DEFINE_integer("block_samples", 1024, "Samples per block with --stream.")
flags.DEFINE_integer("wiener_iterations", None, "OpenUnmix runs: EM iterations of the multichannel Wiener "
                     "post-filter (0: off; default: the run's OpenUnmix.wiener_iterations). Offline only.")
flags.adopt_module_key_flags(cli)
FLAGS = flags.FLAGS


def _source_names() -> tuple[str, str]:
    """(target, residual) names from the run's data config, e.g. ("speech", "music")."""
    import gin

    try:
        target = gin.query_parameter("SeparationData.target")
    except ValueError:
        target = "speech"
    try:
        others = gin.query_parameter("SeparationData.others")
    except ValueError:
        others = ("music",)
    return target, "_".join(others) if others else "residual"


def main(argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli.need(FLAGS.chunk_seconds > 0, f"--chunk_seconds={FLAGS.chunk_seconds} must be positive")
    cli.need(0 <= FLAGS.overlap < 1, f"--overlap={FLAGS.overlap} must lie in [0, 1)")
    cli.need(FLAGS.block_samples >= 1, f"--block_samples={FLAGS.block_samples} must be at least 1")
    cli.need(FLAGS.wiener_iterations is None or (FLAGS.wiener_iterations >= 0 and not FLAGS.stream),
             f"--wiener_iterations={FLAGS.wiener_iterations} needs a count >= 0 and offline separation "
             "(not --stream)")
    inputs = cli.audio_inputs(argv)
    cli.output_folder("--output_dir", FLAGS.output_dir)
    from tfaudio import config
    from tfaudio.audio.io import write_wav
    from tfaudio.experiment import restore_for_inference
    from tfaudio.models.openunmix import OpenUnmix

    try:
        model, task = restore_for_inference(FLAGS.model_dir, FLAGS.checkpoint, FLAGS.ema, require="separate")
    except config.ConfigError as exc:
        cli.fail(f"error: {exc}")
    target, residual = _source_names()
    rate = task.sample_rate
    openunmix = isinstance(model, OpenUnmix)
    cli.need(openunmix or not (FLAGS.stream or FLAGS.wiener_iterations is not None),
             f"--stream and --wiener_iterations need an OpenUnmix run; {FLAGS.model_dir} trained a "
             f"{type(model).__name__}")
    if FLAGS.wiener_iterations is not None:
        model.wiener_iterations = FLAGS.wiener_iterations
    for path, mixture in inputs.read(rate, model.channels if openunmix else 1):
        if FLAGS.stream:
            estimate = _stream(model, mixture, rate)
        else:
            estimate = task.separate(model, mixture, FLAGS.chunk_seconds, FLAGS.overlap)
        stem = os.path.splitext(os.path.basename(path))[0]
        for name, audio in ((target, estimate), (residual, mixture - estimate)):
            # 32-bit float: an estimate may exceed full scale, and clipping it would change it
            out = write_wav(os.path.join(FLAGS.output_dir, f"{stem}_{name}.wav"), audio, rate, subtype="FLOAT")
            print(out)
    sys.exit(inputs.report())


def _stream(model, mixture, rate):
    """The estimate of `mixture` fed in --block_samples blocks; prints the real-time factor."""
    import time

    import numpy as np

    from tfaudio import config
    from tfaudio.models.openunmix import StreamingSeparator

    try:
        stream = StreamingSeparator(model)
    except config.ConfigError as exc:
        cli.fail(f"error: {exc}")
    start = time.perf_counter()
    pieces = [stream.push(mixture[i:i + FLAGS.block_samples]) for i in range(0, len(mixture), FLAGS.block_samples)]
    pieces.append(stream.flush())
    seconds = time.perf_counter() - start
    print(f"streamed {len(mixture) / rate:.2f} s in blocks of {FLAGS.block_samples} samples: "
          f"real-time factor {seconds / (len(mixture) / rate):.3f}")
    return np.concatenate(pieces)


def run():
    """Console-script entry point `tfaudio-separate`."""
    app.run(main)


if __name__ == "__main__":
    run()
