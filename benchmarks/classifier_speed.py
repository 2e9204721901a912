"""How big and how fast is each classifier backbone? For every backbone at a common input
(one-channel log-mel of 4 s crops at 8 kHz, 64 mel bands, 10 ms frames), prints the
trainable parameters (backbone and whole classifier), training examples/s of a traced
step at batch 16 (both CPU cores), and inference milliseconds per 10 s clip on one
thread (a traced forward pass, median of --repeats).

    python benchmarks/classifier_speed.py [--backbones cnn,rnn,...] [--steps 5] [--repeats 5] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

GEOMETRY = ["audio_geometry.sample_rate = 8000", "audio_geometry.n_fft = 256", "audio_geometry.win_length = 256",
            "audio_geometry.hop_length = 80", "audio_geometry.n_mels = 64"]


def measure(backbone: str, steps: int, repeats: int) -> dict:
    """Runs in a fresh process per backbone so thread settings and graphs stay apart."""
    import gin
    import keras
    import tensorflow as tf

    from tfaudio.models.classifier import Classifier
    from tfaudio.models.weights import parameter_count

    gin.parse_config(GEOMETRY)
    model = Classifier(num_classes=5, backbone=backbone)
    wave = tf.random.normal([16, 32000], stddev=0.1)
    labels = tf.constant(np.arange(16) % 5)
    optimizer = keras.optimizers.Adam(1e-3)
    model(wave[:1])

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            logits = model(wave, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    train_step()  # traced
    start = time.perf_counter()
    for _ in range(steps):
        train_step()
    examples_per_sec = 16 * steps / (time.perf_counter() - start)
    return {"backbone": parameter_count(model.backbone), "total": parameter_count(model),
            "examples_per_sec": examples_per_sec}


def inference_ms(backbone: str, repeats: int) -> float:
    import gin
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from tfaudio.models.classifier import Classifier

    gin.parse_config(GEOMETRY)
    model = Classifier(num_classes=5, backbone=backbone)
    clip = tf.random.normal([1, 80000], stddev=0.1)
    forward = tf.function(lambda x: model(x, training=False))
    forward(clip)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(clip).numpy()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="cnn,rnn,resnet18,regnety800mf,resnet50,efficientnetv2s")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="the CNN, one step, one repeat (for CI)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # backbone:part, run in a child
    args = parser.parse_args()
    if args.smoke:
        args.backbones, args.steps, args.repeats = "cnn", 1, 1
    if args.one:
        backbone, part = args.one.split(":")
        result = measure(backbone, args.steps, args.repeats) if part == "train" else \
            {"ms": inference_ms(backbone, args.repeats)}
        print(json.dumps(result))
        return
    print("| backbone | backbone parameters | classifier parameters | training examples/s (batch 16, 4 s) | "
          "inference ms per 10 s clip (1 thread) |")
    print("|---|---|---|---|---|")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for backbone in args.backbones.split(","):
        results = {}
        for part in ("train", "infer"):
            out = subprocess.run([sys.executable, __file__, f"--one={backbone}:{part}", f"--steps={args.steps}",
                                  f"--repeats={args.repeats}"], capture_output=True, text=True, check=True, env=env)
            results.update(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"| {backbone} | {results['backbone']:,} | {results['total']:,} | {results['examples_per_sec']:.1f} | "
              f"{results['ms']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
