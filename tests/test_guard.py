"""Safety: skipped non-finite updates, rollbacks with LR backoff, guard stop, preemption."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tfaudio.training.guard import DivergenceError
from tfaudio.training.trackers import read_metrics

import toy
from test_trainer import train

TOY_TRAIN = os.path.join(os.path.dirname(__file__), "toy_train.py")


class SpikyData(toy.ToyData):
    """Targets x100 from step 31 on, in the first stream only: a transient loss spike."""

    def __init__(self):
        super().__init__()
        self.streams = 0

    def train(self, batch_size, seed, start=0, input_context=None):
        ds = super().train(batch_size, seed, start, input_context)
        if start == 0:
            self.streams += 1
        if start != 0 or self.streams > 1:
            return ds
        counter = tf.data.Dataset.range(10 ** 9)
        return tf.data.Dataset.zip(ds, counter).map(
            lambda b, i: {"x": b["x"], "y": b["y"] * tf.where(i >= 30, 100.0, 1.0)})


def events(run, name):
    return [r for r in read_metrics(str(run)) if r.get("event") == name]


def test_nan_gradient_is_skipped_and_logged(tmp_path):
    t = train(tmp_path, 5, "Trainer.batch_size = 8", "LearningRate.learning_rate = 1e30",
              "make_optimizer.name = 'sgd'", "Trainer.guard = False")
    assert int(t.inner.skipped.numpy()) >= 1
    assert all(np.all(np.isfinite(w)) for w in t.model.get_weights())


def test_loss_spike_rolls_back_and_halves_lr(tmp_path):
    import gin

    if gin.config._REGISTRY.get("tests.SpikyData") is None:
        gin.register(SpikyData, module="tests")
    t = train(tmp_path, 50, "Trainer.data = @SpikyData()", "Trainer.batch_size = 8",
              "CheckpointConfig.every = 10", "make_optimizer.name = 'sgd'")
    rollback = events(tmp_path, "rollback")
    assert len(rollback) == 1 and rollback[0]["to_step"] == 30 and rollback[0]["lr_scale"] == 0.5
    rows = [r for r in read_metrics(str(tmp_path)) if "split" not in r and "event" not in r]
    before = [r["lr"] for r in rows if r["step"] == 30][0]
    after = [r["lr"] for r in rows if r["step"] == 35][-1]
    assert after == pytest.approx(before * 0.5, rel=1e-5)  # constant schedule: only the backoff
    assert t.global_step == 50 and float(t.guard.lr_scale.numpy()) == 0.5


def test_absurd_learning_rate_stops_with_last_good_checkpoint(tmp_path):
    with pytest.raises(DivergenceError, match="after 3 rollbacks"):
        train(tmp_path, 100, "Trainer.batch_size = 8", "LearningRate.learning_rate = 1e30",
              "make_optimizer.name = 'sgd'", "CheckpointConfig.every = 5")
    assert len(events(tmp_path, "rollback")) == 3 and events(tmp_path, "guard_stop")
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert latest.endswith("ckpt-0")
    for name, _ in tf.train.list_variables(latest):
        if name.startswith("model/") and "OPTIMIZER" not in name:
            assert np.all(np.isfinite(tf.train.load_variable(latest, name))), name


def _start(run, steps, *params):
    return subprocess.Popen([sys.executable, TOY_TRAIN, str(run), str(steps), *params],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_rows(run, n, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        path = os.path.join(run, "metrics.jsonl")
        if os.path.exists(path) and sum(1 for _ in open(path)) >= n:
            return
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.2)
    raise AssertionError("training produced no metrics")


def _uninterrupted_weights(run, steps, *params):
    """Final weights of the same training run to `steps` without interruption."""
    proc = _start(run, steps, *params)
    assert proc.wait(timeout=120) == 0, proc.communicate()[1][-2000:]
    return np.load(os.path.join(run, "weights.npy"))


def test_sigterm_saves_and_restart_continues(tmp_path):
    run = str(tmp_path / "run")
    proc = _start(run, 10 ** 6, "CheckpointConfig.every = 100000")
    _wait_for_rows(run, 5, proc)
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == 0 and time.time() - sent < 30
    saved = events(run, "preempted")[0]["step"]
    assert tf.train.latest_checkpoint(os.path.join(run, "checkpoints")).endswith(f"ckpt-{saved}")
    proc = _start(run, saved + 3)
    assert proc.wait(timeout=120) == 0, proc.communicate()[1][-2000:]
    steps = [r["step"] for r in read_metrics(run) if "split" not in r and "event" not in r]
    assert steps[-3:] == [saved + 1, saved + 2, saved + 3]
    np.testing.assert_allclose(np.load(os.path.join(run, "weights.npy")),
                               _uninterrupted_weights(str(tmp_path / "whole"), saved + 3), rtol=1e-5, atol=1e-6)


def test_kill_9_leaves_a_resumable_run(tmp_path):
    run = str(tmp_path / "run")
    for delay_rows in (4, 7, 11):  # saves every step, so kills land in and around saves
        proc = _start(run, 10 ** 6, "CheckpointConfig.every = 1")
        _wait_for_rows(run, delay_rows, proc)
        time.sleep(0.05 * delay_rows % 0.3)
        proc.kill()
        proc.wait()
    # What a kill during a save leaves behind: a temporary folder and a partial index.
    ckpt = os.path.join(run, "checkpoints")
    os.makedirs(os.path.join(ckpt, "ckpt-99999_temp"), exist_ok=True)
    open(os.path.join(ckpt, "ckpt-99999.index"), "wb").write(b"\x00\x01partial")
    latest = tf.train.latest_checkpoint(ckpt)
    resumed_from = int(latest.rsplit("-", 1)[1])
    proc = _start(run, resumed_from + 2, "CheckpointConfig.every = 1")
    assert proc.wait(timeout=120) == 0, proc.communicate()[1][-2000:]
    assert tf.train.latest_checkpoint(ckpt).endswith(f"ckpt-{resumed_from + 2}")
    np.testing.assert_allclose(np.load(os.path.join(run, "weights.npy")),
                               _uninterrupted_weights(str(tmp_path / "whole"), resumed_from + 2,
                                                      "CheckpointConfig.every = 1"), rtol=1e-5, atol=1e-6)


def test_checkpoint_from_another_config_is_one_clear_error(tmp_path):
    from tfaudio.config import ConfigError

    train(tmp_path, 5, "Trainer.batch_size = 8")
    with pytest.raises(ConfigError, match="does not fit this configuration") as err:
        train(tmp_path, 10, "Trainer.batch_size = 8", "ToyModel.hidden = 16")
    assert "\n" not in str(err.value)


def test_noisy_losses_are_not_spikes_but_jumps_are():
    from tfaudio.training.guard import DivergenceGuard

    guard = DivergenceGuard()
    rng = np.random.default_rng(0)
    noisy = [guard.observe(float(x), 0, 1) for x in rng.normal(-2.0, 1.5, 500)]  # e.g. -SI-SDR per step
    assert "rollback" not in noisy
    steady = DivergenceGuard()
    for x in rng.uniform(0.9, 1.1, 10):
        steady.observe(float(x), 0, 25)
    assert steady.observe(3.5, 0, 25) == "spike" and steady.observe(3.5, 0, 25) == "rollback"
