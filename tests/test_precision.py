"""Half precision on the real models: float16 loss-scale overflows are the loss scale's
business, never divergence, so the guard leaves a healthy run alone."""

import os

import keras
import pytest

from tfaudio import config
from tfaudio.run_dir import read_metrics

from test_checkpoints import LEARNS, RESUME
from tiny_runs import LEARNING_STEPS, final_and_initial_loss, tiny_files, tiny_params, train


@pytest.mark.parametrize("gin_file", sorted(RESUME))
def test_float16_trains_a_real_model_at_one_step_per_loop_without_rollbacks(tmp_path, gin_file):
    path = os.path.join(config.REPO_GIN_DIR, gin_file)
    params = tiny_params(path, tmp_path) + RESUME[gin_file] + [
        "train_steps = 50", "eval_every = 50", "Trainer.steps_per_loop = 1", "StepOptions.precision = 'mixed_float16'",
        "StepOptions.initial_loss_scale = 16777216.0"]  # overflows at once, as larger models do at 2^15
    run = str(tmp_path / "run")
    try:
        trainer = train(run, tiny_files(path), params)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    rows = read_metrics(run)
    assert not [r for r in rows if r.get("event") in ("rollback", "guard_stop", "skipped_non_finite")]
    loops = [r for r in rows if "loop_steps" in r]
    overflows = sum(r["overflows"] for r in loops)
    assert overflows >= 3 and loops[-1]["loss_scale"] == 2.0 ** (24 - overflows)  # halved per overflow
    assert trainer.global_step == 50 and trainer.inner.weights_finite()
    assert int(trainer.inner.skipped.numpy()) == 0


@pytest.mark.parametrize("gin_file", ["ctc_dilated_small.gin", "classifier_digits.gin", "openunmix_8khz.gin"])
def test_every_family_learns_in_bfloat16(tmp_path, gin_file):
    """The waveform reaches a model in half under mixed precision; its STFT must still run
    (in float32), and the tiny run learn by the margin it learns by in float32."""
    path = os.path.join(config.REPO_GIN_DIR, gin_file)
    run = str(tmp_path / "run")
    params = tiny_params(path, tmp_path) + ["StepOptions.precision = 'mixed_bfloat16'",
                                            f"train_steps = {LEARNING_STEPS}", f"eval_every = {LEARNING_STEPS}"]
    try:
        trainer = train(run, tiny_files(path), params)
        assert trainer.model.compute_dtype == "bfloat16" and trainer.model.variable_dtype == "float32"
        final, initial = final_and_initial_loss(trainer, run)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert final <= initial - LEARNS[gin_file] * abs(initial), (initial, final)
