"""The learning-rate study under exponential decay: 0.1x, 0.33x, 1x, 3x and 10x the
gin file's learning rate, each in its own run directory; then a comparison table and plot.

    python -m launch.lr_study --gin_file=gin/hybrid_unet.gin [--train_steps 3000] [--out runs/lr_study]
"""

import argparse

from launch.study import macro, run_study


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gin_file", default="gin/audio_unet.gin")
    parser.add_argument("--train_steps", type=int, default=None)
    parser.add_argument("--multipliers", default="0.1,0.33,1,3,10")
    parser.add_argument("--out", default="runs/lr_study")
    parser.add_argument("--gin_param", action="append", default=[])
    parser.add_argument("--dry_run", action="store_true")
    args = parser.parse_args()
    base = macro(args.gin_file, "learning_rate")
    extra = ["LearningRate.decay = @ExponentialDecay()"] + args.gin_param
    if args.train_steps:
        extra.append(f"train_steps = {args.train_steps}")
    variants = [(("baseline" if m == "1" else f"{m}x_lr") + "_explr_", [f"learning_rate = {base * float(m):.6g}"])
                for m in args.multipliers.split(",")]
    run_study("learning_rate", args.gin_file, variants, args.out, extra, args.dry_run)


if __name__ == "__main__":
    main()
