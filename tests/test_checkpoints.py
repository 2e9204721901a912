"""Whole checkpoints: every variable of every shipped model is saved, restored strictly in
a fresh process bit for bit, and a resumed run equals an uninterrupted one."""

import glob
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfaudio import config
from tfaudio.errors import ConfigError
from tfaudio.models import weights
from tfaudio.training import run as training
from tfaudio.training.trackers import read_metrics

import audio_files

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


def tiny_params(gin_file, tmp_path):
    params = ["batch_size = 2", "train_steps = 2", "eval_every = 2", "Trainer.steps_per_loop = 1"]
    if os.path.basename(gin_file).startswith("tacotron"):
        data = audio_files.char_speech(str(tmp_path / "speech"), n=12)
        # The tiny corpus spells letters as tones, so characters are its vocabulary.
        params += ["AudioData.val_fraction = 0.3", "TacotronTask.max_decoder_steps = 20",
                   "vocabulary.kind = 'characters'", "Tacotron.attention_rnn_units = 64",
                   "Tacotron.decoder_rnn_units = 64", "Tacotron.postnet_channels = 32",
                   "ParallelTacotron.embedding_dim = 32", "ParallelTacotron.conv_channels = 32",
                   "ParallelTacotron.encoder_units = 16", "ParallelTacotron.decoder_channels = 32"]
    elif os.path.basename(gin_file).startswith("classifier"):
        data = audio_files.class_folders(str(tmp_path / "classes"))
        params += ["num_classes = 3", "crop_seconds = 0.5", "Classifier.head_units = 8",
                   "ClassificationTask.stats_examples = 8"]
    elif os.path.basename(gin_file).startswith("ctc"):
        data = audio_files.char_speech(str(tmp_path / "speech"), n=12)
        params += ["AudioData.val_fraction = 0.3", "DilatedCTC.channels = 8", "DilatedCTC.skip_channels = 8",
                   "max_dilation = 4", "num_stacks = 1"]
    else:
        data = audio_files.mixtures(str(tmp_path / "mixtures"))
    if os.path.basename(gin_file).startswith("openunmix"):  # the tiny corpus' stems, small sizes
        params += ["SeparationData.target = 'speech'", "SeparationData.others = ('music',)",
                   "SeparationData.val_split = 'valid'", "SeparationData.segment_seconds = 1.0",
                   "SeparationData.val_seconds = 1.0", "OpenUnmix.hidden_size = 32"]
    return [f"data_dir = '{data}'"] + params


def _train(run, gin_files, params):
    config.parse(gin_files, params, finalize=False)
    return training.train(run, tracker="none")[0]


def _arrays(trainer) -> dict:
    named, ema = trainer.inner.model_vars, trainer.inner.ema
    out = {f"raw/{n}": np.asarray(v.numpy()) for n, v in named.items()}
    if ema is not None:
        out.update({f"ema/{n}": np.asarray(ema.shadows[n].numpy()) if n in ema.shadows
                    else out[f"raw/{n}"] for n in named})
    return out


@pytest.mark.parametrize("gin_file", GIN_FILES, ids=os.path.basename)
def test_shipped_gin_file_trains_and_restores_whole_in_a_fresh_process(tmp_path, gin_file):
    run = str(tmp_path / "run")
    trainer = _train(run, [gin_file], tiny_params(gin_file, tmp_path))
    rows = read_metrics(run)
    assert rows[-1]["step"] == 2 and any(r.get("split") == "val" for r in rows)
    latest = tf.train.latest_checkpoint(os.path.join(run, "checkpoints"))
    dtypes = tf.train.load_checkpoint(latest).get_variable_to_dtype_map()
    assert all(weights.checkpoint_key("model", n) in dtypes for n in trainer.inner.model_vars)
    # Nothing float64 on the device (TPUs have none); the checkpoint holds what the device held.
    assert not [k for k, d in dtypes.items() if d == tf.float64 and not k.startswith("_CHECKPOINTABLE")]
    batch = {k: v for k, v in trainer.sample_batch.items() if v.dtype != tf.string}
    expected = _arrays(trainer)
    expected.update({f"batch/{k}": v.numpy() for k, v in batch.items()})
    expected["loss"] = trainer.task.loss(trainer.model, batch, training=False)[0].numpy()
    np.savez(tmp_path / "expected.npz", **expected)
    check = subprocess.run([sys.executable, RESTORE_CHECK, run, str(tmp_path / "expected.npz")],
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]


RESUME = {
    "tacotron_8khz.gin": ["AudioData.bucket_boundaries = (0.3, 0.5)", "ParallelTacotron.embedding_dim = 16",
                          "ParallelTacotron.conv_channels = 16", "ParallelTacotron.encoder_units = 8",
                          "ParallelTacotron.duration_channels = 8", "ParallelTacotron.decoder_channels = 16"],
    "tacotron_8khz_attention.gin": ["AudioData.bucket_boundaries = (0.3, 0.5)", "Tacotron.embedding_dim = 16",
                          "Tacotron.conv_channels = 16", "Tacotron.encoder_units = 8",
                          "Tacotron.attention_rnn_units = 16", "Tacotron.decoder_rnn_units = 16",
                          "Tacotron.postnet_channels = 8", "TacotronTask.max_decoder_steps = 10"],
    "audio_unet.gin": ["AudioUNet.channels = (4, 8, 8, 8)"],
}


@pytest.mark.parametrize("gin_file", sorted(RESUME))
def test_resume_equals_uninterrupted_on_the_real_model(tmp_path, gin_file):
    path = os.path.join(config.REPO_GIN_DIR, gin_file)
    # One schedule for both halves: a decay's horizon is otherwise the run's train_steps.
    params = tiny_params(path, tmp_path) + RESUME[gin_file] + ["eval_every = 3", "CheckpointConfig.keep = 5",
                                                                "ExponentialDecay.decay_steps = 6"]
    full = _arrays(_train(str(tmp_path / "full"), [path], params + ["train_steps = 6"]))
    _train(str(tmp_path / "resumed"), [path], params + ["train_steps = 3"])
    resumed = _arrays(_train(str(tmp_path / "resumed"), [path], params + ["train_steps = 6"]))
    assert full.keys() == resumed.keys()
    for key in full:
        np.testing.assert_allclose(resumed[key], full[key], rtol=1e-5, atol=1e-6, err_msg=key)
