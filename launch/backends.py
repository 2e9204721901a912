"""Where a study's runs execute: each run is one `python -m tfaudio.train` process,
started by `execute` (locally, N at a time, or as a Ray task), which writes the run's
DONE record when the process exits and stops the run (SIGTERM: it saves) when the
study asks it to (`request_stop`, early stopping); `finished` reads that record to
tell a finished run from one to resume.

Backends: `LocalBackend` runs N at a time, splitting the CPU threads between them;
`RayBackend` submits each run as a Ray task to a running cluster (default a local
instance), on shared storage (every run writes its own directory).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tfaudio.run_dir import has_metrics, read_metrics

DONE = "study_run.json"  # in a run directory once its training process exited
STOP = "stop_request.json"  # early stopping: its runner stops the run (SIGTERM: it saves)


def write_json(path: str, value: dict, indent: int | None = None):
    """Writes `path` whole or not at all: runners and the study read these files while
    other threads write them."""
    with open(path + ".part", "w") as f:
        json.dump(value, f, indent=indent)
    os.replace(path + ".part", path)


def request_stop(run_dir: str, **why):
    """Asks the runner of `run_dir` to stop it early; it then counts as finished."""
    write_json(os.path.join(run_dir, STOP), why)


def execute(command: list[str], run_dir: str, threads: int | None, cwd: str | None = None) -> dict:
    """Runs one training command (in `cwd`, the study's folder, wherever it runs);
    writes and returns its DONE record (wall_s and attempts summed over resumes)."""
    if cwd:
        os.chdir(cwd)
    env = dict(os.environ)
    if threads:
        env.update(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS=str(threads))
    os.makedirs(run_dir, exist_ok=True)
    start = time.time()
    stop_request = os.path.join(run_dir, STOP)
    with open(os.path.join(run_dir, "study_stdout.log"), "a") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   preexec_fn=_terminate_with_parent)
        try:
            while process.poll() is None:
                try:
                    process.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    if os.path.exists(stop_request):  # the run saves and exits
                        process.terminate()
                        process.wait()
        except KeyboardInterrupt:  # a cancelled Ray task: the run saves, and resumes with the study
            process.terminate()
            process.wait()
            raise
    earlier = record(run_dir)
    done = {"returncode": process.returncode, "wall_s": earlier.get("wall_s", 0.0) + time.time() - start,
            "attempts": earlier.get("attempts", 0) + 1, "command": command}
    if os.path.exists(stop_request):
        with open(stop_request) as f:
            done["stopped_early"] = json.load(f)
    write_json(os.path.join(run_dir, DONE), done)
    return done


def _terminate_with_parent():
    """In the training process (Linux): SIGTERM when the process that started it dies, so a
    killed study or Ray worker leaves its runs saved and stopped, not training unseen."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


class LocalBackend:
    """Runs up to `parallel` commands at once, each with its share of the CPU threads."""

    def __init__(self, parallel: int = 1):
        self.parallel = max(1, parallel)
        self.threads = max(1, (os.cpu_count() or 1) // self.parallel) if self.parallel > 1 else None

    def run(self, jobs: list[tuple[list[str], str]]) -> list[dict]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(self.parallel) as pool:
            return list(pool.map(lambda job: execute(job[0], job[1], self.threads), jobs))


class RayBackend:
    """Submits each command as a Ray task (one CPU and one TensorFlow thread each) to the
    cluster at `address`."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        import ray

        if not ray.is_initialized():
            ray.init(address=address, num_cpus=num_cpus if address is None else None, log_to_driver=False,
                     include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": os.getcwd()}})
        self.ray = ray
        self.remote = ray.remote(num_cpus=1)(execute)

    def run(self, jobs: list[tuple[list[str], str]]) -> list[dict]:
        """Ctrl-C cancels the tasks: the running ones stop their runs with SIGTERM (they
        save) and are waited for; Ray would otherwise kill them without a checkpoint."""
        refs = [self.remote.remote(command, run_dir, 1, os.getcwd()) for command, run_dir in jobs]
        try:
            return self.ray.get(refs)
        except KeyboardInterrupt:
            for ref in refs:
                self.ray.cancel(ref)
            self.ray.wait(refs, num_returns=len(refs))
            raise


def record(run_dir: str) -> dict:
    """The run's DONE record, {} before its first exit."""
    try:
        with open(os.path.join(run_dir, DONE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def finished(run_dir: str) -> bool:
    """True when the run's training process exited 0 and was not preempted last (a run
    stopped by SIGINT/SIGTERM saves and exits 0; it is resumed, not counted), or was
    stopped early by the study."""
    done = record(run_dir)
    if done.get("returncode") != 0:
        return False
    if done.get("stopped_early"):
        return True
    rows = read_metrics(run_dir) if has_metrics(run_dir) else []
    preempted = [i for i, r in enumerate(rows) if r.get("event") == "preempted"]
    return not preempted or any("loss" in r and "split" not in r for r in rows[preempted[-1] + 1:])
