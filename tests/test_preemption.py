"""Preemption: SIGTERM/SIGINT end a long traced loop after the current step, save and exit 0;
a second signal exits at once and leaves the last checkpoint; kill -9 leaves a resumable
run; under multi_worker a signal to either worker stops both at one saved step."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tfaudio.run_dir import read_metrics

TOY_TRAIN = os.path.join(os.path.dirname(__file__), "toy_train.py")
# One traced loop for the whole run, each step waiting `delay` seconds for its batch.
LONG_LOOP = ["Trainer.steps_per_loop = 1000000", "CheckpointConfig.every = 1000000", "ToyData.delay = 0.5"]


def start(run, steps, *params, env=None):
    return subprocess.Popen([sys.executable, TOY_TRAIN, str(run), str(steps), *params], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc, timeout=180):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]


def events(run, name):
    return [r for r in read_metrics(str(run)) if r.get("event") == name]


def train_steps(run):
    if not os.path.exists(os.path.join(run, "metrics.jsonl")):
        return []
    return [r["step"] for r in read_metrics(str(run)) if "split" not in r and "event" not in r]


def latest(run):
    return tf.train.latest_checkpoint(os.path.join(run, "checkpoints"))


def wait_inside_the_loop(run, procs, seconds=3.0, timeout=120):
    """Waits for the step-0 checkpoint (written just before the first update), then `seconds`."""
    deadline = time.time() + timeout
    while not (latest(run) or "").endswith("ckpt-0"):
        for proc in procs:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline, "training never started"
        time.sleep(0.2)
    time.sleep(seconds)


def final_weights(run):
    return np.load(os.path.join(run, "weights.npy"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_signal_inside_a_long_loop_saves_within_seconds_and_the_run_continues(tmp_path, sig):
    run = str(tmp_path / "run")
    proc = start(run, 10 ** 6, *LONG_LOOP)
    wait_inside_the_loop(run, [proc])
    sent = time.time()
    proc.send_signal(sig)
    finish(proc, timeout=60)
    assert time.time() - sent < 30
    (preempted,) = events(run, "preempted")
    saved = preempted["step"]
    assert preempted["signal"] == sig.name and preempted["saved"] and saved >= 2
    assert latest(run).endswith(f"ckpt-{saved}") and train_steps(run) == [saved]
    if sig == signal.SIGINT:
        return
    finish(start(run, saved + 3))
    assert train_steps(run)[-3:] == [saved + 1, saved + 2, saved + 3]
    whole = str(tmp_path / "whole")
    finish(start(whole, saved + 3))
    np.testing.assert_allclose(final_weights(run), final_weights(whole), rtol=1e-5, atol=1e-6)


def test_second_signal_exits_at_once_and_keeps_the_last_checkpoint(tmp_path):
    run = str(tmp_path / "run")
    proc = start(run, 10 ** 6, *LONG_LOOP[:-1], "ToyData.delay = 5.0")
    wait_inside_the_loop(run, [proc], seconds=1.0)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM and time.time() - sent < 3
    assert not events(run, "preempted") and latest(run).endswith("ckpt-0")
    finish(start(run, 2))
    assert train_steps(run) == [1, 2]


def test_kill_9_leaves_a_resumable_run(tmp_path):
    run = str(tmp_path / "run")
    resumed = []
    for delay in (0.5, 0.9, 1.3):  # saves every step, so kills land in and around saves
        rows = len(train_steps(run))
        proc = start(run, 10 ** 6, "CheckpointConfig.every = 1")
        while len(train_steps(run)) <= rows:  # until this process trains
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.05)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        resumed.append(latest(run))
    restarted_at = int(latest(run).rsplit("-", 1)[1])
    assert restarted_at > 2 and len(set(resumed)) == 3, resumed  # each start went on from the last
    finish(start(run, restarted_at + 2, "CheckpointConfig.every = 1"))
    assert latest(run).endswith(f"ckpt-{restarted_at + 2}")
    whole = str(tmp_path / "whole")
    finish(start(whole, restarted_at + 2, "CheckpointConfig.every = 1"))
    np.testing.assert_allclose(final_weights(run), final_weights(whole), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("signalled", [0, 1], ids=["chief", "worker1"])
def test_multi_worker_stops_together_and_resumes(tmp_path, signalled):
    from test_distributed import free_ports

    run = str(tmp_path / "run")
    workers = [f"localhost:{p}" for p in free_ports(2)]

    def pair(steps, *params):
        return [start(run, steps, *params, env=dict(os.environ, STRATEGY="multi_worker", TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}))) for i in range(2)]

    procs = pair(10 ** 6, *LONG_LOOP, "BatchPlan.batch_size = 4")
    wait_inside_the_loop(run, procs)
    procs[signalled].send_signal(signal.SIGTERM)
    for proc in procs:
        finish(proc, timeout=60)
    (preempted,) = events(run, "preempted")
    saved = preempted["step"]
    assert preempted["saved"] and saved >= 2 and latest(run).endswith(f"ckpt-{saved}")
    for proc in pair(saved + 2, "BatchPlan.batch_size = 4"):
        finish(proc)
    assert train_steps(run)[-2:] == [saved + 1, saved + 2] and latest(run).endswith(f"ckpt-{saved + 2}")
