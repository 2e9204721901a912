"""Does attention align within budget? Trains tacotron_8khz_attention on espeak (1,500 steps,
guided-attention sigma 0.1: espeak keeps a steady rate) and asterisk (3,000 steps) and prints
the validation alignment numbers and wall time.

    python benchmarks/tacotron_alignment.py [--corpora espeak,asterisk] [--out runs/bench_alignment] [--smoke]

The bar: teacher-forced focus_rate >= 0.5 and diagonal_mass >= 0.9, and at least 80%
of validation sentences decoded free-running stop by themselves with a monotone
alignment (free_aligned >= 0.8). Prepares a missing corpus with tfaudio.prepare.
"""

import argparse
import json
import os
import subprocess
import sys
import time

GIN_FILE = "gin/tacotron_8khz_attention.gin"
EXPERIMENTS = {"espeak": (1500, ["data_dir = 'data/espeak'", "TacotronTask.guided_sigma = 0.1"]),
               "asterisk": (3000, [])}


def meets_bar(row: dict) -> bool:
    return row["focus_rate"] >= 0.5 and row["diagonal_mass"] >= 0.9 and row["free_aligned"] >= 0.8


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpora", default="espeak,asterisk")
    parser.add_argument("--out", default="runs/bench_alignment")
    parser.add_argument("--smoke", action="store_true", help="asterisk, two steps at tiny sizes (for CI)")
    args = parser.parse_args()
    for corpus in ("asterisk",) if args.smoke else args.corpora.split(","):
        steps, params = EXPERIMENTS[corpus]
        smoke = ["--gin_file=gin/common/tiny.gin", "--gin_param=vocabulary.kind = 'characters'"] if args.smoke else []
        steps = 2 if args.smoke else steps
        if not os.path.isfile(f"data/{corpus}/metadata.csv"):
            subprocess.run([sys.executable, "-m", "tfaudio.prepare", corpus], check=True)
        run_dir = os.path.join(args.out, corpus)
        start = time.time()
        subprocess.run([sys.executable, "-m", "tfaudio.train", f"--gin_file={GIN_FILE}", *smoke,
                        f"--model_dir={run_dir}",
                        f"--gin_param=train_steps = {steps}", *(f"--gin_param={p}" for p in params),
                        "--tracker=none"], check=True)
        wall = time.time() - start
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            evals = [r for r in map(json.loads, f) if r.get("split") == "val"]
        first = next((r["step"] for r in evals if meets_bar(r)), None)
        last = evals[-1]
        print(f"{corpus}: {steps} steps in {wall / 60:.1f} min; first step meeting the bar: {first}; final "
              + " ".join(f"{k}={last[k]:.3f}" for k in ("loss", "focus_rate", "diagonal_mass", "monotone",
                                                         "free_stopped", "free_aligned", "free_focus_rate")),
              flush=True)


if __name__ == "__main__":
    main()
