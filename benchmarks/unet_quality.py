"""Separation quality within budget: trains gin/audio_unet.gin and gin/hybrid_unet.gin with
their defaults on data/mixtures and prints the validation SI-SDR improvement (raw and EMA
weights) and wall time. The bar: the waveform U-Net reaches >= +6 dB within 15 minutes
of training on 2 CPU cores.

    python benchmarks/unet_quality.py [--models audio_unet,hybrid_unet] [--out runs/bench_unet]
"""

import argparse
import json
import os
import subprocess
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="audio_unet,hybrid_unet")
    parser.add_argument("--out", default="runs/bench_unet")
    args = parser.parse_args()
    if not os.path.isdir("data/mixtures/train"):
        subprocess.run([sys.executable, "-m", "tfaudio.prepare", "mixtures"], check=True)
    for name in args.models.split(","):
        run_dir = os.path.join(args.out, name)
        start = time.time()
        subprocess.run([sys.executable, "-m", "tfaudio.train", f"--gin_file=gin/{name}.gin",
                        f"--model_dir={run_dir}", "--tracker=none"], check=True)
        wall = time.time() - start
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            rows = [json.loads(line) for line in f]
        val = [r for r in rows if r.get("split") == "val"]
        ema = [r for r in rows if r.get("split") == "val_ema"]
        train_wall = max(r["wall_s"] for r in rows if "wall_s" in r)
        first = next((r for r in val if r["si_sdr_i"] >= 6.0), None)
        print(f"{name}: {val[-1]['step']} steps, training wall {train_wall / 60:.1f} min (process {wall / 60:.1f} min); "
              f"val si_sdr_i {val[-1]['si_sdr_i']:+.2f} dB (EMA {ema[-1]['si_sdr_i']:+.2f} dB), si_sdr "
              f"{val[-1]['si_sdr']:.2f} dB; first +6 dB: "
              + (f"step {first['step']}" if first else "not reached"), flush=True)


if __name__ == "__main__":
    main()
