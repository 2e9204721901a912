"""`python -m tfaudio.report FOLDER [--metric val/loss --mode min]`: the experiment log of
a study, written from its runs' files (`study.json` from `python -m launch.run`, each
run's metrics.jsonl and study_run.json), or of a folder of runs started by hand (one
table, each run's settings the operative-config bindings in which the runs differ, the
winner by --metric): the question; its answer at matched budgets (each variant's metric
at the examples seen and at the training minutes every run reached, against the stage's
first variant); the base settings; one section per stage with a table of its variants
(the varied bindings; final and best validation metric for raw and EMA weights;
held-out prompts understood, when benchmarks/tts_intelligibility.py listened to the run,
and the step at which its synthesis first spoke, when it listened at each checkpoint;
for attention, the first evaluation step at which free-running decoding aligned on half
the validation prompts; examples seen, wall time, examples/s, parameters; skipped
non-finite updates, loss spikes, the guard's rollbacks and stop), the stage's winner and
the settings carried forward, plots of the validation metric against examples seen and
wall clock (one line per variant, PNGs beside the report), and the winning configuration
as gin bindings. Writes STUDY_DIR/report.md and returns its path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from tfaudio import cli
from tfaudio.run_dir import OPERATIVE_CONFIG, has_metrics, read_metrics


def _cell(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def run_summary(run_dir: str, metric: str, mode: str) -> dict:
    """The table columns of one run, from its files (None where a file has no value)."""
    split, name = metric.split("/", 1)
    rows = read_metrics(run_dir) if has_metrics(run_dir) else []
    train = [r for r in rows if "split" not in r and "event" not in r]
    model = next((r for r in rows if r.get("event") == "model"), {})
    pick = min if mode == "min" else max
    out = {}
    for which in (split, f"{split}_ema" if not split.endswith("_ema") else split):
        values = [r[name] for r in rows if r.get("split") == which and name in r]
        out[f"{which}/{name} final"] = values[-1] if values else None
        out[f"{which}/{name} best"] = pick(values) if values else None
    # The processes' wall time (study_run.json, summed over attempts, start-up included) or
    # the training time the checkpoints carried, whichever is longer: a killed attempt
    # writes no study_run.json, start-up is in no training row.
    walls = [train[-1]["wall_s"]] if train else []
    try:
        with open(os.path.join(run_dir, "study_run.json")) as f:
            walls.append(json.load(f)["wall_s"])
    except (OSError, ValueError, KeyError):
        pass
    wall = max(walls) / 60 if walls else None
    # Each loop's rate weighted by its duration (a plain mean of rates favours short loops);
    # the first loop, which traces, is left out.
    timed = [(r["examples_per_sec"], r.get("loop_steps", 1) / r.get("steps_per_sec", 1)) for r in train[1:] or train]
    seconds = sum(t for _, t in timed)
    last = train[-1] if train else {}
    batch = (f"{last['effective_batch']} ({last.get('batch_mode', 'accumulate')}, micro-batch {last['micro_batch']})"
             if "micro_batch" in last else last.get("effective_batch"))
    events = [r["event"] for r in rows if "event" in r]
    divergence = {"skipped updates": sum(r.get("skipped_updates", 0) for r in train),
                  "loss spikes": events.count("loss_spike"), "rollbacks": events.count("rollback"),
                  "guard stop": events.count("guard_stop")}
    heard = _heard(run_dir)
    if heard:  # listened to: held-out prompts understood, synthesis (real recordings)
        out["heard (real)"] = heard
    speaks = _speaks(run_dir)
    if speaks:  # listened to at each kept checkpoint: when speech emerged
        out["speaks at step"] = speaks
    aligned = [r for r in rows if r.get("split") == split and "free_aligned" in r]
    if aligned:  # attention emerged: free-running decoding aligned on half the prompts or more
        out["aligned at step"] = next((r["step"] for r in aligned if r["free_aligned"] >= 0.5), "not yet")
    out.update({"batch": batch, "examples seen": train[-1]["examples_seen"] if train else None, "wall min": wall,
                "examples/s": sum(rate * t for rate, t in timed) / seconds if seconds else None,
                "parameters": model.get("parameters"),
                "divergence": ", ".join(f"{k} {n}" for k, n in divergence.items() if n) or "none"})
    return out


def evaluations(run_dir: str, metric: str) -> list[tuple]:
    """(examples seen, training seconds, value) of each evaluation of `metric` in a run;
    the seconds are the wall_s of the training row at the evaluation's step (None without)."""
    split, name = metric.split("/", 1)
    rows = read_metrics(run_dir) if has_metrics(run_dir) else []
    walls = {r["step"]: r["wall_s"] for r in rows if "wall_s" in r and "split" not in r}
    return [(r.get("examples_seen"), walls.get(r["step"]), r[name])
            for r in rows if r.get("split") == split and name in r]


# Runs stopped by one wall-clock budget (Trainer.max_minutes) evaluate last within seconds
# of each other: on the seconds axis, an evaluation this close past the budget is within it.
WALL_SLACK = 0.05


def _at_budget(curves: dict, axis: int) -> tuple:
    """The budget on `axis` (0 examples, 1 seconds) that every run reached, and each run's
    value at its last evaluation within it ({variant: value}, a run without one left out)."""
    reached = [max(p[axis] for p in c if p[axis] is not None) for c in curves.values()
               if any(p[axis] is not None for p in c)]
    if len(reached) < len(curves):
        return None, {}
    budget = min(reached)
    limit = budget * (1 + WALL_SLACK) if axis == 1 else budget
    values = {}
    for variant, curve in curves.items():
        within = [p[2] for p in curve if p[axis] is not None and p[axis] <= limit]
        if within:
            values[variant] = within[-1]
    return budget, values


def stage_answer(stage: dict) -> list[str]:
    """The stage's question answered at matched budgets: each variant's metric at the
    examples seen and at the training minutes every run reached, best first, each against
    the stage's first variant; [] with fewer than two runs evaluated."""
    metric, mode = stage["metric"], stage["mode"]
    curves = {v: evaluations(r["run_dir"], metric) for v, r in stage["runs"].items() if not r.get("failed")}
    curves = {v: c for v, c in curves.items() if c}
    if len(curves) < 2:
        return []
    first = next(iter(curves))
    lines = [f"**{stage['name']}** (`{metric}`, {'lower' if mode == 'min' else 'higher'} is better; "
             f"against `{first}`, the first variant):"]
    for axis, label in ((0, "Per example seen: at {:,.0f} examples"), (1, "Per minute: at {:.1f} training minutes")):
        budget, values = _at_budget(curves, axis)
        if not values:
            continue
        ranked = sorted(values, key=values.get, reverse=mode == "max")
        cells = [f"**{v}** {_cell(values[v])}" if i == 0 else f"{v} {_cell(values[v])}" for i, v in enumerate(ranked)]
        if first in values:
            cells = [c + ("" if v == first else f" ({values[v] - values[first]:+.3g})") for c, v in zip(cells, ranked)]
        cells += [f"{v} not evaluated yet" for v in curves if v not in values]
        beat = sum((values[v] < values[first]) if mode == "min" else (values[v] > values[first])
                   for v in values if v != first) if first in values else None
        verdict = "" if beat is None else f"; {beat} of {len(values) - 1} beat `{first}`"
        lines.append(f"- {label.format(budget if axis == 0 else budget / 60)}, as far as every run got: "
                     + ", ".join(cells) + verdict + ".")
    return lines


def _heard(run_dir: str) -> str | None:
    """'<synthesis>/<prompts> (<real>)': held-out prompts the listener understood, from
    benchmarks/tts_intelligibility.py's listening/summary.json (None without one)."""
    try:
        with open(os.path.join(run_dir, "listening", "summary.json")) as f:
            summary = json.load(f)
        return f"{summary['synthesis']['exact']}/{summary['synthesis']['of']} ({summary['real']['exact']})"
    except (OSError, ValueError, KeyError):
        return None


def _speaks(run_dir: str) -> str | None:
    """The first step whose synthesis the listener understood 0.7x as often as the real
    recordings, or 'not yet (best <k>/<n> at <step>)' (none understood: at how many),
    from tts_intelligibility.py --each_checkpoint's listening/by_step.json (None without one)."""
    try:
        with open(os.path.join(run_dir, "listening", "by_step.json")) as f:
            listened = json.load(f)
        if listened["speaks_at"] is not None:
            return str(listened["speaks_at"])
        best = max(listened["steps"], key=lambda r: (r["exact"], -r["step"]))
        if not best["exact"]:
            return f"not yet (0/{best['of']} at each of {len(listened['steps'])} steps)"
        return f"not yet (best {best['exact']}/{best['of']} at {best['step']})"
    except (OSError, ValueError, KeyError):
        return None


def plot_stage(stage: dict, path_prefix: str) -> list[str]:
    """Validation metric against examples seen and against wall clock; the PNG names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for axis, (x_key, label) in enumerate((("examples_seen", "examples seen"), ("wall_s", "wall clock (s)"))):
        fig, ax = plt.subplots(figsize=(7, 4))
        for variant, run in stage["runs"].items():
            points = [(p[axis], p[2]) for p in evaluations(run["run_dir"], stage["metric"]) if p[axis] is not None]
            if points:
                ax.plot(*zip(*points), marker="o", label=variant + (" (winner)" if variant == stage["winner"] else ""))
        values = [y for line in ax.get_lines() for y in line.get_ydata()]
        if values and min(values) > 0 and max(values) > 20 * min(values):  # spikes would flatten the rest
            ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(stage["metric"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        png = f"{path_prefix}_{'examples' if x_key == 'examples_seen' else 'wall'}.png"
        fig.savefig(png, dpi=110)
        plt.close(fig)
        names.append(os.path.basename(png))
    return names


def _stage_and_run(run_dir: str) -> str:
    """`<stage>/<run>`: where a run lives inside its study folder, wherever that was read from."""
    return os.path.join(*os.path.normpath(run_dir).split(os.sep)[-2:])


def operative_bindings(run_dir: str) -> dict[str, str]:
    """{binding or macro: value} of a run's operative_config.gin ({} without one)."""
    bindings, key = {}, None
    path = os.path.join(run_dir, OPERATIVE_CONFIG)
    if not os.path.exists(path):
        return bindings
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line[:1].isspace() and line.strip() and key:  # a value continued on the next lines
                bindings[key] = (bindings[key] + " " + line.strip()).strip()
            elif " = " in line and not line.startswith("#"):
                name, value = line.split(" = ", 1)
                key = name.strip()
                bindings[key] = value.strip().rstrip("\\").strip()
    return bindings


def folder_state(folder: str, metric: str, mode: str) -> dict:
    """A one-stage study of the runs in `folder` (each a sub-folder with metrics.jsonl):
    each run's settings are the bindings in which the runs differ; the winner is the
    best final `metric`."""
    names = sorted(d for d in os.listdir(folder) if has_metrics(os.path.join(folder, d)))
    cli.need(names, f"{folder} has no study.json and no run folders (with metrics.jsonl): name a folder of runs "
                    "or a study from python -m launch.run")
    configs = {n: operative_bindings(os.path.join(folder, n)) for n in names}
    varied = sorted(k for k in set().union(*configs.values()) if len({c.get(k) for c in configs.values()}) > 1)
    finals = {n: run_summary(os.path.join(folder, n), metric, mode)[f"{metric} final"] for n in names}
    scored = [n for n in names if finals[n] is not None]
    cli.need(scored, f"no run in {folder} reports {metric}; choose another with --metric")
    winner = (min if mode == "min" else max)(scored, key=finals.get)
    runs = {n: {"run_dir": os.path.join(folder, n), "bindings": [f"{k} = {configs[n].get(k, '-')}" for k in varied]}
            for n in names}
    stage = {"name": "runs", "metric": metric, "mode": mode, "at": "final", "winner": winner, "runs": runs}
    return {"name": os.path.basename(os.path.normpath(folder)), "stages": [stage],
            "question": f"How do the runs in {folder} compare by {metric}?",
            "gin_files": [], "bindings": []}


def write_report(study_dir: str, metric: str = "val/loss", mode: str = "min") -> str:
    """Writes study_dir/report.md; `metric` and `mode` rank a folder of runs without study.json."""
    if not os.path.exists(os.path.join(study_dir, "study.json")):
        state = folder_state(study_dir, metric, mode)
    else:
        with open(os.path.join(study_dir, "study.json")) as f:
            state = json.load(f)
        for stage in state["stages"]:
            for run in stage["runs"].values():
                run["run_dir"] = os.path.join(study_dir, _stage_and_run(run["run_dir"]))
    for stage in state["stages"]:
        for run in stage["runs"].values():
            if not has_metrics(run["run_dir"]):
                print(f"warning: {run['run_dir']} has no metrics.jsonl; its row stays empty", file=sys.stderr)
    base = ", ".join(f"`{g}`" for g in state["gin_files"]) + (
        "; " + ", ".join(f"`{b}`" for b in state["bindings"]) if state["bindings"] else "")
    answers = []
    for stage in state["stages"]:
        answer = stage_answer(stage)
        answers += answer + [""] if answer else []
    lines = [f"# Study: {state['name']}", "", f"**Question.** {state['question']}", ""]
    lines += (["**Answer**, at matched budgets (each run's last evaluation within the budget):", ""] + answers
              if answers else [])
    lines += ["**Base settings.** " + (base or "the bindings every run's operative_config.gin shares."), ""]
    for index, stage in enumerate(state["stages"]):
        lines += [f"## Stage {index + 1}: {stage['name']}", "",
                  f"Winner by `{stage['metric']}` ({stage['at']} evaluation, {stage['mode']}): "
                  f"**{stage['winner']}**.", ""]
        summaries = {v: run_summary(r["run_dir"], stage["metric"], stage["mode"]) for v, r in stage["runs"].items()}
        columns = list(dict.fromkeys(c for summary in summaries.values() for c in summary))
        lines += ["| variant | settings | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
        for variant, run in stage["runs"].items():
            name = f"**{variant}**" if variant == stage["winner"] else variant
            if run.get("failed"):
                name += " (failed)"
            if run.get("same_as"):
                name += f" (= {_stage_and_run(run['same_as'])})"
            if run.get("stopped_early"):
                name += f" (stopped early at evaluation {run['stopped_early']['rung']})"
            settings = "<br>".join(f"`{b}`" for b in run["bindings"])
            cells = " | ".join(_cell(summaries[variant].get(c)) for c in columns)
            lines.append(f"| {name} | {settings} | {cells} |")
        pngs = plot_stage(stage, os.path.join(study_dir, f"stage{index + 1}_{stage['name']}"))
        if "opt" in stage:
            lines += ["", "Carried forward: " + ", ".join(f"`{b}`" for b in stage["opt"]) + "."]
        lines += [""]
        lines += [f"![{stage['name']}: {png}]({png})" for png in pngs] + [""]
    if "opt" in state:
        lines += ["## Winning configuration", "", "The experiment files, then these bindings:", "", "```"]
        lines += [f"# --gin_file={g}" for g in state["gin_files"]] + state["opt"] + ["```", ""]
    path = os.path.join(study_dir, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a study from python -m launch.run, or a folder of run folders")
    parser.add_argument("--metric", default="val/loss",
                        help="ranks a folder of runs, e.g. val/cer (a study has its own)")
    parser.add_argument("--mode", choices=["min", "max"], default="min")
    args = parser.parse_args()
    cli.need(os.path.isdir(args.folder), f"{args.folder}: no such folder")
    cli.need("/" in args.metric, f"--metric={args.metric}: give split/name, e.g. val/loss or val_ema/si_sdr_i")
    print(f"wrote {write_report(args.folder, args.metric, args.mode)}")


if __name__ == "__main__":
    main()
