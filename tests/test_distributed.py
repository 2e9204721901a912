"""Distribution on CPU: MirroredStrategy over 2 logical devices and MultiWorkerMirroredStrategy
with 2 local worker processes on loopback match one device (accumulation and EMA on), in
their weights and in their evaluation, host metrics summed over workers included."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

TOY_TRAIN = os.path.join(os.path.dirname(__file__), "toy_train.py")
PARAMS = ["BatchPlan.accumulate_n = 2", "StepOptions.ema_decay = 0.9", "StepOptions.clip_norm = 1.0"]


def _run(run, env_extra, batch_size, steps=6):
    env = dict(os.environ, **env_extra)
    return subprocess.Popen([sys.executable, TOY_TRAIN, run, str(steps), f"BatchPlan.batch_size = {batch_size}",
                             *PARAMS], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_mirrored_and_multi_worker_match_one_device(tmp_path):
    single = str(tmp_path / "single")
    _finish(_run(single, {}, 8))
    mirrored = str(tmp_path / "mirrored")
    _finish(_run(mirrored, {"STRATEGY": "mirrored", "CPU_REPLICAS": "2"}, 4))
    workers = [f"localhost:{p}" for p in free_ports(2)]
    multi = str(tmp_path / "multi")
    procs = [_run(multi, {"STRATEGY": "multi_worker", "TF_CONFIG": json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})}, 4) for i in range(2)]
    for proc in procs:
        _finish(proc)
    expected = np.load(os.path.join(single, "weights.npy"))
    np.testing.assert_allclose(np.load(os.path.join(mirrored, "weights.npy")), expected, atol=1e-5)
    np.testing.assert_allclose(np.load(os.path.join(multi, "weights.npy")), expected, atol=1e-5)
    assert os.path.isdir(os.path.join(multi, ".worker1"))  # the second worker's private copies
    single_val = _final_val(single)
    assert single_val["examples"] == 64 and single_val["abs_error"] > 0
    for run in (mirrored, multi):
        val = _final_val(run)
        assert val["examples"] == 64
        np.testing.assert_allclose([val["loss"], val["abs_error"]], [single_val["loss"], single_val["abs_error"]],
                                   rtol=1e-4)


def _final_val(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [row for row in map(json.loads, f) if row.get("split") == "val"][-1]
