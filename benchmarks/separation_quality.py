"""How well does each separator family separate held-out mixtures, and does what
`tfaudio.separate` writes from the checkpoint score what training measured? Trains each
experiment on data/mixtures for the same wall-clock budget (Trainer.max_minutes, or the
gin file's train_steps if sooner), then separates the 56 held-out validation mixtures
with the CLI in a fresh process and computes SI-SDR improvement from the written files.

    python benchmarks/separation_quality.py [--models audio_unet,hybrid_unet,openunmix_8khz,openunmix_8khz_uni]
        [--minutes 15] [--train_steps N] [--without_ema] [--evaluate_only] [--seed 0] [--out runs/bench_separation]

For each run it prints the in-training validation si_sdr_i (val and val_ema) beside the
same number computed from `separate`'s WAVs of the same middle excerpts (one chunk each,
--overlap=0, so the model sees what the evaluation saw), with --ema and --noema, the
whole-track number (4 s chunks, Hann overlap-add) and, for Open-Unmix, whole tracks
through one Wiener iteration; then one table of all runs. --without_ema also trains each
model without EMA; --evaluate_only scores existing run directories. Prepares
data/mixtures when missing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import soundfile as sf


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Zero-mean scale-invariant SDR in dB (as the in-training metric)."""
    reference, estimate = reference - reference.mean(), estimate - estimate.mean()
    target = np.dot(estimate, reference) / max(np.dot(reference, reference), 1e-12) * reference
    return float(10 * np.log10(max(np.dot(target, target), 1e-12) / max(np.sum((estimate - target) ** 2), 1e-12)))


def excerpts(tracks: list[str], seconds: float | None, out: str) -> list[tuple[str, np.ndarray]]:
    """The middle `seconds` (None: all) of each track's mixture, written to `out` under the
    track's name; (path, target excerpt)."""
    os.makedirs(out, exist_ok=True)
    pairs = []
    for track in tracks:
        mixture, rate = sf.read(os.path.join(track, "mixture.wav"), dtype="float32")
        target, _ = sf.read(os.path.join(track, "speech.wav"), dtype="float32")
        n = len(mixture) if seconds is None else int(round(seconds * rate))
        start = 0 if seconds is None else int(round(max(0.0, (len(mixture) / rate - seconds) / 2) * rate))
        path = os.path.join(out, os.path.basename(track) + ".wav")
        sf.write(path, mixture[start:start + n], rate, subtype="FLOAT")
        pairs.append((path, target[start:start + n]))
    return pairs


def separated_si_sdr_i(run_dir: str, pairs, out: str, chunk_seconds: float, ema: bool, overlap: float = 0.5,
                       extra: tuple = ()) -> float:
    """Mean SI-SDR improvement of `python -m tfaudio.separate`'s written speech estimates."""
    cmd = [sys.executable, "-m", "tfaudio.separate", f"--model_dir={run_dir}", f"--output_dir={out}",
           f"--chunk_seconds={chunk_seconds}", f"--overlap={overlap}", "--ema" if ema else "--noema", *extra]
    cmd += [f"--input={p}" for p, _ in pairs]
    subprocess.run(cmd, check=True, capture_output=True)
    gains = []
    for path, target in pairs:
        mixture, _ = sf.read(path, dtype="float32")
        stem = os.path.splitext(os.path.basename(path))[0]
        estimate, _ = sf.read(os.path.join(out, f"{stem}_speech.wav"), dtype="float32")
        gains.append(si_sdr(target, estimate[:len(target)]) - si_sdr(target, mixture[:len(target)]))
    return float(np.mean(gains))


def train(name: str, run_dir: str, args, ema: bool) -> float:
    """Trains gin/<name>.gin into run_dir; returns the minutes it took."""
    budget = ["--gin_file=gin/common/tiny.gin"] if args.smoke else []
    params = [f"Trainer.max_minutes = {args.minutes}"] + \
        ([f"train_steps = {args.train_steps}"] if args.train_steps else []) + \
        ([] if ema else ["StepOptions.ema_decay = None"])
    start = time.time()
    subprocess.run([sys.executable, "-m", "tfaudio.train", f"--gin_file=gin/{name}.gin", *budget,
                    f"--model_dir={run_dir}", "--tracker=none", f"--seed={args.seed}"]
                   + [f"--gin_param={p}" for p in params], check=True)
    return (time.time() - start) / 60


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="audio_unet,hybrid_unet,openunmix_8khz,openunmix_8khz_uni")
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget per run")
    parser.add_argument("--train_steps", type=int, default=None, help="default: the gin file's")
    parser.add_argument("--without_ema", action="store_true", help="also train each model without EMA")
    parser.add_argument("--seed", type=int, default=0, help="tfaudio.train --seed (initialisation and data order)")
    parser.add_argument("--evaluate_only", action="store_true", help="score the existing runs in --out")
    parser.add_argument("--out", default="runs/bench_separation")
    parser.add_argument("--smoke", action="store_true", help="the unidirectional Open-Unmix, two steps at tiny sizes")
    args = parser.parse_args()
    if args.smoke:
        args.models = "openunmix_8khz_uni"
    from tfaudio.run_dir import read_metrics

    if not os.path.exists("data/mixtures/train"):
        subprocess.run([sys.executable, "-m", "tfaudio.prepare", "mixtures"], check=True)
    tracks = sorted(os.path.join("data/mixtures/valid", t) for t in os.listdir("data/mixtures/valid"))
    table = ["| run | steps | minutes | val si_sdr_i | val_ema si_sdr_i | whole tracks | + Wiener (1 iteration) |",
             "|---|---|---|---|---|---|---|"]
    for name in args.models.split(","):
        for ema in (True, False) if args.without_ema else (True,):
            run_dir = os.path.join(args.out, name + ("" if ema else "_noema"))
            minutes = float("nan") if args.evaluate_only else train(name, run_dir, args, ema)
            rows = read_metrics(run_dir)
            last = {s: [r for r in rows if r.get("split") == s][-1] for s in ("val", "val_ema") if ema or s == "val"}
            pairs = excerpts(tracks, 2.048, os.path.join(run_dir, "bench_excerpts"))
            line = f"{os.path.basename(run_dir)}: {last['val']['step']} steps in {minutes:.1f} min;"
            for split, use_ema in (("val_ema", True), ("val", False)) if ema else (("val", False),):
                written = separated_si_sdr_i(run_dir, pairs, os.path.join(run_dir, f"bench_{split}"), 2.048, use_ema,
                                             overlap=0.0)
                line += (f" {split} si_sdr_i in training {last[split]['si_sdr_i']:+.2f} dB, from separate's files "
                         f"{written:+.2f} dB ({'--ema' if use_ema else '--noema'});")
            whole = excerpts(tracks, None, os.path.join(run_dir, "bench_tracks"))
            whole_gain = separated_si_sdr_i(run_dir, whole, os.path.join(run_dir, "bench_whole"), 4.0, ema)
            line += f" whole tracks {whole_gain:+.2f} dB"
            wiener = "n/a"
            if name.startswith("openunmix"):
                gain = separated_si_sdr_i(run_dir, whole, os.path.join(run_dir, "bench_wiener"), 4.0, ema,
                                          extra=("--wiener_iterations=1",))
                line += f", with one Wiener iteration {gain:+.2f} dB"
                wiener = f"{gain:+.2f}"
            print(line, flush=True)
            ema_cell = f"{last['val_ema']['si_sdr_i']:+.2f}" if ema else "n/a"
            table.append(f"| {os.path.basename(run_dir)} | {last['val']['step']} | {minutes:.1f} | "
                         f"{last['val']['si_sdr_i']:+.2f} | {ema_cell} | {whole_gain:+.2f} | {wiener} |")
    print("\n".join(table))


if __name__ == "__main__":
    main()
