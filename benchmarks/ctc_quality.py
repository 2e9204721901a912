"""Does the dilated CTC recogniser transcribe speech it never heard? Trains the CPU-sized
recogniser on espeak and real asterisk speech for a fixed wall-clock budget, restores
it in this (fresh) process, and transcribes the run's held-out split (by normalised
text, so no held-out sentence was trained on), separately for the espeak sentences and
the real asterisk prompts, greedy and beam. Prints corpus-level CER and WER (summed
edits over summed reference lengths), a few real prompts beside their references,
training examples/s, and the transcription real-time factor on one CPU thread.

    python benchmarks/ctc_quality.py [--gin_file gin/ctc_dilated_small.gin] [--minutes 15] [--beam_width 8]
        [--out runs/bench_ctc] [--evaluate_only] [--smoke]

Prepares data/espeak and data/asterisk when missing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def edit_distance(a, b) -> int:
    """Levenshtein distance between two sequences."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def error_rates(pairs) -> tuple[float, float]:
    """(CER, WER) of (reference, hypothesis) pairs, corpus level."""
    chars = sum(edit_distance(r, h) for r, h in pairs) / max(1, sum(len(r) for r, _ in pairs))
    words = sum(edit_distance(r.split(), h.split()) for r, h in pairs) / max(1, sum(len(r.split()) for r, _ in pairs))
    return chars, words


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gin_file", default="gin/ctc_dilated_small.gin")
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget")
    parser.add_argument("--beam_width", type=int, default=8)
    parser.add_argument("--out", default="runs/bench_ctc")
    parser.add_argument("--evaluate_only", action="store_true", help="score the existing run in --out")
    parser.add_argument("--smoke", action="store_true", help="two steps at tiny sizes (for CI)")
    args = parser.parse_args()
    budget = ["--gin_file=gin/common/tiny.gin"] if args.smoke else [f"--gin_param=Trainer.max_minutes = {args.minutes}"]
    for corpus in ("espeak", "asterisk"):
        if not os.path.exists(f"data/{corpus}/metadata.csv"):
            subprocess.run([sys.executable, "-m", "tfaudio.prepare", corpus], check=True)
    if not args.evaluate_only:
        subprocess.run([sys.executable, "-m", "tfaudio.train", f"--gin_file={args.gin_file}", f"--model_dir={args.out}",
                        "--tracker=none", *budget], check=True)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from tfaudio.audio.io import read_audio
    from tfaudio.data.audio_data import AudioData
    from tfaudio.experiment import restore_for_inference
    from tfaudio.run_dir import read_metrics

    model, task = restore_for_inference(args.out)
    data = AudioData()  # the run's corpora and split, from its operative config
    train_rows = [r for r in read_metrics(args.out) if "split" not in r and "event" not in r][1:]
    rate = sum(r["examples_per_sec"] for r in train_rows) / max(1, len(train_rows))
    last = [r for r in read_metrics(args.out) if r.get("split") == "val"][-1]
    print(f"{args.out}: {last['step']} steps, {rate:.1f} training examples/s; in-training validation "
          f"CER {last['cer']:.3f} WER {last['wer']:.3f} (greedy)")
    audio_seconds = compute_seconds = 0.0
    for corpus in ("espeak", "asterisk"):
        examples = [e for e in data.val_corpus.examples if f"/{corpus}/" in e["path"]]
        waves = [read_audio(e["path"], task.sample_rate)[:, 0] for e in examples]
        references = [task.vocab.decode(e["text_ids"]) for e in examples]
        for beam in (1, args.beam_width):
            task.beam_width = beam
            start = time.perf_counter()
            hypotheses = [task.transcribe(model, w) for w in waves]
            if beam == 1:
                compute_seconds += time.perf_counter() - start
                audio_seconds += sum(len(w) for w in waves) / task.sample_rate
            cer, wer = error_rates(list(zip(references, hypotheses)))
            print(f"held-out {corpus} ({len(examples)} clips), {'greedy' if beam == 1 else f'beam {beam}'}: "
                  f"CER {cer:.3f} WER {wer:.3f}", flush=True)
        if corpus == "asterisk":
            for reference, hypothesis in list(zip(references, hypotheses))[:8]:
                print(f"  reference:  {reference}\n  recognised: {hypothesis}")
    print(f"transcription real-time factor on one thread (greedy): {compute_seconds / audio_seconds:.4f}")


if __name__ == "__main__":
    main()
