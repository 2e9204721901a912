"""Safety: skipped non-finite updates, rollbacks with LR backoff, guard stop."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfaudio.run_dir import read_metrics
from tfaudio.training.guard import DivergenceError

import toy
from test_trainer import train

TOY_TRAIN = os.path.join(os.path.dirname(__file__), "toy_train.py")


class SpikyData(toy.ToyData):
    """Targets x100 in the batches of steps 31 to 40 (by data position, in every stream
    that reaches them): bad data a replay would serve again."""

    def train(self, batch_size, seed, start=0, input_context=None):
        ds = super().train(batch_size, seed, start, input_context)
        batches = tf.data.Dataset.range(start // batch_size, 10 ** 9)
        return tf.data.Dataset.zip(ds, batches).map(
            lambda b, i: {"x": b["x"], "y": b["y"] * tf.where((i >= 30) & (i < 40), 100.0, 1.0)})


def events(run, name):
    return [r for r in read_metrics(str(run)) if r.get("event") == name]


def test_nan_gradient_is_skipped_and_logged(tmp_path):
    t = train(tmp_path, 10, "BatchPlan.batch_size = 8", "LearningRate.learning_rate = 1e30",
              "make_optimizer.name = 'sgd'", "DivergenceGuard.nonfinite_patience = 1000")
    skipped = int(t.inner.skipped.numpy())
    rows = [r for r in read_metrics(str(tmp_path)) if "loop_steps" in r]
    assert skipped >= 1 and sum(r["skipped_updates"] for r in rows) == skipped
    assert sum(e["count"] for e in events(tmp_path, "skipped_non_finite")) == skipped
    assert all(np.all(np.isfinite(w)) for w in t.model.get_weights())


def test_loss_spike_rolls_back_and_halves_lr(tmp_path):
    import gin

    if gin.config._REGISTRY.get("tests.SpikyData") is None:
        gin.register(SpikyData, module="tests")
    t = train(tmp_path, 50, "Trainer.data = @SpikyData()", "BatchPlan.batch_size = 8",
              "CheckpointConfig.every = 10", "make_optimizer.name = 'sgd'")
    rollback = events(tmp_path, "rollback")
    assert len(rollback) == 1 and rollback[0]["to_step"] == 30 and rollback[0]["lr_scale"] == 0.5
    assert rollback[0]["skipped_examples"] == (rollback[0]["step"] - 30) * 8  # not replayed: no second spike
    rows = [r for r in read_metrics(str(tmp_path)) if "split" not in r and "event" not in r]
    before = [r["lr"] for r in rows if r["step"] == 30][0]
    after = [r["lr"] for r in rows if r["step"] == 35][-1]
    assert after == pytest.approx(before * 0.5, rel=1e-5)  # constant schedule: only the backoff
    assert t.global_step == 50 and float(t.guard.lr_scale.numpy()) == 0.5


def test_absurd_learning_rate_stops_with_last_good_checkpoint(tmp_path):
    with pytest.raises(DivergenceError, match="after 3 rollbacks"):
        train(tmp_path, 100, "BatchPlan.batch_size = 8", "LearningRate.learning_rate = 1e30",
              "make_optimizer.name = 'sgd'", "CheckpointConfig.every = 5")
    assert len(events(tmp_path, "rollback")) == 3 and events(tmp_path, "guard_stop")
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert latest.endswith("ckpt-0")
    for name, _ in tf.train.list_variables(latest):
        if name.startswith("model/") and "OPTIMIZER" not in name:
            assert np.all(np.isfinite(tf.train.load_variable(latest, name))), name


def test_checkpoint_from_another_config_is_one_clear_error(tmp_path):
    from tfaudio.config import ConfigError

    train(tmp_path, 5, "BatchPlan.batch_size = 8")
    with pytest.raises(ConfigError, match="does not fit this configuration") as err:
        train(tmp_path, 10, "BatchPlan.batch_size = 8", "ToyModel.hidden = 16")
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


def test_guard_history_survives_a_checkpoint(tmp_path):
    from tfaudio.training.guard import DivergenceGuard

    guard = DivergenceGuard(window=8)
    for loss in np.linspace(1.0, 0.9, 12):
        guard.observe(float(loss), 0, 10)
    assert guard.observe(5.0, 0, 10) == "spike"
    path = tf.train.Checkpoint(guard=guard).save(str(tmp_path / "ckpt"))
    resumed = DivergenceGuard(window=8)
    tf.train.Checkpoint(guard=resumed).restore(path).assert_consumed()
    np.testing.assert_allclose(resumed.history, np.linspace(1.0, 0.9, 12)[-8:])
    assert resumed.suspect and resumed.observe(5.0, 0, 10) == "rollback"  # not blind after a resume


class StopDuringSpike:
    """A loop hook that asks for a stop (as SIGTERM does) once a spike is in progress."""

    when = "loop"

    def __init__(self, trainer):
        self.trainer = trainer

    def __call__(self, step, results):
        if self.trainer.guard.suspect:
            self.trainer.inner.stop_request.assign(1)
        return []


def test_preemption_during_a_spike_keeps_the_last_good_checkpoint(tmp_path):
    import gin

    from tfaudio import compose, config
    from tfaudio.training.strategy import make_strategy
    from tfaudio.training.trackers import Trackers

    from test_trainer import BASE

    if gin.config._REGISTRY.get("tests.SpikyData") is None:
        gin.register(SpikyData, module="tests")
    config.parse([], BASE + ["BatchPlan.train_steps = 50", "Trainer.data = @SpikyData()", "BatchPlan.batch_size = 8",
                             "Trainer.steps_per_loop = 1", "CheckpointConfig.every = 10",
                             "make_optimizer.name = 'sgd'"], finalize=False)
    trackers = Trackers(str(tmp_path), "none")
    try:
        trainer = compose.make_trainer(str(tmp_path), make_strategy())
        trainer.hooks.append(StopDuringSpike(trainer))
        trainer.train(trackers)
    finally:
        trackers.close()
    (preempted,) = events(tmp_path, "preempted")
    assert preempted["step"] == 32 and not preempted["saved"] and events(tmp_path, "loss_spike")
    assert trainer.checkpoints.latest.endswith("ckpt-30")  # the last good one, written before the spike
