"""The monotonic alignment search in TensorFlow against the numpy one it replaced, at the
durations recipe's sizes (gin/tacotron_8khz.gin on data/asterisk):

    python benchmarks/alignment_search.py [--steps 40] [--repeats 2] [--smoke]

Prints milliseconds per search alone (batch 32, 500 frames, 60 symbols: numpy in a
numpy_function, TensorFlow in a traced graph, TensorFlow compiled by XLA), then the
training steps/s of the recipe with each search inside the model's step, alternated
`repeats` times in this one process (this machine's speed drifts from day to day).
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfaudio import compose as training  # noqa: E402
from tfaudio import config  # noqa: E402
from tfaudio.models import duration_tacotron  # noqa: E402
from tfaudio.models.alignment_search import search, search_numpy  # noqa: E402
from tfaudio.run_dir import read_metrics  # noqa: E402


def numpy_search(log_likelihood, frames, symbols):
    """The numpy search on the host, as the model ran it before (a numpy_function)."""
    path = tf.numpy_function(search_numpy, [log_likelihood, frames, symbols], tf.float32, stateful=False)
    path.set_shape(log_likelihood.shape)
    return path


def search_alone(batch: int, frames: int, symbols: int, repeats: int) -> dict:
    """Milliseconds per call of each search on random log-likelihoods."""
    rng = np.random.default_rng(0)
    args = (tf.constant(rng.normal(size=(batch, frames, symbols)), tf.float32),
            tf.constant(rng.integers(frames // 2, frames + 1, batch), tf.int32),
            tf.constant(rng.integers(symbols // 2, symbols + 1, batch), tf.int32))
    out = {}
    for name, fn in (("numpy", tf.function(numpy_search)), ("tensorflow", tf.function(search)),
                     ("tensorflow+xla", tf.function(search, jit_compile=True))):
        fn(*args)
        start = time.perf_counter()
        for _ in range(repeats):
            fn(*args).numpy()
        out[name] = 1000 * (time.perf_counter() - start) / repeats
    return out


def training_rate(search_fn, gin_files: list, params: list) -> float:
    """Steps/s of the recipe (loops after the first) with `search_fn` in the model."""
    duration_tacotron.search = search_fn
    config.parse(gin_files, params, finalize=False)
    with tempfile.TemporaryDirectory() as run:
        training.train(run, tracker="none")
        rows = [r for r in read_metrics(run) if "loss" in r and "split" not in r and "event" not in r][1:]
    return sum(r["loop_steps"] for r in rows) / sum(r["loop_steps"] / r["steps_per_sec"] for r in rows)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few steps (for CI)")
    args = parser.parse_args()
    sizes = (4, 40, 8) if args.smoke else (32, 500, 60)
    alone = search_alone(*sizes, repeats=3 if args.smoke else 20)
    print("search alone, ms (batch, frames, symbols = %d, %d, %d): " % sizes
          + ", ".join(f"{k} {v:.1f}" for k, v in alone.items()), flush=True)
    steps = 4 if args.smoke else args.steps
    params = [f"train_steps = {steps}", f"eval_every = {10 * steps}", "Trainer.steps_per_loop = 2",
              "CheckpointConfig.every = 100000"]
    gin_files = ["gin/tacotron_8khz.gin"] + (["gin/common/tiny.gin"] if args.smoke else [])
    if args.smoke:
        params.append("vocabulary.kind = 'characters'")  # no espeak-ng needed
    rates = {"numpy": [], "tensorflow": []}
    for _ in range(1 if args.smoke else args.repeats):
        for name, fn in (("numpy", numpy_search), ("tensorflow", search)):
            rates[name].append(training_rate(fn, gin_files, params))
            print(f"training with the {name} search: {rates[name][-1]:.3f} steps/s", flush=True)
    numpy_rate, tf_rate = (float(np.mean(rates[k])) for k in ("numpy", "tensorflow"))
    print(f"training steps/s: tensorflow {tf_rate:.3f} vs numpy {numpy_rate:.3f} (ratio {tf_rate / numpy_rate:.2f})")


if __name__ == "__main__":
    main()
