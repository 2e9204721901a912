"""How fast is Open-Unmix here? Parameter counts, training examples/s through the real
trainer, and the unidirectional model's inference real-time factor (offline and
streaming) on one thread.

    python benchmarks/openunmix_speed.py [--steps 15] [--out runs/bench_openunmix] [--precision mixed_bfloat16]
        [--smoke]

Training runs `python -m tfaudio.train` on synthetic stereo tracks written at the
shapes' sample rate (data reading included, as a user's run), and reports the mean
examples/s of the loops after the first (which traces). Shapes:
- reference: 44.1 kHz, B16 x 6 s stereo, n_fft 4096, hop 1024, 2049 bins cropped at
  16 kHz, hidden 512;
- small: 16 kHz, B16 x 3 s mono, n_fft 1024, hop 256, 513 bins, hidden 256.
Inference: a restored-weights-free model (speed does not depend on the weights), 10 s
of stereo at the reference shapes, TensorFlow limited to one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import soundfile as sf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = {
    "reference": dict(rate=44100, n_fft=4096, hop=1024, channels=2, hidden=512, bandwidth=16000.0, seconds=6.0),
    "small": dict(rate=16000, n_fft=1024, hop=256, channels=1, hidden=256, bandwidth=8000.0, seconds=3.0),
    "smoke": dict(rate=8000, n_fft=256, hop=64, channels=1, hidden=16, bandwidth=4000.0, seconds=1.0),
}


def tracks(folder: str, rate: int, seconds: float, n: int = 4):
    """MUSDB-layout noise tracks (speech + music stems) long enough for the excerpts."""
    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        for i in range(n):
            stems = {s: (0.1 * rng.normal(size=(int(rate * (seconds + 1)), 2))).astype(np.float32)
                     for s in ("speech", "music")}
            stems["mixture"] = stems["speech"] + stems["music"]
            for name, audio in stems.items():
                path = os.path.join(folder, split, f"t{i}", f"{name}.wav")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                sf.write(path, audio, rate, subtype="FLOAT")
    return folder


def train_speed(shape: str, unidirectional: bool, steps: int, out: str, precision: str = "float32") -> float:
    s = SHAPES[shape]
    data = tracks(os.path.join(out, f"data_{shape}"), s["rate"], s["seconds"])
    run = os.path.join(out, f"{shape}_{'uni' if unidirectional else 'bi'}_{precision}")
    params = [f"data_dir = '{data}'", "batch_size = 16", f"train_steps = {steps}", f"eval_every = {steps}",
              f"Trainer.steps_per_loop = {min(5, max(1, steps // 2))}", "Trainer.eval_batches = 1",
              "training_hooks.early_stopping = None", "training_hooks.plateau = None", "StepOptions.ema_decay = None",
              f"audio_geometry.sample_rate = {s['rate']}", f"audio_geometry.n_fft = {s['n_fft']}",
              f"audio_geometry.hop_length = {s['hop']}", f"OpenUnmix.channels = {s['channels']}",
              f"SeparationData.channels = {s['channels']}", f"OpenUnmix.hidden_size = {s['hidden']}",
              f"OpenUnmix.bandwidth = {s['bandwidth']}", f"OpenUnmix.unidirectional = {unidirectional}",
              f"SeparationData.segment_seconds = {s['seconds']}", "SeparationData.val_seconds = 1.0",
              "SeparationData.samples_per_track = 16", f"StepOptions.precision = '{precision}'"]
    cmd = [sys.executable, "-m", "tfaudio.train", "--gin_file=gin/openunmix_8khz.gin", f"--model_dir={run}",
           "--tracker=none"] + [f"--gin_param={p}" for p in params]
    subprocess.run(cmd, check=True, cwd=REPO, capture_output=True)
    rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
    rates = [r["examples_per_sec"] for r in rows if "loop_steps" in r][1:]
    return float(np.mean(rates))


def inference_speed(seconds: float = 10.0):
    """(parameters bi, parameters uni, offline RTF, streaming RTF) at the reference shapes
    on `seconds` of audio, one thread; runs in this process (call it in a fresh one)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import gin

    from tfaudio.models.openunmix import OpenUnmix, StreamingSeparator

    gin.parse_config(["audio_geometry.sample_rate = 44100", "audio_geometry.n_fft = 4096",
                      "audio_geometry.hop_length = 1024"])
    counts = {}
    for uni in (False, True):
        model = OpenUnmix(channels=2, hidden_size=512, unidirectional=uni)
        model(tf.zeros([1, 44100, 2]))
        counts[uni] = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    audio = (0.1 * np.random.default_rng(0).normal(size=(int(44100 * seconds), 2))).astype(np.float32)
    offline = tf.function(lambda x: model(x))
    offline(audio[None])
    start = time.perf_counter()
    offline(audio[None])
    offline_rtf = (time.perf_counter() - start) / seconds
    stream_rtf = {}
    for block in (4096, 16384):
        for timed in (False, True):  # the first pass traces the block step
            stream = StreamingSeparator(model)
            start = time.perf_counter()
            for i in range(0, len(audio), block):
                stream.push(audio[i:i + block])
            stream.flush()
            stream_rtf[block] = (time.perf_counter() - start) / seconds
    return counts[False], counts[True], offline_rtf, stream_rtf


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--out", default="runs/bench_openunmix")
    parser.add_argument("--inference_only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--skip_training", action="store_true", help="only parameters and inference speed")
    parser.add_argument("--precision", default="float32", help="training: StepOptions.precision, e.g. mixed_bfloat16")
    parser.add_argument("--smoke", action="store_true", help="1 s of inference, two training steps at tiny shapes")
    args = parser.parse_args()
    args.out = os.path.abspath(args.out)  # the training runs in the repository folder
    if args.inference_only:
        print(json.dumps(inference_speed(1.0 if args.smoke else 10.0)))
        return
    flags = ["--inference_only"] + (["--smoke"] if args.smoke else [])
    out = subprocess.run([sys.executable, __file__, *flags], check=True, capture_output=True,
                         text=True, cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    bi, uni, offline_rtf, stream_rtf = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"parameters at the reference shapes: bidirectional {bi:,}, unidirectional {uni:,}")
    print(f"unidirectional inference, 10 s stereo, one thread: offline RTF {offline_rtf:.3f}, streaming RTF "
          + ", ".join(f"{rtf:.3f} in {block}-sample blocks" for block, rtf in stream_rtf.items()))
    shapes = ("smoke",) if args.smoke else () if args.skip_training else ("reference", "small")
    for shape in shapes:
        for uni in (False,) if args.smoke else (False, True):
            rate = train_speed(shape, uni, 2 if args.smoke else args.steps, args.out, args.precision)
            print(f"training {shape} {'uni' if uni else 'bi'} ({args.precision}): {rate:.1f} examples/s")


if __name__ == "__main__":
    main()
