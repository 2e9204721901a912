"""Tacotron speed on this machine, for tacotron_8khz (DurationTacotron), tacotron_8khz_attention
and tacotron2_22khz at text length 60 and 250 mel frames:

    python benchmarks/tacotron_speed.py [--configs tacotron_8khz,tacotron_8khz_attention] [--steps 5] [--smoke]

Prints training examples/s (traced step) at batch 16 and 32, the traced/eager step
ratio at batch 16, free-running inference frames/s at batch 1, and the synthesis
real-time factor with Griffin-Lim (seconds of compute per second of audio). `--smoke`
measures one step of each at tiny sizes (gin/common/tiny.gin, text 10, 20 frames, batch 2).
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfaudio import compose as _registers_configurables  # noqa: E402,F401
from tfaudio import config  # noqa: E402
from tfaudio.experiment import build  # noqa: E402
from tfaudio.training.optimizers import make_optimizer  # noqa: E402

SIZES = {False: (60, 250, (16, 32)), True: (10, 20, (2,))}  # smoke: (text length, mel frames, batches)


def synthetic_batch(task, batch_size, text_length, frames):
    geometry = task.geometry
    samples = (frames - 1) * geometry.hop_length
    rng = np.random.default_rng(0)
    return {"audio": tf.constant(0.1 * rng.standard_normal((batch_size, samples)), tf.float32),
            "length": tf.fill([batch_size], samples),
            "text_ids": tf.constant(rng.integers(2, len(task.vocabulary), (batch_size, text_length)), tf.int32),
            "text_length": tf.fill([batch_size], text_length)}


def timed(fn, steps):
    fn()  # trace / warm up
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def measure(name, steps, smoke=False):
    text_length, frames, batch_sizes = SIZES[smoke]
    config.parse([f"{name}.gin"] + (["common/tiny.gin"] if smoke else []),
                 ["vocabulary.kind = 'characters'"] if smoke else [], finalize=False)
    model, task = build()
    optimizer = make_optimizer()
    optimizer.learning_rate.assign(1e-4)

    def train_step(batch):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(task.loss(model, batch, training=True)[0])
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

    traced = tf.function(train_step)
    rows = {}
    for batch_size in batch_sizes:
        batch = synthetic_batch(task, batch_size, text_length, frames)
        rows[f"train_ex_per_s_b{batch_size}"] = batch_size / timed(lambda: traced(batch), steps)
    first = batch_sizes[0]
    batch = synthetic_batch(task, first, text_length, frames)
    eager = timed(lambda: train_step(batch), max(1, steps // 2))
    rows["traced_vs_eager"] = eager / (first / rows[f"train_ex_per_s_b{first}"])

    one = synthetic_batch(task, 1, text_length, frames)
    decoder_steps = frames // model.reduction
    infer = tf.function(model.infer)
    decoding = task.decoding(model, synthesis=False)
    if model.autoregressive:
        decoding["stop_threshold"] = 2.0  # never stops: attention decodes all decoder_steps
    run = lambda: infer(one["text_ids"], one["text_length"], max_steps=tf.constant(decoder_steps), **decoding)  # noqa: E731
    seconds = timed(run, steps)
    out = run()
    made = int(out["steps"][0]) * model.reduction  # all frames with attention; the predicted durations' sum without
    rows["infer_frames_per_s"] = made / seconds
    start = time.perf_counter()
    wave = task.to_audio(out, 0, made)
    gl_seconds = time.perf_counter() - start
    rows["synthesis_rtf"] = (seconds + gl_seconds) / (len(wave) / task.geometry.sample_rate)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--configs", default="tacotron_8khz,tacotron_8khz_attention,tacotron2_22khz")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="one step of each at tiny sizes (for CI)")
    args = parser.parse_args()
    configs = "tacotron_8khz,tacotron_8khz_attention" if args.smoke else args.configs
    text_length, frames, _ = SIZES[args.smoke]
    print(f"text length {text_length}, {frames} mel frames, {os.cpu_count()} CPUs")
    for name in configs.split(","):
        rows = measure(name, 1 if args.smoke else args.steps, args.smoke)
        print(name + ": " + ", ".join(f"{k}={v:.3g}" for k, v in rows.items()), flush=True)


if __name__ == "__main__":
    main()
