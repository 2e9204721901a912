"""Trainer behaviour: accumulation, schedules, scaling, provenance, resume, guard, EMA."""

import functools
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfaudio import compose, config
from tfaudio.experiment import restore_for_inference
from tfaudio.run_dir import read_metrics
from tfaudio.training import schedules

import toy

BASE = ["build.model = @ToyModel()", "build.task = @ToyTask()", "Trainer.data = @ToyData()",
        "Trainer.eval_every = 10", "Trainer.steps_per_loop = 5", "LearningRate.learning_rate = 0.05"]


def train(model_dir, steps, *params):
    toy.register()
    config.parse([], BASE + [f"BatchPlan.train_steps = {steps}"] + list(params), finalize=False)
    return compose.train(str(model_dir))[0]


def train_losses(model_dir):
    return [r["loss"] for r in read_metrics(str(model_dir)) if "split" not in r and "event" not in r]


def test_accumulation_equals_large_batch(tmp_path):
    sgd = ["make_optimizer.name = 'sgd'", "BatchPlan.train_steps = 3", "Trainer.steps_per_loop = 3"]
    a = train(tmp_path / "a", 3, "BatchPlan.batch_size = 8", "BatchPlan.accumulate_n = 4", *sgd)
    b = train(tmp_path / "b", 3, "BatchPlan.batch_size = 32", *sgd)
    for va, vb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_allclose(va, vb, atol=1e-5)
    assert a.inner.examples_seen.numpy() == b.inner.examples_seen.numpy() == 96


def test_batch_multiplier_matches_examples(tmp_path):
    t = train(tmp_path, 8, "BatchPlan.batch_size = 4", "BatchPlan.multiplier = 4")
    assert t.global_step == 2 and int(t.inner.examples_seen.numpy()) == 32


def test_resume_equals_uninterrupted(tmp_path):
    params = ["BatchPlan.batch_size = 8", "BatchPlan.accumulate_n = 2", "StepOptions.ema_decay = 0.9",
              "CheckpointConfig.every = 10"]
    train(tmp_path / "full", 20, *params)
    train(tmp_path / "resumed", 10, *params)
    train(tmp_path / "resumed", 20, *params)
    np.testing.assert_allclose(train_losses(tmp_path / "full"), train_losses(tmp_path / "resumed")[-4:],
                               atol=1e-5)


def test_an_eager_step_trains_as_the_traced_one_and_is_not_traced(tmp_path):
    params = ["BatchPlan.batch_size = 8", "BatchPlan.accumulate_n = 2", "StepOptions.ema_decay = 0.9"]
    traced = train(tmp_path / "traced", 10, *params)
    eager = train(tmp_path / "eager", 10, *params, "StepOptions.traced = False")
    assert isinstance(traced.inner._loop, tf.types.experimental.PolymorphicFunction)
    assert not isinstance(eager.inner._loop, tf.types.experimental.PolymorphicFunction)
    for a, b in zip(traced.model.get_weights(), eager.model.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert eager.evaluate()["val"]["loss"] == pytest.approx(traced.evaluate()["val"]["loss"], rel=1e-5)
    with pytest.raises(config.ConfigError, match="XLA cannot compile"):
        train(tmp_path / "both", 10, "StepOptions.traced = False", "StepOptions.jit_compile = True")


def test_metrics_rows_and_the_operative_config_rebuild_the_model(tmp_path):
    trainer = train(tmp_path, 10, "BatchPlan.batch_size = 8", "StepOptions.ema_decay = 0.5")
    rows = read_metrics(str(tmp_path))
    assert rows[0] == {"step": 0, "event": "model", "parameters": 4 * 8 + 8 + 8 + 1, "non_trainable_parameters": 0}
    first = next(r for r in rows if "event" not in r)
    for key in ("step", "examples_seen", "wall_s", "loss", "loss_mse", "lr", "grad_norm",
                "steps_per_sec", "examples_per_sec", "input_wait_frac", "effective_batch", "micro_batch"):
        assert key in first, key
    assert {r["split"] for r in rows if "split" in r} == {"val", "val_ema"}
    model, _ = restore_for_inference(str(tmp_path), use_ema=False)
    for va, vb in zip(model.get_weights(), trainer.model.get_weights()):
        np.testing.assert_array_equal(va, vb)


def test_reduce_on_plateau_lowers_the_rate_after_patience_and_cooldown(tmp_path):
    train(tmp_path, 40, "BatchPlan.batch_size = 8", "Trainer.eval_every = 5",
          "training_hooks.plateau = @ReduceOnPlateau()",
          "ReduceOnPlateau.patience = 2", "ReduceOnPlateau.cooldown = 1", "ReduceOnPlateau.min_delta = 100.0",
          "ReduceOnPlateau.min_lr = 0.01")
    rows = read_metrics(str(tmp_path))
    # Evaluations at 5, 10, ...: the first sets the best, two more without a 100-unit gain reduce,
    # one is spent cooling down, two more reduce again, and the floor stops the third.
    assert [(r["step"], r["lr_scale"]) for r in rows if r.get("event") == "lr_reduced"] == [(15, 0.5), (30, 0.25)]
    lr = {r["step"]: r["lr"] for r in rows if "loop_steps" in r}
    assert lr[15] == pytest.approx(0.05) and lr[20] == pytest.approx(0.025) and lr[40] == pytest.approx(0.0125)


def test_jit_compile_trains_the_same_model(tmp_path):
    plain = train(tmp_path / "plain", 10, "BatchPlan.batch_size = 8", "make_optimizer.name = 'sgd'")
    jit = train(tmp_path / "jit", 10, "BatchPlan.batch_size = 8", "make_optimizer.name = 'sgd'",
                "StepOptions.jit_compile = True")
    for a, b in zip(plain.model.get_weights(), jit.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_keep_checkpoints_keeps_the_newest(tmp_path):
    train(tmp_path, 30, "BatchPlan.batch_size = 8", "CheckpointConfig.every = 5", "CheckpointConfig.keep = 2")
    kept = sorted(int(f[len("ckpt-"):-len(".index")]) for f in os.listdir(tmp_path / "checkpoints")
                  if f.endswith(".index"))
    assert kept == [25, 30]


def test_wandb_runs_offline_without_a_key_and_never_prompts(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WANDB") and k not in ("TFAUDIO_TESTING", "PYTEST_CURRENT_TEST")}
    script = ("import sys; from tfaudio.training.trackers import Trackers\n"
              "t = Trackers(sys.argv[1], 'wandb', name='offline-check')\n"
              "t.log({'step': 1, 'loss': 0.5}); t.close()")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    runs = os.listdir(tmp_path / "wandb")
    assert any(r.startswith("offline-run-") for r in runs), runs


def test_keep_best_and_early_stopping(tmp_path):
    t = train(tmp_path, 200, "BatchPlan.batch_size = 8", "CheckpointConfig.best_metric = 'val/loss'",
              "training_hooks.early_stopping = @EarlyStopping()", "EarlyStopping.patience = 1",
              "EarlyStopping.min_delta = 100.0")
    assert t.global_step == 20  # two evaluations without a 100-unit improvement
    assert os.listdir(tmp_path / "checkpoints" / "best")
    assert any(r.get("event") == "early_stop" for r in read_metrics(str(tmp_path)))


def test_a_true_large_batch_equals_that_batch_and_accumulation_does_not_with_batchnorm(tmp_path):
    weights = {}
    for name, params in {"batch32": ["BatchPlan.batch_size = 32"],
                         "true4x": ["BatchPlan.batch_size = 8", "BatchPlan.multiplier = 4",
                                    "BatchPlan.mode = 'true'"],
                         "accumulate4x": ["BatchPlan.batch_size = 8", "BatchPlan.multiplier = 4"]}.items():
        steps = 10 if name == "batch32" else 40  # baseline steps: k x the updates
        t = train(tmp_path / name, steps, "ToyModel.batch_norm = True", *params)
        weights[name] = np.concatenate([w.ravel() for w in t.model.get_weights()])
        row = [r for r in read_metrics(str(tmp_path / name)) if "loss" in r and "split" not in r][-1]
        assert t.global_step == 10 and row["effective_batch"] == 32
        assert row["micro_batch"] == (8 if name == "accumulate4x" else 32)
    np.testing.assert_allclose(weights["true4x"], weights["batch32"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(weights["accumulate4x"], weights["batch32"], rtol=1e-4, atol=1e-5)


def test_batch_schedule_switches_continues_the_counts_and_resumes_on_either_side(tmp_path):
    params = ["BatchPlan.batch_size = 16", "BatchPlan.schedule = ((6, 4),)", "Trainer.steps_per_loop = 2",
              "Trainer.eval_every = 5"]
    full = train(tmp_path / "full", 10, *params)
    rows = [r for r in read_metrics(str(tmp_path / "full")) if "loss" in r and "split" not in r]
    assert [(r["step"], r["effective_batch"]) for r in rows] == [(2, 16), (4, 16), (5, 16), (6, 16), (8, 4),
                                                                  (10, 4)]
    assert rows[-1]["examples_seen"] == 6 * 16 + 4 * 4
    assert full.data_position() == 6 * 16 + 4 * 4  # the data continues after the 96 examples already read
    assert [r["step"] for r in read_metrics(str(tmp_path / "full")) if r.get("event") == "phase_switch"] == [6]
    expected = np.concatenate([w.ravel() for w in full.model.get_weights()])
    for stop in (4, 8):  # interrupted before and after the switch, then resumed
        train(tmp_path / f"resumed{stop}", stop, *params)
        resumed = train(tmp_path / f"resumed{stop}", 10, *params)
        np.testing.assert_allclose(np.concatenate([w.ravel() for w in resumed.model.get_weights()]), expected,
                                   rtol=1e-5, atol=1e-6)


def test_max_minutes_ends_the_run_evaluated_and_saved(tmp_path):
    t = train(tmp_path, 100000, "BatchPlan.batch_size = 8", "ToyData.delay = 0.05", "Trainer.max_minutes = 0.02")
    rows = read_metrics(str(tmp_path))
    assert 0 < t.global_step < 100  # 1.2 s of 0.05 s batches: tens of steps, not 100000
    assert [r["step"] for r in rows if r.get("event") == "time_budget"] == [t.global_step]
    assert rows[-1]["step"] == t.global_step and rows[-1]["split"] == "val"
    assert os.path.exists(tmp_path / "checkpoints" / f"ckpt-{t.global_step}.index")


def test_max_minutes_counts_the_whole_run_across_resumes(tmp_path):
    params = ["BatchPlan.batch_size = 8", "ToyData.delay = 0.05", "Trainer.max_minutes = 0.02"]
    first = train(tmp_path, 100000, *params).global_step
    resumed = train(tmp_path, 100000, *params).global_step
    assert resumed - first <= 5  # the budget is spent: one loop of steps_per_loop, then the end
    walls = [r["wall_s"] for r in read_metrics(str(tmp_path)) if "wall_s" in r]
    assert walls == sorted(walls) and walls[-1] >= 1.2  # the resumed rows go on from the saved seconds


def values(schedule, steps):
    return [float(schedule(tf.constant(s))) for s in steps]


def test_schedules():
    exp = schedules.LearningRate(1.0, schedules.ExponentialDecay(10, 0.5))
    assert values(exp, [0, 10, 20]) == pytest.approx([1.0, 0.5, 0.25])
    stair = schedules.LearningRate(1.0, schedules.ExponentialDecay(10, 0.5, staircase=True))
    assert values(stair, [9, 10, 19]) == pytest.approx([1.0, 0.5, 0.5])
    pw = schedules.LearningRate(1.0, schedules.PiecewiseConstant([5, 10], [1.0, 0.1, 0.01]))
    assert values(pw, [4, 5, 10]) == pytest.approx([1.0, 0.1, 0.01])
    warm = schedules.LearningRate(1.0, warmup_steps=4)
    assert values(warm, [0, 1, 3, 100]) == pytest.approx([0.25, 0.5, 1.0, 1.0])
    cos = schedules.LearningRate(1.0, schedules.CosineDecay(100, floor=0.1), warmup_steps=10)
    after = values(cos, range(10, 400))
    assert all(b <= a + 1e-7 for a, b in zip(after, after[1:]))
    assert after[-1] == pytest.approx(0.1) and values(cos, [60])[0] == pytest.approx(0.55)


def test_batch_scaling_rules():
    assert schedules.batch_scale(256, 32, "linear") == 8
    assert schedules.batch_scale(128, 32, "sqrt") == 2
    assert schedules.batch_scale(128, 32, "none") == 1
    lr = schedules.LearningRate(1e-3, scaling_rule="sqrt", reference_batch_size=8)
    assert lr.set_effective_batch(32) == pytest.approx(2e-3)


def test_weight_decay_excludes_bias_and_norm():
    from tfaudio.training.optimizers import make_optimizer

    model = toy.ToyModel(batch_norm=True)
    model(tf.zeros([2, 4]))
    opt = make_optimizer("adamw", weight_decay=0.1)
    decayed = {v.name for v in model.trainable_variables if opt._use_weight_decay(v)}
    assert decayed == {"kernel"}


@pytest.mark.parametrize("name", ["adam", "adamw", "adamax", "adagrad", "sgd", "lamb"])
def test_every_optimizer_trains(tmp_path, name):
    train(tmp_path, 40, "BatchPlan.batch_size = 8", f"make_optimizer.name = '{name}'")
    losses = train_losses(tmp_path)
    assert losses[-1] < 0.7 * losses[0], losses  # each loop's mean over 5 steps


@pytest.mark.parametrize("name", ["adam", "adamax", "adamw", "adagrad", "sgd", "lamb"])
def test_each_optimizer_name_makes_its_own_first_update(name):
    from tfaudio.training.optimizers import make_optimizer

    lr, w0, g = 0.01, np.full(4, 10.0, np.float32), np.array([0.5, -1.0, 1.5, -2.0], np.float32)
    weight = keras.Variable(w0, name="w")
    optimizer = make_optimizer(name)
    optimizer.build([weight])
    optimizer.learning_rate.assign(lr)
    optimizer.apply([tf.constant(g)], [weight])
    step = weight.numpy() - w0
    expected = {"adam": -lr * np.sign(g), "adamax": -lr * np.sign(g), "sgd": -lr * g,
                "adamw": -lr * np.sign(g) - lr * 0.004 * w0,  # decoupled decay, Keras's default rate
                "adagrad": -lr * g / np.sqrt(0.1 + g ** 2),  # initial accumulator 0.1
                # LAMB: Adam's direction scaled by the trust ratio ||w|| / ||update||
                "lamb": -lr * np.linalg.norm(w0) / np.linalg.norm(np.sign(g)) * np.sign(g)}[name]
    np.testing.assert_allclose(step, expected, rtol=2e-3, atol=1e-7)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_with_float32_losses(tmp_path, precision):
    try:
        t = train(tmp_path, 20, "BatchPlan.batch_size = 8", f"StepOptions.precision = '{precision}'")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert t.model.body.compute_dtype == precision.split("_")[1]
    assert t.model.body.kernel.dtype == "float32"
    losses = train_losses(tmp_path)
    assert losses[-1] < losses[0] and all(np.isfinite(losses))


def test_batch_multiplier_runs_meet_the_same_schedule_at_the_same_examples(tmp_path):
    ends, evaluations = [], []
    for k in (1, 2, 4, 8):
        t = train(tmp_path / f"batch{k}x", 40, "BatchPlan.batch_size = 4", f"BatchPlan.multiplier = {k}",
                  "LearningRate.decay = @ExponentialDecay()", "ExponentialDecay.decay_rate = 0.1",
                  "Trainer.steps_per_loop = 3", "Trainer.eval_every = 16")
        assert t.global_step == 40 // k
        ends.append(float(t.inner.schedule(t.inner.step * t.batches.clock)))
        evaluations.append([r["examples_seen"] for r in read_metrics(str(tmp_path / f"batch{k}x"))
                            if r.get("split") == "val"])
    assert ends == pytest.approx([0.05 * 0.1] * 4)  # the whole decay, whatever the batch
    assert all(e == evaluations[0] for e in evaluations) and evaluations[0] == [64, 128, 160]


def test_progress_without_a_terminal_is_plain_lines_and_saves_are_quiet(tmp_path, capfd, caplog):
    with caplog.at_level("INFO", logger="absl"):
        train(tmp_path, 10, "BatchPlan.batch_size = 8")
    out, err = capfd.readouterr()
    assert "step 10/10 (100%) loss " in out and "steps/s ETA 0.0 min" in out
    assert not [r for r in caplog.records if "Sharding callback" in r.getMessage()]
    assert "step 10/10 (100%)" in open(tmp_path / "progress.log").read()


def test_warm_start_takes_the_named_modules_and_says_what_it_left(tmp_path):
    source = train(tmp_path / "source", 10, "BatchPlan.batch_size = 8")
    t = train(tmp_path / "warm", 1, "BatchPlan.batch_size = 8", "LearningRate.learning_rate = 1e-9",
              f"CheckpointConfig.init_from = '{tmp_path / 'source'}'", "CheckpointConfig.init_modules = ('body',)")
    event = [r for r in read_metrics(str(tmp_path / "warm")) if r.get("event") == "warm_start"][0]
    assert event["took"] == 2 and event["left"] == ["head/_kernel", "head/bias"]
    np.testing.assert_allclose(t.model.body.kernel.numpy(), source.model.body.kernel.numpy(), atol=1e-6)
    assert not np.allclose(t.model.head.kernel.numpy(), source.model.head.kernel.numpy(), atol=1e-3)
    with pytest.raises(config.ConfigError, match=r"init_modules names \['decoder'\].*\['body', 'head'\]"):
        train(tmp_path / "bad", 1, "BatchPlan.batch_size = 8", f"CheckpointConfig.init_from = '{tmp_path / 'source'}'",
              "CheckpointConfig.init_modules = ('decoder',)")


def test_inference_is_traced_once_per_model_and_lets_the_model_go():
    import gc
    import weakref

    from tfaudio.models import tracing
    from tfaudio.tasks import base

    model = keras.Sequential([keras.Input([4]), keras.layers.Dense(2)])
    for batch in (1, 3, 5):
        assert base.inference(model)(tf.zeros([batch, 4])).shape == (batch, 2)
    # Any batch: one relaxed trace.
    assert tracing.traced_method(model, "__call__").experimental_get_tracing_count() <= 2
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None  # the cache held it weakly


def test_a_models_first_call_builds_it_without_a_symbolic_run_first(monkeypatch):
    """Keras builds a layer that has no `build` by running its `call` on symbolic inputs
    first, a second trace of a whole model: every layer class of tfaudio.models has a
    `build` (most the one of models/building.py), and the U-Net's first call runs its own
    and its blocks' `call` once each."""
    from tfaudio.models import unet

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)
    ours = {c for c in subclasses(keras.layers.Layer) if c.__module__.startswith("tfaudio.models.")}
    assert len(ours) > 20 and not [c.__name__ for c in ours if getattr(c.build, "_is_default", False)]

    calls = []

    def counted(cls):
        call = cls.call

        def wrapper(self, *args, **kwargs):
            calls.append(cls.__name__)
            return call(self, *args, **kwargs)
        monkeypatch.setattr(cls, "call", functools.wraps(call)(wrapper))
    for cls in (unet.AudioUNet, unet.DownBlock, unet.UpBlock):
        counted(cls)
    model = unet.AudioUNet(channels=(4, 8), strides=(2, 2))
    assert model(tf.zeros([1, 64])).shape == (1, 64)
    assert sorted(calls) == ["AudioUNet", "DownBlock", "DownBlock", "UpBlock", "UpBlock"]
