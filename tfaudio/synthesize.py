"""`python -m tfaudio.synthesize --model_dir=runs/x --text="Please hold." --output=hold.wav`

Restores a TTS run (its operative config and checkpoint, EMA weights when the run
kept them), decodes free-running from the go frame until the stop token fires
(or --max_steps), inverts with Griffin-Lim and writes a WAV at the run's sample
rate with an alignment PNG beside it. `--text_file` synthesizes one line each,
to `<output stem>_<line number>.wav`.
"""

from __future__ import annotations

import os

from absl import app, flags

from tfaudio import cli

cli.define_restore_flags("TTS model")
flags.DEFINE_string("text", None, "Text to speak.")
flags.DEFINE_string("text_file", None, "A UTF-8 file with one text per line.")
flags.DEFINE_string("output", "synthesized.wav", "Output WAV (the alignment PNG goes beside it).")
flags.DEFINE_multi_string("gin_param", [], "Override an inference setting of the run, e.g. "
                          "'TacotronTask.griffin_lim_iterations = 100'.")
flags.DEFINE_integer("max_steps", None, "Bound on decoder steps (default: TacotronTask.max_decoder_steps).")
flags.adopt_module_key_flags(cli)
FLAGS = flags.FLAGS


def _texts(argv) -> list[str]:
    cli.need(len(argv) == 1, f"unexpected argument {' '.join(argv[1:])!r}: quote the text, "
                             "--text=\"Please hold.\", or give one per line with --text_file")
    cli.need((FLAGS.text is None) != (FLAGS.text_file is None), "give exactly one of --text or --text_file")
    if FLAGS.text is not None:
        cli.need(bool(FLAGS.text.strip()), "--text is empty")
        return [FLAGS.text]
    try:
        with open(FLAGS.text_file, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        cli.fail(f"error: --text_file={FLAGS.text_file} cannot be read ({exc})")
    cli.need(bool(lines), f"--text_file={FLAGS.text_file} has no text")
    return lines


def _outputs(count: int) -> list[str]:
    stem, _ = os.path.splitext(FLAGS.output)
    if count == 1 and not FLAGS.text_file:
        return [stem + ".wav"]
    return [f"{stem}_{k:03d}.wav" for k in range(1, count + 1)]


def main(argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    texts = _texts(argv)
    cli.need(FLAGS.max_steps is None or FLAGS.max_steps >= 1, f"--max_steps={FLAGS.max_steps} must be at least 1")
    cli.output_folder("--output", os.path.dirname(FLAGS.output))
    from tfaudio import config
    from tfaudio.audio.images import save_plot
    from tfaudio.audio.io import write_wav
    from tfaudio.data.text import TextError
    from tfaudio.experiment import restore_for_inference

    try:
        model, task = restore_for_inference(FLAGS.model_dir, FLAGS.checkpoint, FLAGS.ema, require="synthesize",
                                            gin_params=FLAGS.gin_param)
    except config.ConfigError as exc:
        cli.fail(f"error: {exc}")
    vocabulary = task.vocabulary
    for text in texts:
        cli.need(any(i != vocabulary.end_id for i in vocabulary.encode(text, "--text")),
                 f"{text!r} has no character the model reads (its vocabulary: "
                 f"{''.join(vocabulary.symbols[2:])})")
    try:
        results = task.synthesize(model, texts, FLAGS.max_steps)
    except TextError as exc:
        cli.fail(f"error: {exc}")
    for text, path, (wave, alignment, ended_by) in zip(texts, _outputs(len(texts)), results):
        write_wav(path, wave, task.geometry.sample_rate)
        png = os.path.splitext(path)[0] + ".png"
        symbols = [task.vocabulary.symbols[i] for i in task.vocabulary.encode(text, "--text")]
        axes = task.alignment_axes(model)
        save_plot(png, alignment, text, axes["xlabel"], axes["ylabel"], symbols)
        print(f"{path} ({len(wave) / task.geometry.sample_rate:.2f} s, ended by the {ended_by}) "
              f"alignment {png}: {text}")


def run():
    """Console-script entry point `tfaudio-synthesize`."""
    app.run(main)


if __name__ == "__main__":
    run()
