"""`python -m tfaudio.prepare NAME [--out DIR]`: build a real corpus from Debian packages.

NAME is asterisk, espeak, mixtures, digits or langid; --out defaults to data/NAME, where
the shipped gin files look through their `data_dir` macro.
"""

from __future__ import annotations

import os

from absl import app, flags

from tfaudio import cli

flags.DEFINE_string("out", None, "Output folder (default data/NAME).")
flags.DEFINE_integer("sample_rate", 8000, "Sample rate of espeak, digits, langid and mixtures corpora.")
flags.DEFINE_integer("num_sentences", 600, "Sentences for the espeak corpus.")
flags.DEFINE_string("speech", "asterisk", "Speech corpus mixed into `mixtures` (asterisk or espeak).")
flags.DEFINE_integer("seed", 0, "Seed for sentences, voices, music and SNRs.")
FLAGS = flags.FLAGS
CORPORA = ("asterisk", "espeak", "mixtures", "digits", "langid")


def prepare(name: str, out: str) -> str:
    from tfaudio.data import corpora

    if name == "asterisk":
        return corpora.build_asterisk(out)
    if name == "espeak":
        return corpora.build_espeak(out, FLAGS.num_sentences, FLAGS.sample_rate, FLAGS.seed)
    if name == "digits":
        return corpora.build_digits(out, FLAGS.sample_rate, seed=FLAGS.seed)
    if name == "langid":
        return corpora.build_langid(out, FLAGS.sample_rate)
    speech_dir = os.path.join(os.path.dirname(out) or ".", FLAGS.speech)
    if not os.path.exists(os.path.join(speech_dir, "metadata.csv")):
        print(prepare(FLAGS.speech, speech_dir))
    return corpora.build_mixtures(out, speech_dir, FLAGS.sample_rate, seed=FLAGS.seed)


def main(argv):
    cli.need(len(argv) == 2 and argv[1] in CORPORA,
             f"name one corpus: python -m tfaudio.prepare {{{','.join(CORPORA)}}} [--out DIR]"
             + (f" ({' '.join(argv[1:])!r} is none of them)" if len(argv) > 1 else ""))
    from tfaudio.data.corpora import MissingPackage

    name = argv[1]
    try:
        print(prepare(name, FLAGS.out or os.path.join("data", name)))
    except MissingPackage as exc:
        cli.fail(f"error: {exc}")


def run():
    """Console-script entry point `tfaudio-prepare`."""
    app.run(main)


if __name__ == "__main__":
    run()
