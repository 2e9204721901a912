"""How fast do exported models run? Exports each run (SavedModel and TFLite) and times, on
one CPU thread, seconds of compute per second of audio for the SavedModel, the TFLite
file (when it converted with builtin ops only: this TensorFlow's interpreter has no Flex
delegate for TensorFlow ops) and tfaudio's own inference, on 10 s of audio (a 20-word
sentence for Tacotron, per second of synthesised audio).

    python benchmarks/export_speed.py --model_dirs runs/langid,runs/ctc,runs/openunmix_8khz [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

SENTENCE = "Please hold while we transfer your call to the next available agent who will be with you shortly."


def best_of(fn, repeats: int) -> float:
    fn()  # traced or warmed
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(run_dir: str, export_dir: str, repeats: int) -> dict:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from tfaudio.experiment import restore_for_inference

    with open(os.path.join(export_dir, "manifest.json")) as f:
        manifest = json.load(f)
    model, task = restore_for_inference(run_dir)
    loaded = tf.saved_model.load(os.path.join(export_dir, "saved_model"))
    rate = manifest["sample_rate"]
    audio = (0.1 * np.random.default_rng(0).normal(size=(1, 10 * rate))).astype(np.float32)
    family = manifest["family"]
    if family == "Tacotron":
        ids = np.array([task.vocabulary.encode(SENTENCE)], np.int32)
        length = np.array([ids.shape[1]], np.int32)
        out = loaded.synthesize(tf.constant(ids), tf.constant(length))
        seconds = int(out["frames"][0]) * task.geometry.hop_length / rate
        inputs = {"synthesize": (ids, length)}
        own = lambda: task.synthesize(model, [SENTENCE])  # noqa: E731
    elif family == "DilatedCTC":
        seconds, inputs = 10.0, {"transcribe": (audio, np.array([audio.shape[1]], np.int32))}
        own = lambda: task.transcribe(model, audio[0])  # noqa: E731
    elif family == "Classifier":
        seconds, inputs = 10.0, {"classify": (audio,)}
        own = lambda: task.probabilities(model, audio)  # noqa: E731
    else:
        channels = manifest["signatures"]["separate"]["inputs"]["audio"]["shape"]
        if len(channels) == 3:
            audio = np.repeat(audio[..., None], channels[2], axis=-1)
        seconds, inputs = 10.0, {"separate": (audio,)}
        own = lambda: task.separate(model, audio[0], 10.0, 0.0)  # noqa: E731
    result = {"family": family, "tfaudio": best_of(own, repeats) / seconds}
    for name, args in inputs.items():
        fn = getattr(loaded, name)
        result["saved_model"] = best_of(lambda: fn(*[tf.constant(a) for a in args]), repeats) / seconds
        lite = manifest["tflite"].get(name, {})
        if "file" in lite and not lite["tensorflow_ops"]:
            interpreter = tf.lite.Interpreter(os.path.join(export_dir, lite["file"]), num_threads=1)
            runner = interpreter.get_signature_runner(name)
            names = list(manifest["signatures"][name]["inputs"])
            result["tflite"] = best_of(lambda: runner(**dict(zip(names, args))), repeats) / seconds
        else:
            result["tflite"] = lite.get("error") or "needs TensorFlow (Flex) ops"
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dirs", default="", help="comma-separated run directories")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="runs/bench_export")
    parser.add_argument("--smoke", action="store_true", help="one repeat (for CI)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # run_dir=export_dir, in a child
    args = parser.parse_args()
    if args.smoke:
        args.repeats = 1
    if args.one:
        run_dir, export_dir = args.one.split("=")
        print(json.dumps(measure(run_dir, export_dir, args.repeats)))
        return
    print("| run | family | tfaudio | SavedModel | TFLite |  (seconds of compute per second of audio, 1 thread)")
    print("|---|---|---|---|---|")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for run_dir in args.model_dirs.split(","):
        export_dir = os.path.join(args.out, os.path.basename(os.path.normpath(run_dir)))
        subprocess.run([sys.executable, "-m", "tfaudio.export", f"--model_dir={run_dir}", f"--output={export_dir}",
                        "--format=both"], check=True, capture_output=True, env=env)
        out = subprocess.run([sys.executable, __file__, f"--one={run_dir}={export_dir}", f"--repeats={args.repeats}"],
                             check=True, capture_output=True, text=True, env=env)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        lite = f"{r['tflite']:.4f}" if isinstance(r["tflite"], float) else r["tflite"]
        print(f"| {run_dir} | {r['family']} | {r['tfaudio']:.4f} | {r['saved_model']:.4f} | {lite} |", flush=True)


if __name__ == "__main__":
    main()
