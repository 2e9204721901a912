"""`python -m tfaudio.export --model_dir=RUN --output=DIR [--format=saved_model|tflite|both]`

Restores a run (EMA weights when kept, unless --noema) and writes an artefact that runs
without tfaudio (tfaudio.exporter: its layout, signatures and manifest), then prints the
signatures and the TFLite files.
"""

from __future__ import annotations

import os

from absl import app, flags

from tfaudio import cli

cli.define_restore_flags("model to export", "Export the EMA weights when the run kept them.")
flags.DEFINE_string("output", None, "Folder for the export (created).", required=True)
flags.DEFINE_enum("format", "saved_model", ["saved_model", "tflite", "both"], "What to write.")
flags.adopt_module_key_flags(cli)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tfaudio.errors import ConfigError
    from tfaudio.exporter import export

    cli.output_folder("--output", FLAGS.output)
    try:
        manifest = export(FLAGS.model_dir, FLAGS.output, FLAGS.checkpoint, FLAGS.ema, FLAGS.format)
    except ConfigError as exc:
        cli.fail(f"error: {exc}")
    for name, sig in manifest["signatures"].items():
        print(f"{name}({', '.join(sig['inputs'])}) -> {', '.join(sig['outputs'])}")
    for name, result in manifest["tflite"].items():
        if "file" in result:
            ops = "builtin and TensorFlow (Flex) ops" if result["tensorflow_ops"] else "builtin ops"
            print(f"{name}.tflite: {result['bytes']:,} bytes, {ops}")
        else:
            print(f"{name}.tflite: not converted: {result['error']}")
    print(f"wrote {FLAGS.output}")


def run():
    """Console-script entry point `tfaudio-export`."""
    app.run(main)


if __name__ == "__main__":
    run()
