"""A study along one axis: the same experiment with one gin binding set to each of a list
of values, each in its own run directory named `<name>-<value>_<experiment>`; then the
comparison table and plot. The Open-Unmix log's studies, each with
`python -m launch.axis_study --gin_file=gin/openunmix_8khz.gin` and

    --binding=OpenUnmix.hidden_size --values=128,256,512
    --binding=OpenUnmix.unidirectional --values=False,True
    --binding=SeparationData.samples_per_track --values=1,4,16
    --binding=batch_size --values=8,16,32

--minutes gives every run the same wall-clock budget (Trainer.max_minutes); --train_steps
the same number of updates. `batch_size` is a true batch (BatchNorm sees it), unlike the
batch-size study's accumulation.
"""

import argparse

from launch.study import run_study


def variants(binding: str, values: list[str], name: str | None = None) -> list[tuple[str, list[str]]]:
    """(run-name prefix, bindings) per value: `hidden_size-128_` for OpenUnmix.hidden_size = 128,
    `backbone-cnn_` for backbone = 'cnn'."""
    label = name or binding.rsplit(".", 1)[-1]
    return [(f"{label}-{value.strip(chr(39) + chr(34))}_", [f"{binding} = {value}"]) for value in values]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gin_file", required=True)
    parser.add_argument("--binding", required=True, help="a gin binding or macro, e.g. OpenUnmix.hidden_size")
    parser.add_argument("--values", required=True, help="comma-separated gin values")
    parser.add_argument("--name", default=None, help="the axis' name in run names (default: the parameter)")
    parser.add_argument("--train_steps", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock budget per run")
    parser.add_argument("--out", default=None, help="default: runs/<name>_study")
    parser.add_argument("--gin_param", action="append", default=[])
    parser.add_argument("--dry_run", action="store_true")
    args = parser.parse_args()
    extra = list(args.gin_param)
    if args.train_steps:
        extra.append(f"train_steps = {args.train_steps}")
    if args.minutes:
        extra.append(f"Trainer.max_minutes = {args.minutes}")
    axis = variants(args.binding, args.values.split(","), args.name)
    name = axis[0][0].split("-")[0]
    run_study(name, args.gin_file, axis, args.out or f"runs/{name}_study", extra, args.dry_run)


if __name__ == "__main__":
    main()
