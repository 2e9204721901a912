"""Whole checkpoints: every variable of every shipped model is saved, restored strictly in
a fresh process bit for bit, and a resumed run equals an uninterrupted one."""

import glob
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfaudio import config
from tfaudio.errors import ConfigError
from tfaudio.models import weights
from tfaudio.run_dir import read_metrics

from tiny_runs import arrays, tiny_files, tiny_params, train

GIN_FILES = sorted(glob.glob(os.path.join(config.REPO_GIN_DIR, "*.gin")))
RESTORE_CHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "restore_check.py")


class Block(keras.layers.Layer):
    """A sub-layer that keeps its own layers in a list and in pairs."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stack = [keras.layers.Dense(3), keras.layers.BatchNormalization()]
        self.pairs = [(keras.layers.Dense(3), keras.layers.Dense(3, use_bias=False))]

    def call(self, x, training=False):
        x = self.stack[1](self.stack[0](x), training=training)
        return self.pairs[0][0](x) + self.pairs[0][1](x)


class Nested(keras.Model):
    def __init__(self, hidden_in_private_list=False, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [Block(), Block()]
        self.heads = {"out": keras.layers.Dense(1)}
        if hidden_in_private_list:
            self._hidden = [keras.layers.Dense(3)]

    def call(self, x, training=False):
        for block in self.blocks:
            x = block(x, training=training)
        if hasattr(self, "_hidden"):
            x = self._hidden[0](x)
        return self.heads["out"](x)


def test_layers_in_lists_tuples_dicts_and_sublayers_are_all_saved(tmp_path):
    model = Nested()
    model(tf.ones([4, 2]), training=True)  # moves the BatchNorm statistics
    named = weights.named_variables(model)
    assert len(named) == len(model.variables) == 2 * (2 + 4 + 2 + 1) + 2
    assert "blocks/1/stack/1/moving_mean" in named and "blocks/0/pairs/0/1/_kernel" in named
    path = tf.train.Checkpoint(model=weights.VariableTree(named)).save(str(tmp_path / "ckpt"))
    fresh = Nested()  # other auto-generated layer names, other random weights
    fresh(tf.ones([1, 2]))
    weights.restore_weights(path, weights.named_variables(fresh))
    for name, variable in weights.named_variables(fresh).items():
        np.testing.assert_array_equal(variable.numpy(), named[name].numpy(), err_msg=name)


def test_variables_no_attribute_reaches_are_an_error():
    model = Nested(hidden_in_private_list=True)
    model(tf.ones([1, 2]))
    with pytest.raises(weights.UnnamedVariablesError, match="2 variable"):
        weights.named_variables(model)


def test_restore_names_missing_variables(tmp_path):
    model = Nested()
    model(tf.ones([1, 2]))
    named = weights.named_variables(model)
    partial = {k: v for k, v in named.items() if not k.startswith("blocks/1")}
    path = tf.train.Checkpoint(model=weights.VariableTree(partial)).save(str(tmp_path / "ckpt"))
    with pytest.raises(ConfigError, match=r"lacks 9 of 20 model variables \(blocks/1/"):
        weights.restore_weights(path, named)


@pytest.fixture(scope="module")
def restored(tiny_runs, tmp_path_factory) -> dict:
    """Every shipped gin file's tiny run restored in one fresh process: {name: its report}."""
    runs = [tiny_runs(f) for f in GIN_FILES]
    report = tmp_path_factory.mktemp("restore") / "report.json"
    check = subprocess.run([sys.executable, RESTORE_CHECK, str(report)] + [p for run in runs for p in run],
                           capture_output=True, text=True, timeout=900)
    assert report.exists(), check.stdout[-3000:] + check.stderr[-3000:]
    return json.loads(report.read_text())


@pytest.mark.parametrize("gin_file", GIN_FILES, ids=os.path.basename)
def test_shipped_gin_file_trains_and_restores_whole_in_a_fresh_process(tiny_runs, restored, gin_file):
    run, expected = tiny_runs(gin_file)
    rows = read_metrics(run)
    assert rows[-1]["step"] == tiny_runs.steps and any(r.get("split") == "val" for r in rows)
    latest = tf.train.latest_checkpoint(os.path.join(run, "checkpoints"))
    dtypes = tf.train.load_checkpoint(latest).get_variable_to_dtype_map()
    names = [k[len("raw/"):] for k in np.load(expected) if k.startswith("raw/")]
    assert names and all(weights.checkpoint_key("model", n) in dtypes for n in names)
    # Nothing float64 on the device (TPUs have none); the checkpoint holds what the device held.
    assert not [k for k, d in dtypes.items() if d == tf.float64 and not k.startswith("_CHECKPOINTABLE")]
    assert restored[run] == [], restored[run]


# How much each shipped recipe's validation loss falls over the tiny run through its
# optimizer's updates (the step-0 trainable weights against the final ones, BatchNorm
# statistics the same: tiny_runs.final_and_initial_loss), as a share of its step-0 value:
# about half of what 20 steps gave on 2026-12-06. E.g. the durations Tacotron 4.93 -> 3.93,
# the attention Tacotron 3.70 -> 3.12, the waveform U-Net's negative SI-SDR 12.0 -> -14.4
# dB, the classifiers' cross-entropy 1.113 -> 1.052, the CTC recogniser's 144.5 -> 143.8,
# LAMB's 4.769 -> 4.758 (its linear rule scales the rate to batch 2 by 2/16). A run whose
# updates do nothing scores exactly 0 (tried with the optimizer's update removed).
LEARNS = {"audio_unet.gin": 1.0, "hybrid_unet.gin": 0.8, "classifier_digits.gin": 0.025,
          "classifier_langid.gin": 0.025, "ctc_dilated.gin": 0.002, "ctc_dilated_small.gin": 0.01,
          "openunmix.gin": 0.03, "openunmix_8khz.gin": 0.03, "openunmix_8khz_uni.gin": 0.03,
          "tacotron1_8khz.gin": 0.05, "tacotron2_22khz.gin": 0.12, "tacotron_8khz.gin": 0.1,
          "tacotron_8khz_attention.gin": 0.08, "tacotron_8khz_espeak.gin": 0.1, "tacotron_8khz_lamb.gin": 0.001}


@pytest.mark.parametrize("gin_file", GIN_FILES, ids=os.path.basename)
def test_shipped_gin_file_learns_on_the_tiny_corpus(tiny_runs, gin_file):
    """The validation loss with the step-0 and with the final trainable weights."""
    expected = np.load(tiny_runs(gin_file)[1])
    initial, final = float(expected["initial_val_loss"]), float(expected["val_loss"])
    margin = LEARNS[os.path.basename(gin_file)]
    assert final <= initial - margin * abs(initial), (initial, final, margin)


RESUME = {
    "tacotron_8khz.gin": ["AudioData.bucket_boundaries = (0.3, 0.5)", "DurationTacotron.embedding_dim = 16",
                          "DurationTacotron.conv_channels = 16", "DurationTacotron.encoder_units = 8",
                          "DurationTacotron.duration_channels = 8", "DurationTacotron.decoder_channels = 16"],
    "tacotron_8khz_attention.gin": ["AudioData.bucket_boundaries = (0.3, 0.5)", "Tacotron.embedding_dim = 16",
                          "Tacotron.conv_channels = 16", "Tacotron.encoder_units = 8",
                          "Tacotron.attention_rnn_units = 16", "Tacotron.decoder_rnn_units = 16",
                          "Tacotron.postnet_channels = 8", "TacotronTask.max_decoder_steps = 10",
                          "Tacotron.attention_prior = True"],
    "audio_unet.gin": ["AudioUNet.channels = (4, 8, 8, 8)"],
}


def rolled_back(run: str, copy: str, step: int) -> str:
    """A copy of `run` as a preemption after its step-`step` checkpoint leaves it: the
    later checkpoints gone (metrics rows past it stay, as a killed process leaves them)."""
    shutil.copytree(run, copy)
    directory = os.path.join(copy, "checkpoints")
    for name in os.listdir(directory):
        if name.startswith("ckpt-") and int(name[len("ckpt-"):].split(".")[0]) > step:
            os.remove(os.path.join(directory, name))
    kept = sorted(f[:-len(".index")] for f in os.listdir(directory) if f.endswith(".index"))
    tf.compat.v1.train.update_checkpoint_state(directory, os.path.join(directory, f"ckpt-{step}"),
                                               [os.path.join(directory, k) for k in kept])
    return copy


# The attention Tacotron's resume is checked across a change of its reduction factor
# (test_a_reduction_schedule_rebuilds_the_decoder_at_its_phase_and_on_resume).
@pytest.mark.parametrize("gin_file", ["audio_unet.gin", "tacotron_8khz.gin"])
def test_resume_equals_uninterrupted_on_the_real_model(tmp_path, gin_file):
    path = os.path.join(config.REPO_GIN_DIR, gin_file)
    # One schedule for both halves: a decay's horizon is otherwise the run's train_steps.
    params = tiny_params(path, tmp_path) + RESUME[gin_file] + ["eval_every = 3", "CheckpointConfig.keep = 5",
                                                                "ExponentialDecay.decay_steps = 6", "train_steps = 6"]
    full = arrays(train(str(tmp_path / "full"), tiny_files(path), params))
    resumed_run = rolled_back(str(tmp_path / "full"), str(tmp_path / "resumed"), 3)
    trainer = train(resumed_run, tiny_files(path), params)
    resumed = arrays(trainer)
    assert trainer.checkpoints.latest.endswith("ckpt-6")
    steps = [r["step"] for r in read_metrics(resumed_run) if "loss" in r and "split" not in r and "event" not in r]
    assert steps == [1, 2, 3, 4, 5, 6, 4, 5, 6]  # the rows the preempted process left, then the resumed ones
    assert full.keys() == resumed.keys()
    for key in full:
        np.testing.assert_allclose(resumed[key], full[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_a_reduction_schedule_rebuilds_the_decoder_at_its_phase_and_on_resume(tmp_path):
    """Tacotron.reduction_schedule ((0, 4), (2, 2)): two steps at r = 4, then the trainer
    saves, rebuilds the step at r = 2 and goes on; a run resumed after the change starts at
    r = 2 and ends where the uninterrupted one does; a restore takes each checkpoint's r."""
    from tfaudio.experiment import load_checkpoint, restore_for_inference

    path = os.path.join(config.REPO_GIN_DIR, "tacotron_8khz_attention.gin")
    params = tiny_params(path, tmp_path) + RESUME["tacotron_8khz_attention.gin"] + [
        "Tacotron.reduction_schedule = ((0, 4), (2, 2))", "train_steps = 4", "eval_every = 4",
        "CheckpointConfig.every = 1", "CheckpointConfig.keep = 5", "ExponentialDecay.decay_steps = 4"]
    trainer = train(str(tmp_path / "full"), tiny_files(path), params)
    n_mels = trainer.model.n_mels
    assert trainer.model.reduction == 2 and trainer.model.frame_projection.kernel.shape[-1] == 4 * n_mels
    assert [r["step"] for r in read_metrics(str(tmp_path / "full")) if r.get("event") == "phase_switch"] == [2]
    full = arrays(trainer)
    out = trainer.model(trainer.task.teacher_forced_inputs(trainer.sample_batch, trainer.model)[0])
    assert out["alignments"].shape[1] * 2 == out["mel"].shape[1]  # two frames per decoder step

    resumed_run = rolled_back(str(tmp_path / "full"), str(tmp_path / "resumed"), 3)
    resumed = train(resumed_run, tiny_files(path), params)
    assert resumed.model.reduction == 2 and resumed.checkpoints.latest.endswith("ckpt-4")
    for key, value in arrays(resumed).items():
        np.testing.assert_allclose(value, full[key], rtol=1e-5, atol=1e-6, err_msg=key)

    # No end fallback: its margin in decoder steps depends on r, and the traced synthesis
    # must notice the new r by itself.
    model, task = restore_for_inference(str(tmp_path / "full"), gin_params=["TacotronTask.end_margin_seconds = None"])
    text = tf.constant([[3, 4, 5]]), tf.constant([3])
    out = task.infer(model, *text, 3)  # traced at r = 2
    assert model.reduction == 2 and out["mel"].shape[1] == 3 * 2  # 3 decoder steps of 2 frames
    load_checkpoint(model, task, str(tmp_path / "full" / "checkpoints" / "ckpt-1"))
    out = task.infer(model, *text, 3)  # traced again at r = 4
    assert model.reduction == 4 and out["mel"].shape[1] == 3 * 4
