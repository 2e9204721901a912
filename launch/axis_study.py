"""A study along one axis: the same experiment with one gin binding set to each of a list
of values, as a one-stage study (launch.run) whose runs are named
`<name>-<value>_<experiment>`; then its report. The Open-Unmix log's studies, each with
`python -m launch.axis_study --gin_file=gin/openunmix_8khz.gin --metric=val_ema/si_sdr_i --mode=max` and

    --binding=OpenUnmix.hidden_size --values=128,256,512
    --binding=OpenUnmix.unidirectional --values=False,True
    --binding=SeparationData.samples_per_track --values=1,4,16
    --binding=batch_size --values=8,16,32

--minutes gives every run the same wall-clock budget (Trainer.max_minutes); --train_steps
the same number of updates. `batch_size` is a true batch (BatchNorm sees it).
Execution flags as launch.run (--parallel, --backend ray, --out, --gin_param, --dry_run).
"""

import argparse

from launch.run import add_execution_flags, launch
from launch.spec import Stage, Study


def variants(binding: str, values: list[str], name: str | None = None) -> dict:
    """{variant: bindings} per value: `hidden_size-128` for OpenUnmix.hidden_size = 128,
    `backbone-cnn` for backbone = 'cnn'."""
    label = name or binding.rsplit(".", 1)[-1]
    return {f"{label}-{value.strip(chr(39) + chr(34))}": [f"{binding} = {value}"] for value in values}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gin_file", required=True, action="append")
    parser.add_argument("--binding", required=True, help="a gin binding or macro, e.g. OpenUnmix.hidden_size")
    parser.add_argument("--values", required=True, help="comma-separated gin values")
    parser.add_argument("--name", default=None, help="the axis' name in run names (default: the parameter)")
    parser.add_argument("--metric", default="val/loss", help="what the report ranks by, e.g. val_ema/si_sdr_i")
    parser.add_argument("--mode", choices=["min", "max"], default="min")
    parser.add_argument("--train_steps", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock budget per run")
    add_execution_flags(parser)
    args = parser.parse_args()
    axis = variants(args.binding, args.values.split(","), args.name)
    name = next(iter(axis)).split("-")[0]
    budget = ([f"train_steps = {args.train_steps}"] if args.train_steps else []) + (
        [f"Trainer.max_minutes = {args.minutes}"] if args.minutes else [])
    study = Study(name=name, question=f"How does {args.binding} change {args.metric}?", gin_files=args.gin_file,
                  bindings=budget, metric=args.metric, mode=args.mode, stages=[Stage(name, axis)])
    launch(study, args)


if __name__ == "__main__":
    main()
