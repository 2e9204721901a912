"""Runs the variants of a study, each `python -m tfaudio.train` in its own run directory
named by its prefix, then reports them (launch/report.py)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from launch.report import report


def run_study(name: str, gin_file: str, variants: list[tuple[str, list[str]]], out: str,
              extra: list[str], dry_run: bool = False) -> list[str]:
    """variants: (run-name prefix, gin bindings). Returns the run directories."""
    experiment = os.path.splitext(os.path.basename(gin_file))[0]
    run_dirs = []
    for prefix, params in variants:
        run_dir = os.path.join(out, prefix + experiment)
        cmd = [sys.executable, "-m", "tfaudio.train", f"--gin_file={gin_file}", f"--model_dir={run_dir}",
               f"--run_name={prefix}", f"--study={name}"] + [f"--gin_param={p}" for p in params + extra]
        print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
        if not dry_run:
            subprocess.run(cmd, check=True)
        run_dirs.append(run_dir)
    if not dry_run:
        report(run_dirs, os.path.join(out, "report"))
    return run_dirs


def macro(gin_file: str, name: str):
    """The value a gin file binds to a macro (e.g. learning_rate)."""
    import gin

    from tfaudio import config, registry  # noqa: F401  (registry: the configurables a gin file names)
    from tfaudio.training import run  # noqa: F401  (the training configurables)

    config.parse([gin_file], finalize=False)
    return gin.query_parameter(f"%{name}")
