"""The seed's batch-size study: baseline, batch2x, batch4x and batch8x through accumulate_n,
matched by examples seen (k x the batch, 1/k of the steps, evaluations at the same
examples), each in its own run directory; then a comparison table and plot.

    python launch/batch_size_study.py --gin_file=gin/audio_unet.gin [--train_steps 3000] [--out runs/batch_size_study]
"""

import argparse

from study import macro, run_study


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gin_file", default="gin/audio_unet.gin")
    parser.add_argument("--train_steps", type=int, default=None, help="baseline steps (default: the gin file's)")
    parser.add_argument("--multipliers", default="1,2,4,8")
    parser.add_argument("--out", default="runs/batch_size_study")
    parser.add_argument("--gin_param", action="append", default=[])
    parser.add_argument("--dry_run", action="store_true")
    args = parser.parse_args()
    steps = args.train_steps or macro(args.gin_file, "train_steps")
    every = macro(args.gin_file, "eval_every")
    variants = []
    for k in map(int, args.multipliers.split(",")):
        prefix = "baseline_" if k == 1 else f"batch{k}x_"
        variants.append((prefix, [f"accumulate_n = {k}", f"train_steps = {max(1, steps // k)}",
                                  f"eval_every = {max(1, every // k)}"]))
    run_study("batch_size", args.gin_file, variants, args.out, args.gin_param, args.dry_run)


if __name__ == "__main__":
    main()
