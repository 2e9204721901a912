"""Compares runs from their metrics.jsonl: a table on stdout, the same table as Markdown and
a plot of validation SI-SDR (or loss) against examples seen.

    python -m launch.report runs/batch_study/* [--out runs/batch_study/report]
"""

from __future__ import annotations

import argparse
import os

from tfaudio.training.trackers import read_metrics


def summarize(run_dir: str) -> dict:
    """The comparison columns of one run."""
    rows = read_metrics(run_dir)
    train = [r for r in rows if "split" not in r and "event" not in r]
    last = {split: [r for r in rows if r.get("split") == split] for split in ("val", "val_ema")}
    pick = lambda split, key: last[split][-1].get(key) if last[split] else None  # noqa: E731
    return {"run": os.path.basename(os.path.normpath(run_dir)),
            "val_loss": pick("val", "loss"), "val_ema_loss": pick("val_ema", "loss"),
            "val_si_sdr": pick("val", "si_sdr"), "val_ema_si_sdr": pick("val_ema", "si_sdr"),
            "val_si_sdr_i": pick("val", "si_sdr_i"), "val_ema_si_sdr_i": pick("val_ema", "si_sdr_i"),
            "examples_seen": train[-1]["examples_seen"] if train else None,
            "wall_min": train[-1]["wall_s"] / 60 if train else None,
            "examples_per_sec": _mean_rate(train)}


def _mean_rate(train: list[dict]) -> float | None:
    """Mean examples/s of the training rows, leaving out the first (tracing) when there are others."""
    rows = train[1:] or train
    return sum(r["examples_per_sec"] for r in rows) / len(rows) if rows else None


COLUMNS = ("run", "val_loss", "val_ema_loss", "val_si_sdr", "val_ema_si_sdr", "val_si_sdr_i", "val_ema_si_sdr_i",
           "examples_seen", "wall_min", "examples_per_sec")


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(summaries: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(s[c]) for c in COLUMNS) + " |" for s in summaries]
    return "\n".join(lines)


def plot(run_dirs: list[str], path: str):
    """Validation SI-SDR (loss when a run has none) against examples seen, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    metric = "loss"
    for run_dir in run_dirs:
        val = [r for r in read_metrics(run_dir) if r.get("split") == "val"]
        metric = "si_sdr" if val and "si_sdr" in val[0] else "loss"
        ax.plot([r["examples_seen"] for r in val], [r[metric] for r in val], marker="o",
                label=os.path.basename(os.path.normpath(run_dir)))
    ax.set_xlabel("examples seen")
    ax.set_ylabel(f"validation {metric}" + (" (dB)" if metric == "si_sdr" else ""))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(run_dirs: list[str], out_prefix: str) -> str:
    """Prints the table and writes <out_prefix>.md and <out_prefix>.png; returns the Markdown."""
    run_dirs = [d for d in run_dirs if os.path.isfile(os.path.join(d, "metrics.jsonl"))]
    if not run_dirs:
        raise SystemExit("report: none of the given folders holds a metrics.jsonl")
    table = markdown_table([summarize(d) for d in run_dirs])
    os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
    with open(out_prefix + ".md", "w") as f:
        f.write(table + "\n\n![validation curve](" + os.path.basename(out_prefix) + ".png)\n")
    plot(run_dirs, out_prefix + ".png")
    print(table)
    print(f"wrote {out_prefix}.md and {out_prefix}.png")
    return table


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--out", default=None, help="prefix of the .md/.png (default: <first run's parent>/report)")
    args = parser.parse_args()
    out = args.out or os.path.join(os.path.dirname(os.path.normpath(args.run_dirs[0])), "report")
    report(args.run_dirs, out)


if __name__ == "__main__":
    main()
