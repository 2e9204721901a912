"""Do the classifiers classify real recordings they never heard? Trains each backbone on a
classification corpus for the same wall-clock budget, restores the run in this process
and classifies every file of the corpus' test split (real recordings: asterisk prompts
of five languages for langid, the ten asterisk digits for digits), whole files cut into
the run's crops with their predictions averaged; prints one table of accuracy, macro F1
and the in-training validation accuracy per backbone.

    python benchmarks/classifier_quality.py [--task langid|digits] [--backbones cnn,rnn,resnet18,...]
        [--minutes 15] [--out runs/bench_classifier] [--evaluate_only] [--smoke]

Prepares the corpus when missing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="langid", choices=["langid", "digits"])
    parser.add_argument("--backbones", default="cnn,rnn,resnet18,regnety800mf,resnet50,efficientnetv2s")
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget per backbone")
    parser.add_argument("--out", default="runs/bench_classifier")
    parser.add_argument("--evaluate_only", action="store_true", help="score the existing runs in --out")
    parser.add_argument("--smoke", action="store_true", help="the CNN, two steps at tiny sizes (for CI)")
    parser.add_argument("--score", default=None, help=argparse.SUPPRESS)  # one run, in a child process
    args = parser.parse_args()
    if args.score:
        print(json.dumps(score(args.score, args.task)))
        return
    if not os.path.exists(f"data/{args.task}/classes.txt"):
        subprocess.run([sys.executable, "-m", "tfaudio.prepare", args.task], check=True)
    table = ["| backbone | parameters | steps | minutes | val accuracy | test accuracy | test macro F1 |",
             "|---|---|---|---|---|---|---|"]
    budget = ["--gin_file=gin/common/tiny.gin"] if args.smoke else [f"--gin_param=Trainer.max_minutes = {args.minutes}"]
    for backbone in ("cnn",) if args.smoke else args.backbones.split(","):
        run_dir = os.path.join(args.out, f"{args.task}_{backbone}")
        start = time.time()
        if not args.evaluate_only:
            subprocess.run([sys.executable, "-m", "tfaudio.train", f"--gin_file=gin/classifier_{args.task}.gin",
                            f"--model_dir={run_dir}", "--tracker=none", *budget,
                            f"--gin_param=backbone = '{backbone}'"], check=True)
        minutes = (time.time() - start) / 60
        line = evaluate(run_dir, args.task, backbone, minutes)
        print(line, flush=True)
        table.append(line)
    print("\n".join(table))


def score(run_dir: str, task_name: str) -> dict:
    """The test split classified by the restored run: parameters, steps, accuracies, F1."""
    from tfaudio import config
    from tfaudio.audio.io import read_audio
    from tfaudio.data import readers
    from tfaudio.experiment import restore_for_inference
    from tfaudio.models.weights import parameter_count
    from tfaudio.run_dir import read_metrics
    from tfaudio.tasks.classification import LABELS_FILE, macro_f1

    model, task = restore_for_inference(run_dir)
    with open(os.path.join(run_dir, LABELS_FILE)) as f:
        labels = json.load(f)
    test = readers.read_class_folders(f"data/{task_name}", "test")
    crop, pad = config.query("AudioData.fixed_seconds"), config.query("AudioData.pad_method")
    confusion = np.zeros((len(labels), len(labels)), int)
    for e in test.examples:
        probs = task.classify(model, read_audio(e["path"], task.sample_rate)[:, 0], crop, pad)
        confusion[labels.index(test.labels[e["label"]]), int(np.argmax(probs))] += 1
    val = [r for r in read_metrics(run_dir) if r.get("split") == "val"][-1]
    return dict(params=parameter_count(model), steps=val["step"], val=val["accuracy"],
                test=float(np.trace(confusion) / confusion.sum()), f1=macro_f1(confusion), n=int(confusion.sum()))


def evaluate(run_dir: str, task_name: str, backbone: str, minutes: float) -> str:
    """One table row, scored in a fresh process so runs' graphs and configurations stay apart."""
    proc = subprocess.run([sys.executable, __file__, f"--score={run_dir}", f"--task={task_name}"],
                          capture_output=True, text=True, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    return (f"| {backbone} | {r['params']:,} | {r['steps']} | {minutes:.1f} | {r['val']:.3f} | "
            f"{r['test']:.3f} ({r['n']} files) | {r['f1']:.3f} |")


if __name__ == "__main__":
    main()
