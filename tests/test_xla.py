"""The accelerator contract, checked on CPU through XLA (what a TPU compiles every step
with): every family trains and evaluates with StepOptions.jit_compile, and the compiled
step's loss and gradients equal the default uncompiled step's on the same weights and batch."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfaudio import compose as training
from tfaudio import config
from tfaudio.run_dir import read_metrics
from tfaudio.training.strategy import make_strategy

from tiny_runs import NO_DROPOUT, TINY, tiny_files, tiny_params

FAMILIES = ["tacotron_8khz.gin", "tacotron_8khz_attention.gin", "audio_unet.gin", "hybrid_unet.gin",
            "openunmix_8khz.gin", "ctc_dilated.gin", "classifier_langid.gin"]


@pytest.mark.parametrize("gin_file", FAMILIES)
def test_every_family_trains_and_evaluates_compiled_and_matches_the_uncompiled_step(tmp_path, gin_file):
    path = os.path.join(config.REPO_GIN_DIR, gin_file)
    # XLA draws other random bits than TensorFlow's kernels: compared without inference dropout.
    # Static shapes, as on a TPU: one compilation per bucket, not one per padded length.
    params = tiny_params(path, tmp_path) + NO_DROPOUT.get(gin_file, []) + [
        "StepOptions.jit_compile = True", "AudioData.static_shapes = True"]
    config.parse(tiny_files(path), params, finalize=False)
    run = str(tmp_path / "run")
    trainer, results = training.train(run, tracker="none")
    rows = read_metrics(run)
    assert [r["step"] for r in rows if "loss" in r and "split" not in r] == [1, 2]
    assert np.isfinite(results["val"]["loss"]) and any(r.get("split") == "val" for r in rows)

    assert trainer.inner.xla and trainer.task.xla
    model, task, batch = trainer.model, trainer.task, trainer.sample_batch

    def loss_and_grads(b):  # in inference mode: dropout's random bits differ between XLA and TF
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(task.loss(model, b, training=False)[0])
        grads = tape.gradient(loss, model.trainable_variables)
        return loss, [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                      for g, v in zip(grads, model.trainable_variables)]

    compiled_loss, compiled_grads = tf.function(loss_and_grads, jit_compile=True)(batch)
    task.xla = False  # the default CPU path: sparse CTC labels, no compilation
    plain_loss, plain_grads = tf.function(loss_and_grads)(batch)
    np.testing.assert_allclose(compiled_loss.numpy(), plain_loss.numpy(), rtol=1e-4)
    # Per variable, within 1% of its gradient's norm or 1e-4 of the whole gradient's (some
    # gradients are zero in exact arithmetic: a bias under a softmax or before a norm).
    total = float(tf.linalg.global_norm(plain_grads))
    assert 0 < total < np.inf
    for variable, a, b in zip(model.trainable_variables, compiled_grads, plain_grads):
        error, size = float(tf.norm(a - b)), float(tf.norm(b))
        assert error <= 1e-2 * size + 1e-4 * total, (variable.path, error, size, total)


def compilations(tmp_path, static: bool) -> int:
    """XLA's compilations of the train step over 16 steps (some three epochs) of the
    durations Tacotron on two duration buckets, counted from its dump of every module it
    compiled, when the user's command trains it."""
    path = os.path.join(config.REPO_GIN_DIR, "tacotron_8khz.gin")
    params = tiny_params(path, tmp_path) + [  # no validation split: the train step alone compiles
        "train_steps = 16", "eval_every = 16", "AudioData.bucket_boundaries = (0.5,)", "AudioData.val_fraction = 0.0",
        "CheckpointConfig.best_metric = None", "StepOptions.jit_compile = True", f"AudioData.static_shapes = {static}"]
    dump = tmp_path / f"xla_dump_{static}"
    env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_dump_to={dump}",
               TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-m", "tfaudio.train", f"--gin_file={path}", f"--gin_file={TINY}",
                           f"--model_dir={tmp_path / f'run_{static}'}", "--tracker=none"]
                          + [f"--gin_param={p}" for p in params], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return len({f.name.split(".")[0] for f in dump.iterdir() if "replica_grads" in f.name})


def test_static_shapes_compile_the_train_step_at_most_once_per_bucket(tmp_path):
    # With static_shapes off this run compiles 9 times: once per distinct padded length.
    assert 1 <= compilations(tmp_path, static=True) <= 2


def test_a_completed_last_batch_evaluates_as_whole_batches(tmp_path):
    """Static shapes: the 6 validation examples in batches of 4 (the last completed by 2
    repeated rows, "valid" 0) give the evaluation, host metrics included, that batches of
    2 give (all whole, padded to the same bucket bounds)."""
    path = os.path.join(config.REPO_GIN_DIR, "tacotron_8khz.gin")
    params = tiny_params(path, tmp_path) + ["AudioData.bucket_boundaries = (0.5,)", "AudioData.static_shapes = True"]
    config.parse(tiny_files(path), params, finalize=False)
    trainer = training.make_trainer(str(tmp_path), make_strategy())  # untrained: evaluation alone

    def evaluate(batch_size):
        return trainer.inner.evaluate(trainer.strategy.experimental_distribute_dataset(
            trainer.data.validation(batch_size)), None)
    batches = list(trainer.data.validation(4))
    assert [float(b["valid"].numpy().sum()) for b in batches] == [4.0, 2.0]
    assert all(b["audio"].shape[0] == 4 and b["audio"].shape[1] in trainer.data.bounds for b in batches)
    whole, completed = evaluate(2), evaluate(4)
    assert whole["examples"] == completed["examples"] == 6
    for key in ("loss", "mel_l1", "free_mcd", "free_length_ratio", "duration"):
        assert completed[key] == pytest.approx(whole[key], rel=1e-5), key
