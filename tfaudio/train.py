"""`python -m tfaudio.train --gin_file=gin/audio_unet.gin --model_dir=runs/x`

Flags carry infrastructure only; model, data and optimisation are gin bindings.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from tfaudio.cli import fail, unwritable_parent

flags.DEFINE_multi_string("gin_file", [], "Gin experiment file(s); later ones override earlier.")
flags.DEFINE_multi_string("gin_param", [], "Extra gin bindings, e.g. 'batch_size = 32'.")
flags.DEFINE_multi_string("gin_search_path", [], "Folders searched for gin files and includes.")
flags.DEFINE_string("model_dir", None, "Run directory (default runs/<run_name><experiment>).")
flags.DEFINE_string("run_name", "", "Run prefix such as 'batch2x_'; names the wandb run.")
flags.DEFINE_string("study", "", "Groups runs of one study in wandb (default: the experiment).")
flags.DEFINE_enum("strategy", "default", ["default", "one_device", "mirrored", "multi_worker", "tpu"],
                  "Distribution strategy.")
flags.DEFINE_integer("num_cpu_replicas", 0, "Split the CPU into N logical devices (try 'mirrored').")
flags.DEFINE_string("tpu", "local", "TPU for --strategy=tpu: 'local' on a TPU VM, else the TPU node's name.")
flags.DEFINE_integer("seed", 0, "Seeds Python, NumPy, TensorFlow and the data order.")
flags.DEFINE_bool("deterministic", False, "Enable TensorFlow op determinism.")
flags.DEFINE_enum("tracker", "tensorboard", ["tensorboard", "wandb", "both", "none"],
                  "Where scalars go besides metrics.jsonl.")
FLAGS = flags.FLAGS


def experiment_name(gin_files) -> str:
    return os.path.splitext(os.path.basename(gin_files[-1]))[0] if gin_files else "experiment"


def main(argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from tfaudio import compose, config  # compose registers every configurable a training uses
    from tfaudio.errors import ConfigError, DivergenceError
    from tfaudio.training.strategy import make_strategy

    try:
        config.parse(FLAGS.gin_file, FLAGS.gin_param, FLAGS.gin_search_path, finalize=False)
    except ConfigError as exc:
        fail(f"config error: {exc}")
    name = experiment_name(FLAGS.gin_file)
    model_dir = FLAGS.model_dir or os.path.join("runs", FLAGS.run_name + name)
    blocked = unwritable_parent(model_dir)
    if blocked:
        fail(f"error: --model_dir={model_dir}: {blocked} is not a writable folder; choose another")
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    try:
        strategy = make_strategy(FLAGS.strategy, FLAGS.num_cpu_replicas, FLAGS.tpu)
        _, results = compose.train(model_dir, strategy, FLAGS.tracker, FLAGS.seed, name=FLAGS.run_name + name,
                               group=FLAGS.study or name, argv=sys.argv)
    except ConfigError as exc:
        fail(f"config error: {exc}")
    except DivergenceError as exc:
        fail(f"error: {exc}", code=1)
    print(f"run directory: {model_dir}")
    for split, metrics in results.items():
        print(split, " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float))))


def run():
    """Console-script entry point `tfaudio-train`."""
    app.run(main)


if __name__ == "__main__":
    run()
