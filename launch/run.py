"""Runs a study spec stage by stage and writes its report.

    python -m launch.run launch/specs/ctc_sequential.py [--out runs/studies/ctc_sequential]
        [--backend local|ray] [--parallel 2] [--ray_address auto] [--gin_param BINDING] [--dry_run]
        [--gin_file gin/other.gin]  (another base experiment for the same stages)

Each run is `python -m tfaudio.train` in `<out>/<stage>/<variant>_<experiment>`, with the
base bindings, the earlier stages' winning bindings and its variant's. A stage waits for
its runs, picks its winner from their metrics.jsonl and hands its bindings to the next
stage. Re-running the same command skips finished runs (a `study_run.json` with exit
code 0, and no preemption after the last training) and continues interrupted ones from
their checkpoints (Ctrl-C stops every run at its current step, saved); a failed run is
reported and left out of the choice. `<out>/study.json` holds the study's state; at the end
`python -m tfaudio.report <out>` writes `<out>/report.md` with its plots.

Backends (launch/backends.py): `local` runs N at a time (--parallel), splitting the CPU
threads between them; `ray` submits each run as a Ray task to a running cluster
(`--ray_address`, default a local instance), on shared storage.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys

from launch import halving
from launch import spec as specs
from launch.backends import LocalBackend, RayBackend, finished, record, request_stop, write_json


def metric_value(run_dir: str, metric: str, mode: str, at: str) -> float | None:
    """The run's `metric` ("split/name") at its final evaluation, or its best one."""
    values = halving.evaluations(run_dir, metric)
    if not values:
        return None
    return values[-1] if at == "final" else (min(values) if mode == "min" else max(values))


def train_command(gin_files: list[str], run_dir: str, prefix: str, study: str, bindings: list[str]) -> list[str]:
    return ([sys.executable, "-m", "tfaudio.train"] + [f"--gin_file={g}" for g in gin_files] +
            [f"--model_dir={run_dir}", f"--run_name={prefix}", f"--study={study}", "--tracker=tensorboard"] +
            [f"--gin_param={b}" for b in bindings])


def run_study(study: specs.Study, out: str, backend, dry_run: bool = False, log=print) -> dict:
    """Runs every stage; returns the study state (also written to <out>/study.json)."""
    experiment = os.path.splitext(os.path.basename(study.gin_files[0]))[0]  # later files are overlays
    state = {"name": study.name, "question": study.question, "gin_files": study.gin_files,
             "bindings": study.bindings, "stages": []}
    winners: list[list[str]] = []
    trained: dict[tuple, str] = {}  # the settings of every run so far -> its run directory
    for index, stage in enumerate(study.stages):
        metric, mode, at = study.rule(stage)
        opt = specs.Opt(study, winners)
        variants = specs.variants_of(stage, opt)
        stage_dir = os.path.join(out, f"{index + 1}-{stage.name}")
        runs, jobs = {}, []
        for variant, bindings in variants.items():
            settings = tuple(sorted((k, repr(v)) for k, v in specs.Opt(study, winners + [bindings]).bindings.items()))
            if settings in trained:  # e.g. the stage's <OPT> variant: the earlier run is its run
                runs[variant] = {"run_dir": trained[settings], "bindings": bindings, "same_as": trained[settings]}
                log(f"  {variant}: the settings of {trained[settings]}, not trained again")
                continue
            run_dir = trained[settings] = os.path.join(stage_dir, f"{variant}_{experiment}")
            command = train_command(study.gin_files, run_dir, f"{variant}_", study.name,
                                    list(study.bindings) + [b for w in winners for b in w] + bindings)
            runs[variant] = {"run_dir": run_dir, "bindings": bindings}
            log("$ " + " ".join(shlex.quote(c) for c in command))
            if not finished(run_dir):
                jobs.append((command, run_dir))
            else:
                log(f"  finished before: {run_dir}")
        if dry_run:
            winners.append(next(iter(variants.values())))
            continue
        stopped = []
        asha = stage.early_stopping or study.early_stopping
        losers = contextlib.nullcontext() if asha is None else halving.StopLosers(
            asha, metric, mode, [r["run_dir"] for r in runs.values()], [run_dir for _, run_dir in jobs], request_stop,
            log=log)
        with losers:
            records = backend.run(jobs)
        for (command, run_dir), done in zip(jobs, records):
            if done["returncode"] != 0:
                log(f"  failed (exit {done['returncode']}): {run_dir}; see {run_dir}/study_stdout.log")
            elif not finished(run_dir):
                stopped.append(run_dir)
        if stopped:  # Ctrl-C or SIGTERM: every run saved; pick no winner from half-trained runs
            raise SystemExit(f"stage {stage.name!r}: {len(stopped)} run(s) stopped by a signal and saved; run the "
                             "same command again to resume the study")
        scored = {}
        for variant, run in runs.items():
            run["failed"] = not finished(run["run_dir"])
            run["value"] = None if run["failed"] else metric_value(run["run_dir"], metric, mode, at)
            run["stopped_early"] = record(run["run_dir"]).get("stopped_early")
            if run["value"] is not None and not run["stopped_early"]:
                scored[variant] = run["value"]
        if not scored:
            raise SystemExit(f"stage {stage.name!r}: no run finished with {metric}; see the study_stdout.log files")
        winner = (min if mode == "min" else max)(scored, key=scored.get)
        winners.append(variants[winner])
        state["stages"].append({"name": stage.name, "metric": metric, "mode": mode, "at": at, "winner": winner,
                                "runs": runs, "opt": specs.Opt(study, winners).as_bindings()})
        log(f"stage {stage.name}: {winner} wins with {metric} = {scored[winner]:.4g} ({at}, {mode})")
        _write_state(out, state)
    if not dry_run:
        state["opt"] = specs.Opt(study, winners).as_bindings()
        _write_state(out, state)
    return state


def _write_state(out: str, state: dict):
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "study.json"), state, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec")
    add_execution_flags(parser)
    parser.add_argument("--gin_file", action="append", default=[],
                        help="the base experiment instead of the spec's (repeat for several files)")
    args = parser.parse_args()
    study = specs.load(args.spec)
    if args.gin_file:
        study.gin_files = args.gin_file
    launch(study, args)


def add_execution_flags(parser: argparse.ArgumentParser):
    """The flags of where and how a study runs (shared with launch.axis_study)."""
    parser.add_argument("--out", default=None, help="default: runs/studies/<study name>")
    parser.add_argument("--backend", choices=["local", "ray"], default="local")
    parser.add_argument("--parallel", type=int, default=1, help="local: runs at a time")
    parser.add_argument("--ray_address", default=None, help="ray: a cluster address (default: a local instance)")
    parser.add_argument("--gin_param", action="append", default=[],
                        help="a binding added to the base of every run, e.g. 'Trainer.max_minutes = 1'")
    parser.add_argument("--dry_run", action="store_true", help="print the first variant path's commands")


def launch(study: specs.Study, args: argparse.Namespace):
    """Runs `study` as the execution flags say, then writes its report."""
    study.bindings = list(study.bindings) + args.gin_param
    out = args.out or os.path.join("runs", "studies", study.name)
    backend = None if args.dry_run else (
        RayBackend(args.ray_address) if args.backend == "ray" else LocalBackend(args.parallel))
    run_study(study, out, backend, args.dry_run)
    if not args.dry_run:
        from tfaudio.report import write_report

        print(f"wrote {write_report(out)}")


if __name__ == "__main__":
    main()
