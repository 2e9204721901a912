"""The batch-size study: baseline, batch2x, batch4x and batch8x through Trainer.batch_multiplier,
matched by examples seen (k x the batch, 1/k of the updates, evaluations at the same
examples, the learning-rate schedule at the same point for the same examples), each in
its own run directory; then a comparison table and plot.

    python -m launch.batch_size_study --gin_file=gin/audio_unet.gin [--train_steps 3000] [--out runs/batch_size_study]
"""

import argparse

from launch.study import run_study


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gin_file", default="gin/audio_unet.gin")
    parser.add_argument("--train_steps", type=int, default=None, help="baseline steps (default: the gin file's)")
    parser.add_argument("--multipliers", default="1,2,4,8")
    parser.add_argument("--out", default="runs/batch_size_study")
    parser.add_argument("--gin_param", action="append", default=[])
    parser.add_argument("--dry_run", action="store_true")
    args = parser.parse_args()
    extra = args.gin_param + ([f"train_steps = {args.train_steps}"] if args.train_steps else [])
    variants = [("baseline_" if k == 1 else f"batch{k}x_", [f"Trainer.batch_multiplier = {k}"])
                for k in map(int, args.multipliers.split(","))]
    run_study("batch_size", args.gin_file, variants, args.out, extra, args.dry_run)


if __name__ == "__main__":
    main()
